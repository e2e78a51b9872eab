#!/usr/bin/env python3
"""Atomic read-modify-write operations a message through the full pipeline,
counted by callgrind, and where each one is.

Instruction counts miss what these cost: a `lock`-prefixed instruction (or
an `xchg` with memory, locked without the prefix) waits for the cache line
and orders memory around it, several nanoseconds where a plain add takes a
fraction of one. This runs the micro benchmark's counting mode
(`WSGATE_MICRO_COUNT`) under callgrind with instruction-level counts, finds
every such instruction in the binary with `objdump -d`, and prints how many
of them a message executes, with the source line `addr2line` gives for
each.

    cargo bench --config 'profile.bench.package.wsgate.debug="line-tables-only"' --bench micro --no-run
    python3 scripts/atomic_operations.py target/release/deps/micro-<hash> 20000

Needs valgrind and binutils (objdump, addr2line).
"""
import os
import re
import subprocess
import sys
import tempfile

LOCKED = re.compile(r"^\s*([0-9a-f]+):\s+(lock\b.*|xchg\s+\S+,\s*\S*\(.*)$")


def locked_instructions(binary):
    """Address -> text of each locked instruction in `binary`."""
    listing = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", binary],
        check=True, capture_output=True, text=True,
    ).stdout
    found = {}
    for line in listing.splitlines():
        match = LOCKED.match(line)
        if match:
            found[int(match.group(1), 16)] = " ".join(match.group(2).split())
    return found


def executions(binary, count, wanted):
    """Address -> times executed, for the addresses in `wanted`, in a run of
    `count` messages."""
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "callgrind.out")
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--dump-instr=yes",
             f"--callgrind-out-file={out}", binary],
            check=True, capture_output=True,
            env={**os.environ, "WSGATE_MICRO_COUNT": str(count)},
        )
        return parse(out, wanted)


def parse(path, wanted):
    """Reads callgrind's compressed positions (absolute, +n, -n or *)."""
    fields = 1
    address = 0
    call_cost_next = False
    counts = {}
    with open(path) as lines:
        for line in lines:
            line = line.rstrip("\n")
            if line.startswith("positions:"):
                fields = len(line.split()) - 1
                continue
            if not line or not (line[0].isdigit() or line[0] in "+-*"):
                if line.startswith("calls="):
                    call_cost_next = True
                continue
            tokens = line.split()
            position = tokens[0]
            if position.startswith("0x"):
                address = int(position, 16)
            elif position[0] in "+-":
                step = int(position[1:], 0)
                address += step if position[0] == "+" else -step
            elif position != "*":
                address = int(position, 0)
            if call_cost_next:
                # The inclusive cost of a call, not this instruction's own.
                call_cost_next = False
                continue
            if address in wanted and len(tokens) > fields:
                counts[address] = counts.get(address, 0) + int(tokens[fields])
    return counts


def where(binary, address):
    """The innermost function and line of `address`, and the wsgate line
    it was inlined into, if any."""
    frames = subprocess.run(
        ["addr2line", "-f", "-i", "-C", "-e", binary, hex(address)],
        check=True, capture_output=True, text=True,
    ).stdout.splitlines()
    pairs = list(zip(frames[0::2], frames[1::2]))
    ours = [f"{name.split('<')[0]} ({place.rsplit('/', 1)[-1]})"
            for name, place in pairs if "/src/" in place and "rustc" not in place
            and "registry" not in place]
    inner = pairs[0][0].split("(")[0] if pairs else "?"
    return f"{inner[:60]}  in  {ours[0] if ours else pairs[-1][0][:60] if pairs else '?'}"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    binary, count = sys.argv[1], int(sys.argv[2])
    wanted = locked_instructions(binary)
    many = executions(binary, count, wanted)
    none = executions(binary, 0, wanted)
    total = 0.0
    for address in sorted(many, key=lambda a: -(many[a] - none.get(a, 0))):
        per_message = (many[address] - none.get(address, 0)) / count
        if per_message < 0.5:
            continue
        total += per_message
        print(f"{per_message:5.2f}  {wanted[address]:<34} {where(binary, address)}")
    print(f"{total:5.2f}  atomic operations a message")


if __name__ == "__main__":
    main()
