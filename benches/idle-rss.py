"""IDLE sessions against a running letterbox, for benches/idle-rss.sh: logs SESSIONS
clients in over plain IMAP (loopback), CONCURRENT at a time, each SELECTs INBOX and
enters IDLE; prints the server's RSS and PSS before and after the logins, and the time
from a delivery to the EXISTS at every session. Every session stays in IDLE until all have
seen the EXISTS, so the server's CPU from the delivery to the last EXISTS is the wake-up
alone (no DONE or LOGOUT mixed in). Not a test: it prints figures.

When the EXISTS reached a session is the kernel's receive timestamp of its bytes
(SO_TIMESTAMPNS), not when this client got round to reading them: one Python process
reading thousands of sockets would otherwise measure itself (tens of microseconds a
session, which is as much as the server spends).

Two deliveries, one per way of reading (IDLE_READ, the order of the rounds, default
"live quiet"):
- live: a thread reads every socket as its bytes arrive, while the server is still
  fanning out. On this 2-core machine that thread takes a core's worth of CPU from the
  server it measures (it wakes for and reads thousands of sockets during the fan-out),
  so the figure includes the client's interference.
- quiet: the client reads nothing until the server's CPU time stops rising (under
  QUIET_CPU_MS of CPU in QUIET_WINDOW_MS, 1 ms in 100 ms) after the SMTP transaction
  ended, then reads every socket's queued bytes with their kernel timestamps; a socket
  that has nothing yet is waited for as in "live". The timestamps are the same kernel receive times
  (taken on loopback during the server's write), so holding off changes only who uses
  the CPU meanwhile: real clients run on other machines.
Latencies are printed from the start of the SMTP connection ("delivery began") and from
MAIL FROM (the issue's definition)."""
import asyncio, os, selectors, signal, smtplib, socket, struct, subprocess, sys, threading, time

# Linux's SO_TIMESTAMPNS (= SCM_TIMESTAMPNS, asm-generic/socket.h); Python names neither.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)

host, imap_port, smtp_port, user, password, pid, sessions, concurrent = sys.argv[1:9]
imap_port, smtp_port, sessions, concurrent = int(imap_port), int(smtp_port), int(sessions), int(concurrent)

def cpu_seconds():
    """The server's CPU time (user + system), which a loaded machine delays but does not
    inflate: the cost of waking every session, where wall-clock figures are noise."""
    with open("/proc/%s/stat" % pid) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def cpu_ns_all_threads():
    """The server's CPU time in nanoseconds, summed over its threads (schedstat), finer
    than `cpu_seconds` (clock ticks): to see when the fan-out is over."""
    total = 0
    for task in os.listdir("/proc/%s/task" % pid):
        try:
            with open("/proc/%s/task/%s/schedstat" % (pid, task)) as stat:
                total += int(stat.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total

# The fan-out is over once the server used under QUIET_CPU_MS of CPU in QUIET_WINDOW_MS,
# looked at every QUIET_STEP_MS: coarse steps, so that watching costs the server nothing
# (reading its threads' schedstat takes a few hundred microseconds).
QUIET_CPU_MS = float(os.environ.get("QUIET_CPU_MS", "1"))
QUIET_WINDOW_MS = float(os.environ.get("QUIET_WINDOW_MS", "100"))
QUIET_STEP_MS = float(os.environ.get("QUIET_STEP_MS", "20"))

def wait_until_quiet(smtp_done):
    """Returns once the SMTP transaction ended and the server then used under
    QUIET_CPU_MS of CPU in QUIET_WINDOW_MS: the fan-out is over."""
    smtp_done.wait()
    samples = [cpu_ns_all_threads()]
    window = max(1, round(QUIET_WINDOW_MS / QUIET_STEP_MS))
    while True:
        time.sleep(QUIET_STEP_MS / 1000)
        samples.append(cpu_ns_all_threads())
        if len(samples) > window and samples[-1] - samples[-1 - window] < QUIET_CPU_MS * 1e6:
            return

def proc_kib(name, field):
    """The figure in kiB of FIELD (`Pss:`, `VmRSS:`) in the server's /proc/PID/NAME; 0
    when the file does not have it."""
    with open("/proc/%s/%s" % (pid, name)) as lines:
        for line in lines:
            if line.startswith(field):
                return int(line.split()[1])
    return 0

def pss_kib():
    """Proportional set size: what the process costs the machine, shared pages split."""
    return proc_kib("smaps_rollup", "Pss:")

def rss_kib():
    return proc_kib("status", "VmRSS:")

async def expect(reader, prefix):
    while True:
        line = await reader.readline()
        if not line:
            raise RuntimeError("connection closed waiting for %r" % prefix)
        if line.startswith(prefix):
            return line

async def idle_session(gate, ready, all_seen):
    async with gate:
        reader, writer = await asyncio.open_connection(host, imap_port)
        # Stamped by the kernel as each segment arrives (read in `arrivals`).
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        await expect(reader, b"* OK")
        writer.write(b'a LOGIN "%s" "%s"\r\n' % (user.encode(), password.encode()))
        await expect(reader, b"a OK")
        writer.write(b"b SELECT INBOX\r\n")
        await expect(reader, b"b OK")
        writer.write(b"c IDLE\r\n")
        await expect(reader, b"+")
    # From here `arrivals` reads the socket until the EXISTS came.
    writer.transport.pause_reading()
    ready.append(writer)
    await all_seen.wait()
    writer.transport.resume_reading()
    writer.write(b"DONE\r\n")
    await expect(reader, b"c OK")
    writer.close()

async def main():
    before = rss_kib()
    pss_before = pss_kib()
    all_seen = asyncio.Event()
    gate = asyncio.Semaphore(concurrent)
    ready = []
    started = time.monotonic()
    tasks = [asyncio.create_task(idle_session(gate, ready, all_seen)) for _ in range(sessions)]
    while len(ready) < sessions:
        await asyncio.sleep(0.2)
        failed = [t for t in tasks if t.done() and t.exception()]
        if failed:
            raise failed[0].exception()
    logged_in = time.monotonic() - started
    await asyncio.sleep(2)
    after = rss_kib()
    pss_after = pss_kib()
    print("sessions %d, logged in %d at a time in %.1f s" % (sessions, concurrent, logged_in))
    print("rss before %d KiB, with %d IDLE sessions %d KiB: +%.1f MiB (%.1f KiB per session)"
          % (before, sessions, after, (after - before) / 1024, (after - before) / sessions))
    print("pss before %d KiB, with %d IDLE sessions %d KiB (%.1f MiB in all)"
          % (pss_before, sessions, pss_after, pss_after / 1024), flush=True)
    rounds = os.environ.get("IDLE_READ", "live quiet").split()
    for number, way in enumerate(rounds):
        if way not in ("live", "quiet"):
            raise SystemExit("IDLE_READ: live or quiet, not %r" % way)
        await wake_up(ready, way, number)
    all_seen.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 120)

def percentile_ms(latencies, fraction):
    return latencies[max(0, int(len(latencies) * fraction) - 1)] * 1000

async def wake_up(ready, way, number):
    """One delivery, every session's EXISTS read the WAY way (see the module's comment);
    prints the latencies and the server's CPU."""
    # IDLE_PERF_DATA=FILE: `perf record` the server (software clock, call graphs) from just
    # before the delivery until every session has seen it, to profile the wake-up alone
    # (FILE.N for the round N past the first); IDLE_PERF_FREQ samples a second (1999).
    perf = None
    if os.environ.get("IDLE_PERF_DATA"):
        output = os.environ["IDLE_PERF_DATA"] + ("" if number == 0 else ".%d" % number)
        frequency = os.environ.get("IDLE_PERF_FREQ", "1999")
        perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", frequency, "--call-graph", "dwarf,16384",
                                 "-p", pid, "-o", output])
        await asyncio.sleep(1)
    loop = asyncio.get_running_loop()
    smtp_done = threading.Event()
    cpu_at_last = []
    reading = loop.run_in_executor(None, arrivals, list(ready), way == "quiet", smtp_done, cpu_at_last)
    await asyncio.sleep(0.5)
    cpu_before = cpu_seconds()
    cpu_ns_before = cpu_ns_all_threads()
    marks = {}
    await loop.run_in_executor(None, deliver, marks, smtp_done)
    results = await reading
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait()
    for since, name in ((marks["connect"], "delivery began"), (marks["mail_from"], "MAIL FROM")):
        latencies = sorted(r - since for r in results)
        print("[%s reading] EXISTS at every session, from %s (kernel receive time): first %.0f ms, p50 %.0f ms, p99 %.0f ms"
              % (way, name, latencies[0] * 1000, percentile_ms(latencies, 0.5), percentile_ms(latencies, 0.99)))
    print("[%s reading] the message was accepted (250 to the end of DATA) %.0f ms after MAIL FROM"
          % (way, (marks["accepted"] - marks["mail_from"]) * 1000))
    print("[%s reading] server CPU from the delivery to the last EXISTS: %.0f ms (%.1f us per session); by thread schedstat %.1f ms"
          % (way, (cpu_at_last[0] - cpu_before) * 1000, (cpu_at_last[0] - cpu_before) * 1e6 / sessions,
             (cpu_at_last[1] - cpu_ns_before) / 1e6), flush=True)
    await asyncio.sleep(1)

def arrivals(writers, hold_off, smtp_done, cpu_at_last):
    """Reads every session's socket (its descriptor, asyncio's transport paused) until its first untagged line, the EXISTS of the delivery; returns the
    kernel's receive time of each (CLOCK_REALTIME, as SO_TIMESTAMPNS gives). With
    `hold_off`, reads nothing before the server's fan-out is over (`wait_until_quiet`),
    then every socket once, and waits only for those that had nothing yet. Appends the
    server's CPU time to `cpu_at_last` once every session was read (clock ticks, then
    nanoseconds)."""
    selector = selectors.DefaultSelector()
    sockets = []
    for writer in writers:
        # The transport's own descriptor (not a duplicate: 10,000 sessions would need
        # 20,000 descriptors, past the usual hard limit), let go of with `detach`.
        sock = socket.socket(fileno=writer.get_extra_info("socket").fileno())
        sock.setblocking(False)
        sockets.append((sock, [b""]))
    times = []

    def read(sock, state):
        """One read; true once the EXISTS came (then the socket is let go of). The time is
        that of the read which brought it, so bytes of an earlier round left unread (or
        a keepalive) count for nothing."""
        try:
            data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(16))
        except BlockingIOError:
            return False
        if not data:
            raise RuntimeError("connection closed before the EXISTS")
        stamp = None
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                seconds, nanoseconds = struct.unpack("qq", value[:16])
                stamp = seconds + nanoseconds / 1e9
        state[0] = (state[0] + data)[-64:]
        if b" EXISTS\r\n" in state[0]:
            times.append(stamp)
            sock.detach()
            return True
        return False

    if hold_off:
        wait_until_quiet(smtp_done)
        waiting = [(sock, state) for sock, state in sockets if not read(sock, state)]
    else:
        waiting = sockets
    for sock, state in waiting:
        selector.register(sock, selectors.EVENT_READ, state)
    while len(times) < len(writers):
        for key, _ in selector.select(timeout=60):
            sock = key.fileobj
            selector.unregister(sock)
            if not read(sock, key.data):
                selector.register(sock, selectors.EVENT_READ, key.data)
    cpu_at_last.append(cpu_seconds())
    cpu_at_last.append(cpu_ns_all_threads())
    selector.close()
    return times

def deliver(marks, done):
    """One message to every session's mailbox; `marks` gets the wall-clock times of the
    connection's start, of MAIL FROM and of the 250 that accepted the message (sent once
    it is durable); `done` is set then."""
    marks["connect"] = time.time()
    s = smtplib.SMTP(host, smtp_port)
    s.ehlo()
    marks["mail_from"] = time.time()
    s.sendmail("bench@example.net", [user], b"Subject: wake up\r\n\r\nbody\r\n")
    marks["accepted"] = time.time()
    done.set()
    s.quit()

asyncio.run(main())
