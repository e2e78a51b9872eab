#!/usr/bin/env python3
"""Counts the imports between the crate's modules that run against the data
flow, and the import cycles between modules.

The order, lowest first: what every stage stands on, the parts the stages are
built from, the stages in the order data flows through them (handshake →
socket → pipeline), and the gate above them. A module may import from its own
rank or lower; an import from a higher rank runs against the flow.

    python3 scripts/layering.py [src-dir]

Exits with 1 when any import runs against the flow or two modules import
each other (CI runs it).
"""

import re
import sys
from pathlib import Path

RANKS = [
    # Below every stage.
    {"lib", "error", "secret", "clock", "hex", "random", "recheck", "principal", "token", "boxed", "claims", "confirmation", "certificate"},
    {"session"},
    {"refusal"},
    # The parts.
    {"store", "password", "jwt", "ticket", "dpop"},
    {"audit"},
    {"limit", "authenticate", "oidc", "redis", "sql"},
    # The stages, in the order data flows (the earlier layout's names too).
    {"handshake"},
    {"socket"},
    {"pipeline", "message"},
    {"guard"},
    # Above the stages.
    {"gate", "prelude", "accounts", "refresh_sessions", "serve"},
]
RANK = {module: rank for rank, modules in enumerate(RANKS) for module in modules}


def module_of(path: Path, src: Path) -> str:
    parts = path.relative_to(src).with_suffix("").parts
    return parts[0]


def imports(text: str):
    # `use crate::x…` and `crate::x::…` paths in code (doc comments and
    # line comments left out).
    code = "\n".join(line.split("//")[0] for line in text.splitlines())
    return set(re.findall(r"\bcrate::([a-z_]+)", code))


def main() -> None:
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "src")
    edges = {}
    for path in sorted(src.rglob("*.rs")):
        source = module_of(path, src)
        for target in imports(path.read_text()):
            if target != source and target in RANK:
                edges.setdefault((source, target), []).append(str(path.relative_to(src)))
    against = sorted(
        (source, target, files)
        for (source, target), files in edges.items()
        if RANK.get(target, 0) > RANK.get(source, 0)
    )
    print(f"imports against the flow: {len(against)} module pairs")
    for source, target, files in against:
        print(f"  {source} -> {target}: {', '.join(files)}")
    pairs = {(source, target) for source, target in edges}
    cycles = sorted({tuple(sorted(pair)) for pair in pairs if (pair[1], pair[0]) in pairs})
    print(f"two-way imports between modules: {len(cycles)}")
    for first, second in cycles:
        print(f"  {first} <-> {second}")
    sys.exit(1 if against or cycles else 0)


if __name__ == "__main__":
    main()
