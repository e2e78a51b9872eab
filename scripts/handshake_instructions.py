#!/usr/bin/env python3
"""Instructions a handshake, counted by callgrind: what the machine's noise
does not move.

Starts the load benchmark's gated server child under
`valgrind --tool=callgrind`, opens N WebSockets with an HS256 and then an
ES256 Bearer token (after N of each to warm it), zeroing callgrind's
counters before each batch and dumping them after, and prints the
instructions a handshake of each and their difference. Compare the
difference with one ES256 verification:
`WSGATE_JWT_COUNT=local:N` on the `jwt` benchmark under callgrind
(BENCHMARKS.md).

    cargo bench --bench load --no-run
    python3 scripts/handshake_instructions.py target/release/deps/load-<hash> 200

Needs valgrind and `pip install websockets`.
"""
import subprocess, sys, time, glob, os, re
from websockets.sync.client import connect
exe = sys.argv[1]; n = int(sys.argv[2])
out = "/tmp/cg-hs.out"
for f in glob.glob(out + "*"): os.remove(f)
child = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                          exe, "--server-child", "wsgate"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
port = int(child.stdout.readline().split()[1])
def ask(cmd):
    child.stdin.write(cmd + "\n"); child.stdin.flush()
    return child.stdout.readline().split()[1:]
hs = ask("token hs256")[0]; es = ask("token es256")[0]
def batch(path, token):
    for _ in range(n):
        with connect(f"ws://127.0.0.1:{port}{path}", additional_headers={"authorization": f"Bearer {token}"}, open_timeout=60) as ws:
            pass
def counted(label, path, token):
    batch(path, token)  # warm
    subprocess.run(["callgrind_control", "-z", str(child.pid)], capture_output=True)
    batch(path, token)
    before = set(glob.glob(out + "*"))
    subprocess.run(["callgrind_control", "-d", label, str(child.pid)], capture_output=True)
    time.sleep(1)
    new = sorted(set(glob.glob(out + "*")) - before)
    total = 0
    for f in new:
        for line in open(f):
            if line.startswith("summary:") or line.startswith("totals:"):
                total = max(total, int(line.split()[1]))
    print(f"{label}: {total/n:,.0f} instructions a handshake ({n} handshakes)")
    return total / n
h = counted("hs256", "/ws", hs)
e = counted("es256", "/ws/es256", es)
print(f"ES256 − HS256: {e-h:,.0f} instructions a handshake")
child.kill()
