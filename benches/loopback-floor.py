"""The kernel's own cost of what an IDLE wake-up must do at the least: one small write to
each of N connected loopback TCP sockets whose peers do not read (as in idle-rss.py's
"quiet" round). Prints the CPU time of the writes (user + system of this process), which
is a floor for the server's CPU in benches/idle-rss.sh: on loopback the receiving side's
TCP work (the softirq that queues the segment and sends the ACK) runs in the writer's
system call, so it is charged to the writer as it is to letterbox there.
    python3 benches/loopback-floor.py N
The N peers live in a child process (N descriptors each side fit the usual hard limit of
20,000 where 2N in one process would not). Not a test: it prints figures."""
import os, resource, socket, sys, time

N = int(sys.argv[1])
LINE = b"* 2 EXISTS\r\n"
ROUNDS = 3

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
wanted = N + 64 if hard == resource.RLIM_INFINITY else min(hard, N + 64)
resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1024)
port = listener.getsockname()[1]
# The peers: N connections held open, never read, until the parent closes the pipe.
read_end, write_end = os.pipe()
child = os.fork()
if child == 0:
    os.close(write_end)
    peers = [socket.create_connection(("127.0.0.1", port)) for _ in range(N)]
    os.read(read_end, 1)
    os._exit(0)
os.close(read_end)
writers = [listener.accept()[0] for _ in range(N)]
for number in range(ROUNDS):
    cpu, wall = time.process_time(), time.perf_counter()
    for writer in writers:
        writer.send(LINE)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print("loopback floor, round %d: %d writes of %d bytes, CPU %.1f ms (%.1f us a write), wall %.1f ms"
          % (number, N, len(LINE), cpu * 1000, cpu * 1e6 / N, wall * 1000), flush=True)
os.close(write_end)
os.waitpid(child, 0)
