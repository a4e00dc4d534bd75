"""IDLE sessions against a running letterbox, for benches/idle-rss.sh: logs SESSIONS
clients in over plain IMAP (loopback), CONCURRENT at a time, each SELECTs INBOX and
enters IDLE; prints the server's RSS and PSS before and after the logins, and the time
from a delivery to the EXISTS at every session. Every session stays in IDLE until all have
seen the EXISTS, so the server's CPU from the delivery to the last EXISTS is the wake-up
alone (no DONE or LOGOUT mixed in). Not a test: it prints figures.

When the EXISTS reached a session is the kernel's receive timestamp of its bytes
(SO_TIMESTAMPNS), not when this client got round to reading them: one Python process
reading thousands of sockets would otherwise measure itself (tens of microseconds a
session, which is as much as the server spends)."""
import asyncio, os, selectors, signal, smtplib, socket, struct, subprocess, sys, time

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

cpu_at_last = []

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
    # IDLE_PERF_DATA=FILE: `perf record` the server (software clock, call graphs) from just
    # before the delivery until every session has seen it, to profile the wake-up alone.
    perf = None
    if os.environ.get("IDLE_PERF_DATA"):
        perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "1999", "--call-graph", "dwarf,16384",
                                 "-p", pid, "-o", os.environ["IDLE_PERF_DATA"]])
        await asyncio.sleep(1)
    loop = asyncio.get_running_loop()
    reading = loop.run_in_executor(None, arrivals, list(ready))
    await asyncio.sleep(0.5)
    cpu_before = cpu_seconds()
    sent = time.time()
    await loop.run_in_executor(None, deliver)
    results = await reading
    all_seen.set()
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait()
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    latencies = sorted(r - sent for r in results)
    print("sessions %d, logged in %d at a time in %.1f s" % (sessions, concurrent, logged_in))
    print("rss before %d KiB, with %d IDLE sessions %d KiB: +%.1f MiB (%.1f KiB per session)"
          % (before, sessions, after, (after - before) / 1024, (after - before) / sessions))
    print("pss before %d KiB, with %d IDLE sessions %d KiB (%.1f MiB in all)"
          % (pss_before, sessions, pss_after, pss_after / 1024))
    print("delivery -> EXISTS at every session (kernel receive time): first %.0f ms, p50 %.0f ms, p99 %.0f ms"
          % (latencies[0] * 1000, latencies[len(latencies) // 2] * 1000,
             latencies[int(len(latencies) * 0.99) - 1] * 1000))
    print("server CPU from the delivery to the last EXISTS: %.0f ms (%.1f us per session)"
          % ((cpu_at_last[0] - cpu_before) * 1000, (cpu_at_last[0] - cpu_before) * 1e6 / sessions))

def arrivals(writers):
    """Reads every session's socket (a duplicate of its descriptor, asyncio's transport
    paused) until its first untagged line, the EXISTS of the delivery; returns the
    kernel's receive time of each (CLOCK_REALTIME, as SO_TIMESTAMPNS gives)."""
    selector = selectors.DefaultSelector()
    for writer in writers:
        sock = socket.socket(fileno=os.dup(writer.get_extra_info("socket").fileno()))
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, [b"", None])
    times = []
    while len(times) < len(writers):
        for key, _ in selector.select(timeout=60):
            state = key.data
            data, ancillary, _, _ = key.fileobj.recvmsg(4096, socket.CMSG_SPACE(16))
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and state[1] is None:
                    seconds, nanoseconds = struct.unpack("qq", value[:16])
                    state[1] = seconds + nanoseconds / 1e9
            state[0] += data
            if state[0].startswith(b"* ") and b"\r\n" in state[0]:
                times.append(state[1])
                if len(times) == len(writers):
                    cpu_at_last.append(cpu_seconds())
                selector.unregister(key.fileobj)
                key.fileobj.close()
    return times

def deliver():
    s = smtplib.SMTP(host, smtp_port)
    s.sendmail("bench@example.net", [user], b"Subject: wake up\r\n\r\nbody\r\n")
    s.quit()

asyncio.run(main())
