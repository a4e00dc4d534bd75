#!/usr/bin/env bash
# Where letterbox's SMTP path spends its instructions: the release server under
# `valgrind --tool=callgrind` receives MESSAGES messages of 5 KB from SESSIONS sessions,
# a new connection per message (benches/smtp_load.rs --connection-per-message, the load of
# benches/smtp-vs-postfix.sh's first mode), on SQLite in a new directory.
#
# Counted: only the load. Callgrind's counters are zeroed once the server is ready and
# dumped once the last 250 is in, before shutdown. Printed: callgrind_annotate's
# PROGRAM TOTALS, the instructions (Ir) per message, and the TOP functions by inclusive
# cost. Instruction counts do not depend on the machine's load, so two builds compare
# exactly: run it before and after a change (LETTERBOX_BIN=... compares a prebuilt binary).
# Callgrind runs the server's threads one at a time and some 50 times slower: the run is
# a profile, not a throughput figure.
#
# Run from anywhere:
#   benches/smtp-callgrind.sh
#   MESSAGES=1000 TOP=60 KEEP=1 benches/smtp-callgrind.sh
# Environment:
#   SESSIONS (10), MESSAGES (500)    the load
#   TOP (40)                         how many functions to print
#   LETTERBOX_BIN                    a prebuilt letterbox instead of building one
#   BENCH_TMPDIR (/var/tmp)          where the data and the callgrind output go
#   KEEP=1                           keep them (callgrind.out.load for callgrind_annotate
#                                    or kcachegrind)
#   CARGO_TARGET_DIR                 where cargo builds (as cargo itself reads it)
set -euo pipefail

SESSIONS=${SESSIONS:-10}
MESSAGES=${MESSAGES:-500}
TOP=${TOP:-40}
BENCH_TMPDIR=${BENCH_TMPDIR:-/var/tmp}
KEEP=${KEEP:-0}
MESSAGE_SIZE=5120
TARGETS=letterbox
# Under callgrind the start (migrations, the first account's argon2id hash) is slow.
STARTUP_TIMEOUT=300

BENCH_NAME=smtp-callgrind
# shellcheck source=benches/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

positive_integers SESSIONS MESSAGES TOP
for tool in valgrind callgrind_control callgrind_annotate; do
    command -v "$tool" >/dev/null || die "$tool not found (Debian package valgrind)"
done

make_workdir letterbox-callgrind
build_letterbox
LOAD=$(build_load smtp_load)

dir=$WORK/letterbox
out=$WORK/callgrind.out
write_smtp_config "$dir" ""
# --dump-instr=no, --collect-jumps=no: function-level costs are what is printed.
start_letterbox "$dir" valgrind --tool=callgrind --callgrind-out-file="$out" \
    --log-file="$WORK/valgrind.log"
address=$(sed -n 's/^listening smtp //p' "$dir/stdout" | head -n 1)
[[ -n $address ]] || die "letterbox printed no 'listening smtp' line"

callgrind_control --zero "$LETTERBOX_PID" >/dev/null
log "load: $SESSIONS sessions, $MESSAGES messages of $MESSAGE_SIZE bytes, a connection per message"
"$LOAD" --addr "$address" --to you@localhost --from bench@example.org \
    --sessions "$SESSIONS" --messages "$MESSAGES" --message-size "$MESSAGE_SIZE" \
    --connection-per-message --timeout-secs 600 | tee "$WORK/load"
callgrind_control --dump=load "$LETTERBOX_PID" >/dev/null
stop_letterbox "$dir"

# The dump made on request is the first numbered file.
dump=$(ls "$out".* 2>/dev/null | head -n 1)
[[ -n $dump && -s $dump ]] || die "no callgrind dump next to $out"
cp "$dump" "$WORK/callgrind.out.load"

echo
callgrind_annotate "$WORK/callgrind.out.load" 2>/dev/null | grep -m 1 'PROGRAM TOTALS'
total=$(callgrind_annotate "$WORK/callgrind.out.load" 2>/dev/null |
    sed -n 's/^\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
[[ -n $total ]] || die "callgrind_annotate printed no PROGRAM TOTALS"
echo "Ir_per_message=$((total / MESSAGES)) messages=$MESSAGES sessions=$SESSIONS connection_per_message=yes"
echo
echo "Top $TOP functions by inclusive Ir:"
callgrind_annotate --inclusive=yes --threshold=100 "$WORK/callgrind.out.load" 2>/dev/null |
    sed -n '/^-* *$/d; /Ir *file:function/,$p' | sed -n "2,$((TOP + 1))p" |
    sed -E 's/^( *[0-9,]+ +\([ 0-9.]+%\)) +[^:]*:/\1  /' | cut -c1-200
