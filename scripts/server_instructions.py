#!/usr/bin/env python3
"""Instructions the server spends a handshake or a message, counted by
callgrind: what the machine's noise does not move.

Starts the load benchmark's server child under `valgrind --tool=callgrind`,
runs a batch to warm it, zeroes callgrind's counters, runs the same batch
again and dumps them, and prints the instructions an item.

    cargo bench --bench load --no-run
    python3 scripts/server_instructions.py handshakes target/release/deps/load-<hash> 200
    python3 scripts/server_instructions.py messages target/release/deps/load-<hash> 2000

`handshakes`: WebSockets opened and closed with an HS256 and then an ES256
Bearer token on the gated server (a server of that one route), and their
difference, then on bare axum. Compare the
difference with one ES256 verification: `WSGATE_JWT_COUNT=local:N` on the
`jwt` benchmark under callgrind (BENCHMARKS.md).

`messages`: the echo of the load benchmark's 64 × 1 shape (64 sockets,
one message in flight at a time, the gated one with its per-message
token) on bare axum with wsgate's read buffer, bare axum with its own, and
the gated server, and what the gated server spends above the first (wsgate's
own cost, like for like). User-space instructions only: both make the same
system calls a message.

Each count comes with the atomic read-modify-writes an item executes
(`lock`-prefixed instructions and `xchg` with memory, found by objdump),
and the calls into the allocator (`malloc`, `calloc`, `realloc`, the
aligned ones, and `free`): with several server threads, glibc's allocator
is where they meet (a block freed on another thread than the one that
allocated it takes its arena's lock), so each allocation is a chance of
contention that a one-thread count does not show.

Needs valgrind, binutils and `pip install websockets`.
"""
import contextlib
import glob
import os
import re
import subprocess
import sys
import time

from websockets.sync.client import connect

from atomic_operations import locked_instructions, parse

OUT = os.environ.get("WSGATE_CALLGRIND_OUT", "/tmp/wsgate-callgrind.out")


class Child:
    """A server child of the load benchmark under callgrind (or the valgrind
    tool `tool` names, with its options)."""

    def __init__(self, exe, side, tool=None):
        if tool is None:
            for f in glob.glob(OUT + "*"):
                os.remove(f)
            self.locked = locked_instructions(exe)
            tool = ["--tool=callgrind", "--dump-instr=yes", f"--callgrind-out-file={OUT}"]
        self.process = subprocess.Popen(
            ["valgrind", *tool, exe, "--server-child", side],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)
        self.port = int(self.process.stdout.readline().split()[1])

    def ask(self, command):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().split()[1:]

    def url(self, path):
        return f"ws://127.0.0.1:{self.port}{path}"

    def counted(self, label, n, batch):
        """Instructions an item of `batch()` (n items), after a warm-up; of
        those the ones in `memset` (tungstenite zeroes its read buffer
        before every read; valgrind counts `rep stosb` a byte at a time,
        so that share says more about the buffer's size than the CPU's
        time); and the atomic read-modify-writes an item (see
        `atomic_operations.py`: each costs nanoseconds that instruction
        counts do not show)."""
        batch()
        callgrind = ["callgrind_control"]
        subprocess.run(callgrind + ["-z", str(self.process.pid)], capture_output=True)
        batch()
        before = set(glob.glob(OUT + "*"))
        subprocess.run(callgrind + ["-d", label, str(self.process.pid)], capture_output=True)
        time.sleep(1)
        total = memset = atomics = allocations = 0
        for f in sorted(set(glob.glob(OUT + "*")) - before):
            atomics += sum(parse(f, self.locked).values())
            allocations += allocator_calls(f)
            for line in open(f):
                if line.startswith(("summary:", "totals:")):
                    total = max(total, int(line.split()[1]))
            functions = subprocess.run(["callgrind_annotate", "--threshold=100", f],
                                       capture_output=True, text=True).stdout
            for line in functions.splitlines():
                found = re.match(r"\s*([\d,]+) .*:__memset", line)
                if found:
                    memset += int(found.group(1).replace(",", ""))
        self.allocations = allocations / n
        return total / n, memset / n, atomics / n

    def stop(self):
        self.process.kill()
        self.process.wait()


ALLOCATOR = {"malloc", "calloc", "realloc", "free", "posix_memalign", "aligned_alloc", "memalign"}


def allocator_calls(path):
    """Calls into the allocator's entry points in one callgrind file: the
    `calls=` lines under a `cfn=` naming one of them (a name is written
    once, in a `fn=` or a `cfn=`, then only its number)."""
    names, calls, target = {}, 0, None
    for line in open(path):
        if line.startswith("fn="):
            # Functions and called functions share one table of names.
            found = re.match(r"fn=\((\d+)\) (.*)", line.strip())
            if found:
                names[found.group(1)] = found.group(2)
        elif line.startswith("cfn="):
            found = re.match(r"cfn=\((\d+)\)(?: (.*))?", line.strip())
            if found:
                if found.group(2):
                    names[found.group(1)] = found.group(2)
                target = names.get(found.group(1))
        elif line.startswith("calls=") and target:
            if target.split("'")[0] in ALLOCATOR:
                calls += int(line.split()[0][len("calls="):])
            target = None
    return calls


def bearer(token):
    return {"authorization": f"Bearer {token}"}


def batch_on(child, path, token, n):
    """Opens and closes `n` WebSockets on `child`'s `path`."""
    headers = bearer(token) if token else {}

    def run():
        for _ in range(n):
            with connect(child.url(path), additional_headers=headers, open_timeout=60):
                pass
    return run


def handshakes(exe, n):
    # Each on a server of its one route, as bare has one: axum clones every
    # route of a router for each connection it accepts.
    counts = {}
    for name, path in [("hs256", "/ws"), ("es256", "/ws/es256")]:
        child = Child(exe, f"wsgate:{path}")
        token = child.ask(f"token {name}")[0]
        total, _, atomics = child.counted(name, n, batch_on(child, path, token, n))
        counts[name] = total
        print(f"{name}: {total:,.0f} instructions a handshake, {atomics:,.0f} atomic, "
              f"{child.allocations:,.0f} allocator calls ({n} handshakes)")
        child.stop()
    print(f"ES256 − HS256: {counts['es256'] - counts['hs256']:,.0f} instructions a handshake")
    bare = Child(exe, "bare-small-buffer")
    b, _, b_atomics = bare.counted("bare", n, batch_on(bare, "/ws", None, n))
    print(f"bare (16 KiB read buffer): {b:,.0f} instructions a handshake, {b_atomics:,.0f} atomic, "
          f"{bare.allocations:,.0f} allocator calls ({n} handshakes)")
    bare.stop()


def messages(exe, n):
    counts = {}
    for side in ["bare-small-buffer", "bare", "wsgate"]:
        child = Child(exe, side)
        token = child.ask("token hs256")[0] if side == "wsgate" else "unused"
        message = f'{{"type":"say","text":"hello, world","token":"{token}"}}'
        with contextlib.ExitStack() as stack:
            sockets = [stack.enter_context(connect(child.url("/ws"), additional_headers=bearer(token),
                                                   open_timeout=60))
                       for _ in range(64)]

            def batch():
                for i in range(n):
                    ws = sockets[i % len(sockets)]
                    ws.send(message)
                    ws.recv(timeout=60)

            total, memset, atomics = child.counted(side, n, batch)
        counts[side] = total - memset
        print(f"{side}: {total:,.0f} instructions a message, {memset:,.0f} of them in memset, "
              f"{total - memset:,.0f} without, {atomics:.1f} atomic ({n} messages)")
        child.stop()
    own = counts["wsgate"] - counts["bare-small-buffer"]
    print(f"wsgate − bare with the same read buffer, without memset: {own:,.0f} instructions a message")


if __name__ == "__main__":
    what, exe, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    {"handshakes": handshakes, "messages": messages}[what](exe, n)
