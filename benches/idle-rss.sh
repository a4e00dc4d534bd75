#!/usr/bin/env bash
# RSS of letterbox holding many IDLE sessions (issue "Hostile input": 4,000 sessions that
# logged in 16 at a time, goal under 120 MiB in all; 10,000 under 200 MB), and the time
# from a delivery to EXISTS at every session. Prints figures; asserts nothing.
#   benches/idle-rss.sh [SESSIONS] [CONCURRENT]      (defaults 4000 16)
# Environment: BENCH_TMPDIR (/var/tmp) where letterbox keeps its data; KEEP=1 keeps it;
# IDLE_PERF_DATA=FILE records the server with `perf record --call-graph dwarf` during the wake-up alone
# (IDLE_PERF_FREQ samples a second, 1999); IDLE_READ the rounds, one delivery each, and how the client
# reads the EXISTS in each (default "live quiet"): "live" reads while the server still fans out, on the
# same two cores; "quiet" holds off until the server's CPU time stops rising, then reads every socket's
# queued bytes with their kernel timestamps (see benches/idle-rss.py).
# Last, the kernel's floor for the same wake-up: SESSIONS small writes to loopback sockets whose
# peers do not read, from a Python loop (benches/loopback-floor.py), to set the server's CPU beside.
set -euo pipefail
SESSIONS=${1:-4000}
CONCURRENT=${2:-16}
BENCH_TMPDIR=${BENCH_TMPDIR:-/var/tmp}
KEEP=${KEEP:-0}
TARGETS=letterbox
STARTUP_TIMEOUT=60
BENCH_NAME=idle-rss
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
stop_servers() { :; }

# The server holds SESSIONS sockets, the client as many (read in place, not duplicated),
# besides the files each opens.
wanted=$((SESSIONS + 1024))
hard=$(ulimit -Hn)
[[ $hard != unlimited && $hard -lt $wanted ]] && wanted=$hard
ulimit -n "$wanted"

make_workdir letterbox-idle-rss
build_letterbox
dir=$WORK/letterbox
# Port 25 for the delivery every session must see.
write_imap_config "$dir" $((SESSIONS + 100)) smtp
start_letterbox "$dir"
email=$(sed -n 's/^ *Email address: *//p' "$dir/stdout")
password=$(sed -n 's/^ *Password: *//p' "$dir/stdout")
imap=$(sed -n 's/^listening imap 127.0.0.1:\([0-9]*\)$/\1/p' "$dir/stdout")
smtp=$(sed -n 's/^listening smtp 127.0.0.1:\([0-9]*\)$/\1/p' "$dir/stdout")
[[ -n $email && -n $imap && -n $smtp ]] || die "letterbox printed no account or listeners"
python3 "$ROOT/benches/idle-rss.py" 127.0.0.1 "$imap" "$smtp" "$email" "$password" \
    "$LETTERBOX_PID" "$SESSIONS" "$CONCURRENT"
# What the kernel alone costs for as many writes, on this machine, in this run.
python3 "$ROOT/benches/loopback-floor.py" "$SESSIONS"
