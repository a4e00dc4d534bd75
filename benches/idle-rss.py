"""IDLE sessions against a running letterbox, for benches/idle-rss.sh: logs SESSIONS
clients in over plain IMAP (loopback), CONCURRENT at a time, each SELECTs INBOX and
enters IDLE; prints the server's RSS before, after the logins, and after a delivery that
every session must see as EXISTS. Not a test: it prints figures."""
import asyncio, os, smtplib, sys, time

host, imap_port, smtp_port, user, password, pid, sessions, concurrent = sys.argv[1:9]
imap_port, smtp_port, sessions, concurrent = int(imap_port), int(smtp_port), int(sessions), int(concurrent)

def rss_kib():
    with open("/proc/%s/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

async def expect(reader, prefix):
    while True:
        line = await reader.readline()
        if not line:
            raise RuntimeError("connection closed waiting for %r" % prefix)
        if line.startswith(prefix):
            return line

async def idle_session(gate, ready, results):
    async with gate:
        reader, writer = await asyncio.open_connection(host, imap_port)
        await expect(reader, b"* OK")
        writer.write(b'a LOGIN "%s" "%s"\r\n' % (user.encode(), password.encode()))
        await expect(reader, b"a OK")
        writer.write(b"b SELECT INBOX\r\n")
        await expect(reader, b"b OK")
        writer.write(b"c IDLE\r\n")
        await expect(reader, b"+")
    ready.append(1)
    await expect(reader, b"* ")  # the EXISTS of the delivery
    results.append(time.monotonic())
    writer.write(b"DONE\r\n")
    await expect(reader, b"c OK")
    writer.close()

async def main():
    before = rss_kib()
    gate = asyncio.Semaphore(concurrent)
    ready, results = [], []
    started = time.monotonic()
    tasks = [asyncio.create_task(idle_session(gate, ready, results)) for _ in range(sessions)]
    while len(ready) < sessions:
        await asyncio.sleep(0.2)
        failed = [t for t in tasks if t.done() and t.exception()]
        if failed:
            raise failed[0].exception()
    logged_in = time.monotonic() - started
    await asyncio.sleep(2)
    after = rss_kib()
    sent = time.monotonic()
    await asyncio.get_running_loop().run_in_executor(None, deliver)
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    latencies = sorted(r - sent for r in results)
    print("sessions %d, logged in %d at a time in %.1f s" % (sessions, concurrent, logged_in))
    print("rss before %d KiB, with %d IDLE sessions %d KiB: +%.1f MiB (%.1f KiB per session)"
          % (before, sessions, after, (after - before) / 1024, (after - before) / sessions))
    print("delivery -> EXISTS at every session: p50 %.0f ms, p99 %.0f ms"
          % (latencies[len(latencies) // 2] * 1000, latencies[int(len(latencies) * 0.99) - 1] * 1000))

def deliver():
    s = smtplib.SMTP(host, smtp_port)
    s.sendmail("bench@example.net", [user], b"Subject: wake up\r\n\r\nbody\r\n")
    s.quit()

asyncio.run(main())
