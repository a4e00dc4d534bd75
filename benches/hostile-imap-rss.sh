#!/usr/bin/env bash
# What one hostile IMAP peer can make letterbox spend (issue 13), on this machine: memory,
# and the SMTP greeting delay while SEARCH runs.
#
# Starts a release letterbox (target/release/letterbox, built first) on a free 127.0.0.1
# port with its data in a new temporary directory, and prints the growth of its resident
# set (VmRSS in /proc/PID/status, sampled every 10 ms while the attack runs, the peak
# minus the value just before) for:
#   1. CONNECTIONS (8) connections that never log in, each announcing a 50 MB APPEND
#      literal: first synchronising (`{52428800}`; the octets are sent only if a `+`
#      continuation comes), then non-synchronising (`{52428800+}`), whose 50 MB are sent
#      at once. Goal: under 64 MiB.
#   2. One logged-in client asking for BODY[] of a 1 MB message 400 times in one FETCH
#      (`FETCH 1 (BODY[] BODY[] ...)`), reading the answer as it comes. Goal: under
#      128 MiB. The login and the APPEND come before the first sample, so the password
#      hash (argon2id) is not counted.
# and then how long an SMTP greeting on port 25 takes (connect to `220`, every 50 ms)
# while two logged-in clients each run SEARCH BODY with a needle of the largest size
# (1023 `A` and a `b`) over a 10 MB body on one line of `a`, ROUNDS (3) times in a row:
#   3. Goal: the slowest greeting under 100 ms (the search runs off the async workers).
# These are figures to read, not a test: nothing here fails on a number.
#
# Run from anywhere:
#   benches/hostile-imap-rss.sh
#   CONNECTIONS=16 benches/hostile-imap-rss.sh
# Environment:
#   CONNECTIONS (8)           unauthenticated connections of part 1
#   ROUNDS (3)                SEARCHes each client of part 3 runs
#   LETTERBOX_BIN             a prebuilt letterbox instead of building one (to compare
#                             with an older build)
#   BENCH_TMPDIR (/var/tmp)   where letterbox keeps its data
#   KEEP=1                    keep the temporary directory (log, SQLite)
#   CARGO_TARGET_DIR          where cargo builds (as cargo itself reads it)
set -euo pipefail

CONNECTIONS=${CONNECTIONS:-8}
ROUNDS=${ROUNDS:-3}
LETTERBOX_BIN=${LETTERBOX_BIN:-}
BENCH_TMPDIR=${BENCH_TMPDIR:-/var/tmp}
KEEP=${KEEP:-0}
TARGETS=letterbox
# How long letterbox may take to start listening.
STARTUP_TIMEOUT=60

BENCH_NAME=hostile-imap-rss
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v python3 >/dev/null || die "python3 is needed"
stop_servers() { :; }
make_workdir letterbox-hostile-imap
if [[ -n $LETTERBOX_BIN ]]; then
    cp "$LETTERBOX_BIN" "$WORK/bin/letterbox"
else
    build_letterbox
fi

dir=$WORK/letterbox
# Part 3 also needs port 25.
write_imap_config "$dir" $((CONNECTIONS + 10)) smtp
start_letterbox "$dir"
address=$(sed -n 's/^listening imap //p' "$dir/stdout" | head -n 1)
[[ -n $address ]] || die "letterbox printed no 'listening imap' line"
smtp_address=$(sed -n 's/^listening smtp //p' "$dir/stdout" | head -n 1)
[[ -n $smtp_address ]] || die "letterbox printed no 'listening smtp' line"
user=$(sed -n 's/^  Email address: *//p' "$dir/stdout" | head -n 1)
password=$(sed -n 's/^  Password: *//p' "$dir/stdout" | head -n 1)
[[ -n $user && -n $password ]] || die "letterbox printed no first account"

python3 - "$LETTERBOX_PID" "${address##*:}" "$user" "$password" "$CONNECTIONS" \
    "${smtp_address##*:}" "$ROUNDS" <<'EOF'
import socket, sys, threading, time

pid, port, user, password, connections = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
smtp_port, rounds = int(sys.argv[6]), int(sys.argv[7])
LITERAL = 52428800
MiB = 1024 * 1024

def rss():
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024

class Sampler:
    """The peak of VmRSS while the `with` block runs, sampled every 10 ms."""
    def __enter__(self):
        self.before = rss()
        self.peak = self.before
        self.running = True
        self.thread = threading.Thread(target=self.run)
        self.thread.start()
        return self
    def run(self):
        while self.running:
            self.peak = max(self.peak, rss())
            time.sleep(0.01)
    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, rss())
    def report(self, label, goal):
        growth = (self.peak - self.before) / MiB
        print(f"{label}: RSS {self.before / MiB:.1f} MiB before, peak {self.peak / MiB:.1f} MiB, "
              f"growth {growth:.1f} MiB (goal: under {goal} MiB)", flush=True)

def connect():
    s = socket.create_connection(("127.0.0.1", port), timeout=600)
    f = s.makefile("rb")
    assert f.readline().startswith(b"* OK")
    return s, f

def announce(n, held):
    s, f = connect()
    held.append(s)
    s.sendall(f"s{n} APPEND INBOX {{{LITERAL}}}\r\n".encode())
    answer = f.readline()
    chunk = b"x" * MiB
    if answer.startswith(b"+"):
        for _ in range(LITERAL // MiB):
            s.sendall(chunk)
    s.sendall(f"n{n} APPEND INBOX {{{LITERAL}+}}\r\n".encode())
    for _ in range(LITERAL // MiB):
        s.sendall(chunk)
    s.sendall(b"\r\n")
    s.sendall(f"d{n} NOOP\r\n".encode())
    while not f.readline().startswith(f"d{n} ".encode()):
        pass

held = []
with Sampler() as sampler:
    threads = [threading.Thread(target=announce, args=(n, held)) for n in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
sampler.report(f"{connections} unauthenticated connections announcing 50 MB APPEND literals", 64)
for s in held:
    s.close()
time.sleep(1)

def response(f, tag):
    literals = 0
    while True:
        line = f.readline()
        assert line, "connection closed"
        while line.endswith(b"}\r\n") and b"{" in line:
            left = int(line[line.rindex(b"{") + 1:-3])
            literals += 1
            while left:
                left -= len(f.read(min(left, MiB)))
            line = f.readline()
        if line.startswith(tag + b" "):
            return line, literals

s, f = connect()
s.sendall(f'a LOGIN "{user}" "{password}"\r\n'.encode())
assert response(f, b"a")[0].startswith(b"a OK"), "login"
text = b"x" * 76 + b"\r\n"
message = b"Subject: big\r\n\r\n" + text * (1_000_000 // len(text))
s.sendall(f"b APPEND INBOX {{{len(message)}+}}\r\n".encode() + message + b"\r\n")
assert response(f, b"b")[0].startswith(b"b OK"), "append"
s.sendall(b"c SELECT INBOX\r\n")
response(f, b"c")
time.sleep(1)
with Sampler() as sampler:
    s.sendall(b"d FETCH 1 (" + b" ".join([b"BODY[]"] * 400) + b")\r\n")
    done, literals = response(f, b"d")
assert done.startswith(b"d OK") and literals == 400, (done, literals)
sampler.report("FETCH of 400 x BODY[] of a 1 MB message", 128)

line = b"a" * (10 * MiB)
message = b"Subject: one line\r\n\r\n" + line + b"\r\n"
s.sendall(f"e APPEND INBOX {{{len(message)}+}}\r\n".encode() + message + b"\r\n")
assert response(f, b"e")[0].startswith(b"e OK"), "append"
s.close()

def logged_in():
    c, cf = connect()
    c.sendall(f'a LOGIN "{user}" "{password}"\r\nb SELECT INBOX\r\n'.encode())
    assert response(cf, b"a")[0].startswith(b"a OK"), "login"
    response(cf, b"b")
    return c, cf

needle = b"A" * 1023 + b"b"
def search(c, cf, took):
    start = time.monotonic()
    for n in range(rounds):
        c.sendall(f"s{n} SEARCH BODY ".encode() + needle + b"\r\n")
        done = response(cf, f"s{n}".encode())[0]
        assert done.startswith(f"s{n} OK".encode()), done
    took.append((time.monotonic() - start) / rounds)
    c.close()

clients = [logged_in() for _ in range(2)]
took = []
searches = [threading.Thread(target=search, args=(c, cf, took)) for c, cf in clients]
for t in searches:
    t.start()
greetings = []
while any(t.is_alive() for t in searches):
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", smtp_port), timeout=600) as g:
        assert g.makefile("rb").readline().startswith(b"220"), "greeting"
        greetings.append(time.monotonic() - start)
        g.sendall(b"QUIT\r\n")
    time.sleep(0.05)
for t in searches:
    t.join()
print(f"SMTP greeting while 2 clients SEARCH BODY (1 KiB needle, 10 MB one-line body): "
      f"{len(greetings)} greetings, slowest {max(greetings) * 1000:.1f} ms, median "
      f"{sorted(greetings)[len(greetings) // 2] * 1000:.1f} ms (goal: under 100 ms); one SEARCH took "
      f"{max(took):.2f} s", flush=True)
EOF
stop_letterbox "$dir"
