#!/usr/bin/env bash
# RSS of letterbox holding many IDLE sessions (issue "Hostile input": 4,000 sessions that
# logged in 16 at a time, goal under 120 MiB in all; 10,000 under 200 MB), and the time
# from a delivery to EXISTS at every session. Prints figures; asserts nothing.
#   bench/idle-rss.sh [SESSIONS] [CONCURRENT]      (defaults 4000 16)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SESSIONS=${1:-4000}
CONCURRENT=${2:-16}
# Each side (server, client) holds SESSIONS sockets.
wanted=$((SESSIONS + 1024))
hard=$(ulimit -Hn)
[[ $hard != unlimited && $hard -lt $wanted ]] && wanted=$hard
ulimit -n "$wanted"

(cd "$ROOT" && cargo build --release --bin letterbox)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/idle-rss.XXXXXX")
PID=
cleanup() {
    [[ -n $PID ]] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
cat >"$WORK/letterbox.toml" <<CONF
hostname = "localhost"
data_dir = "$WORK/data"

[listen]
smtp = ["127.0.0.1:0"]
submission = []
submissions = []
imap = ["127.0.0.1:0"]
imaps = []
http = []

[limits]
# port 25 keeps a tenth of max_connections for itself
max_connections = $((SESSIONS * 2 + 100))
max_connections_per_ip = $((SESSIONS + 100))

[dns]
offline = true
CONF
"$ROOT/target/release/letterbox" --config "$WORK/letterbox.toml" serve >"$WORK/out" 2>"$WORK/log" &
PID=$!
for _ in $(seq 1 600); do grep -q '^ready$' "$WORK/out" && break; sleep 0.1; done
grep -q '^ready$' "$WORK/out" || { cat "$WORK/log" >&2; exit 1; }
email=$(sed -n 's/^ *Email address: *//p' "$WORK/out")
password=$(sed -n 's/^ *Password: *//p' "$WORK/out")
imap=$(sed -n 's/^listening imap 127.0.0.1:\([0-9]*\)$/\1/p' "$WORK/out")
smtp=$(sed -n 's/^listening smtp 127.0.0.1:\([0-9]*\)$/\1/p' "$WORK/out")
python3 "$ROOT/bench/idle-rss.py" 127.0.0.1 "$imap" "$smtp" "$email" "$password" "$PID" "$SESSIONS" "$CONCURRENT"
