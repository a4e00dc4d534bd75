#!/usr/bin/env bash
# Memory under hostile input (issue 13): how much RSS a release letterbox gains from what
# an attacker can send without a login. A script that prints figures, not a test: nothing
# here passes or fails on a number.
#
# Sections (TARGETS picks some):
#   smtp-data   TRANSFERS unfinished DATA transfers of DATA_MB MB each on port 25 (the
#               transfers send their content and then never send the final `.`); printed:
#               VmRSS (from /proc/PID/status) before and once every transfer has sent all
#               of its content, the growth, and VmHWM (the peak). With the byte budget for
#               SMTP content (`limits.smtp_data_in_flight`, 64 MiB by default) the growth
#               stays near the budget, however many transfers there are; the transfers that
#               found no budget are read on and dropped.
#
# Run from anywhere:
#   benches/hostile-rss.sh
#   LETTERBOX=/path/to/another/letterbox benches/hostile-rss.sh   # compare a build
# Environment:
#   LETTERBOX (target/release/letterbox, built first)   the binary to measure
#   TARGETS ("smtp-data")   the sections to run
#   TRANSFERS (4), DATA_MB (45)   the smtp-data load
#   BENCH_TMPDIR (/var/tmp)   data, logs and the config; KEEP=1 keeps them
set -euo pipefail

TARGETS=${TARGETS:-"smtp-data"}
TRANSFERS=${TRANSFERS:-4}
DATA_MB=${DATA_MB:-45}
BENCH_TMPDIR=${BENCH_TMPDIR:-/var/tmp}
KEEP=${KEEP:-0}
# write_smtp_config sizes the connection limits from this.
SESSIONS=$TRANSFERS
# How long letterbox may take to start listening.
STARTUP_TIMEOUT=60

BENCH_NAME=hostile-rss
# shellcheck source=benches/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stop_servers() { :; }

make_workdir hostile-rss
if [[ -n ${LETTERBOX:-} ]]; then
    cp "$LETTERBOX" "$WORK/bin/letterbox"
else
    build_letterbox
fi

# Sends TRANSFERS unfinished DATA transfers to port $1 of the process $2 and prints its
# VmRSS before and after, in KiB.
UNFINISHED_DATA=$(
    cat <<'EOF'
import socket, sys, threading
port, pid, transfers, megabytes = (int(a) for a in sys.argv[1:5])
def status(field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
before = status("VmRSS")
sent = threading.Barrier(transfers + 1)
sockets = []
def transfer(n):
    s = socket.create_connection(("127.0.0.1", port))
    sockets.append(s)
    f = s.makefile("rb")
    def reply():
        while True:
            line = f.readline()
            if line[3:4] != b"-":
                return line
    reply()
    for command in [b"EHLO rss.example", b"MAIL FROM:<a@example.net>", b"RCPT TO:<you@localhost>", b"DATA"]:
        s.sendall(command + b"\r\n")
        last = reply()
    assert last.startswith(b"354"), last
    line = b"x" * 998 + b"\r\n"
    for _ in range(megabytes * 1000 * 1000 // len(line)):
        s.sendall(line)
    sent.wait()
threads = [threading.Thread(target=transfer, args=(n,), daemon=True) for n in range(transfers)]
for t in threads:
    t.start()
sent.wait()
after = status("VmRSS")
print(before, after, status("VmHWM"))
EOF
)

kib_to_mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

if wants smtp-data; then
    dir=$WORK/smtp-data
    write_smtp_config "$dir" ""
    start_letterbox "$dir"
    port=$(sed -n 's/^listening smtp 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$dir/stdout")
    [[ -n $port ]] || die "no smtp port in $dir/stdout"
    log "smtp-data: $TRANSFERS unfinished DATA transfers of $DATA_MB MB on port $port"
    read -r before after peak < <(python3 -c "$UNFINISHED_DATA" "$port" "$LETTERBOX_PID" "$TRANSFERS" "$DATA_MB")
    printf 'smtp-data: %d unfinished %d MB DATA transfers: VmRSS %s MiB -> %s MiB (+%s MiB), VmHWM %s MiB\n' \
        "$TRANSFERS" "$DATA_MB" "$(kib_to_mib "$before")" "$(kib_to_mib "$after")" \
        "$(kib_to_mib $((after - before)))" "$(kib_to_mib "$peak")"
    stop_letterbox "$dir"
fi
