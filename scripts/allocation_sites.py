#!/usr/bin/env python3
"""Where a handshake's allocations are made: the load benchmark's server
child under valgrind's DHAT, bare axum beside wsgate (HS256 Bearer, a
server of the one route), blocks allocated a handshake by the first frame
that is neither the allocator nor a standard or container type's code.

    cargo bench --bench load --no-run
    python3 scripts/allocation_sites.py target/release/deps/load-<hash> 200

Each side runs twice, with n and with 2n handshakes, and what a handshake
costs is the difference over n: the start (keys, router, runtime) cancels
out.

Needs valgrind and `pip install websockets`.
"""
import collections
import json
import os
import re
import subprocess
import sys
import tempfile

from server_instructions import Child, batch_on

# Frames passed over on the way up from the allocator to the code that asked.
PLUMBING = re.compile(
    r"^(malloc|calloc|realloc|posix_memalign|memalign|__rust|__rdl|alloc::|core::|std::|"
    r"hashbrown::|bytes::|serde::|<(alloc|core|std|hashbrown|bytes|serde|T as|&))")


def dhat_profile(exe, side, out, run):
    """The DHAT profile of a server child `side` once `run(child)` is done."""
    child = Child(exe, side, tool=["--tool=dhat", f"--dhat-out-file={out}"])
    run(child)
    # DHAT writes its profile as the child exits, at the end of its input.
    child.process.stdin.close()
    child.process.wait()
    with open(out) as f:
        return json.load(f)


def sites(profile):
    """Blocks allocated, by the first frame past the plumbing."""
    frames = [re.sub(r" \(.*\)$", "", re.sub(r"^0x[0-9A-Fa-f]+: ", "", f)) for f in profile["ftbl"]]
    counts = collections.Counter()
    for point in profile["pps"]:
        stack = [frames[i] for i in point["fs"]]
        site = next((frame for frame in stack if not PLUMBING.match(frame)), "?")
        counts[site] += point["tbk"]
    return counts


def per_handshake(exe, side, path, n):
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for count in (n, 2 * n):
            def run(child, count=count):
                token = child.ask("token hs256")[0] if side.startswith("wsgate") else None
                batch_on(child, path, token, count)()

            out = os.path.join(folder, f"dhat-{count}.json")
            runs.append(sites(dhat_profile(exe, side, out, run)))
    once, twice = runs
    return {site: (twice[site] - once.get(site, 0)) / n for site in twice}


def main():
    exe, n = sys.argv[1], int(sys.argv[2])
    bare = per_handshake(exe, "bare-small-buffer", "/ws", n)
    gated = per_handshake(exe, "wsgate:/ws", "/ws", n)
    print(f"allocations a handshake: bare (16 KiB read buffer) {sum(bare.values()):.1f}, "
          f"wsgate {sum(gated.values()):.1f} ({n} and {2 * n} handshakes)")
    print(f"{'bare':>6} {'wsgate':>6}  site")
    for site in sorted(set(bare) | set(gated), key=lambda s: -max(bare.get(s, 0), gated.get(s, 0))):
        b, g = bare.get(site, 0), gated.get(site, 0)
        if max(b, g) >= 0.5:
            print(f"{b:6.1f} {g:6.1f}  {site[:150]}")


if __name__ == "__main__":
    main()
