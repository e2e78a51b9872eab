#!/usr/bin/env python3
"""Counts the imports between the crate's modules that run against the data
flow, and the import cycles between modules.

The order, lowest first: what every stage stands on, the parts the stages are
built from, the stages in the order data flows through them (handshake →
socket → pipeline), and the gate above them. A module may import from its own
rank or lower; an import from a higher rank runs against the flow.

    python3 scripts/layering.py [src-dir]

Exits with 1 when any import runs against the flow, two modules import
each other, or two files do (CI runs it). Within a module, a file is the
unit: `handshake/layer.rs` may use `handshake/config.rs` or the other way
round, not both. A `mod.rs` declaring and re-exporting its own files is not
an import of them.
"""

import re
import sys
from pathlib import Path

# Files that stand apart from their module, at a rank of their own: a small
# vocabulary every stage names (audit's event kinds and outcomes are named
# by the session's decisions, below the audit sink itself).
SHARED_FILES = {"audit/kind", "pipeline/deliver", "wiring/settings"}

RANKS = [
    # Below every stage.
    {"audit/kind", "lib", "error", "secret", "clock", "hex", "random", "recheck", "principal", "token", "boxed", "claims", "confirmation", "certificate"},
    {"session"},
    # The pipeline's innermost service: a socket gate's default pipeline.
    {"pipeline/deliver"},
    {"refusal"},
    # The parts.
    {"store", "password", "jwt", "ticket", "dpop"},
    {"audit"},
    {"limit", "authenticate", "oidc", "redis", "sql"},
    # The settings every stage shares (the rest of `wiring` gathers the
    # hand-wiring kit, above the stages).
    {"wiring/settings"},
    # The stages, in the order data flows (the earlier layout's names too).
    {"handshake"},
    {"socket"},
    {"pipeline", "message"},
    {"guard"},
    # Above the stages.
    {"gate", "prelude", "accounts", "refresh_sessions", "serve", "wiring"},
]
RANK = {module: rank for rank, modules in enumerate(RANKS) for module in modules}


def module_of(path: Path, src: Path) -> str:
    parts = path.relative_to(src).with_suffix("").parts
    shared = "/".join(parts[:2])
    return shared if shared in SHARED_FILES else parts[0]


def imports(text: str):
    # `use crate::x…` and `crate::x::…` paths in code (doc comments and
    # line comments left out).
    code = "\n".join(line.split("//")[0] for line in text.splitlines())
    found = set()
    for first, second in re.findall(r"\bcrate::([a-z_]+)(?:::([a-z_]+))?", code):
        shared = f"{first}/{second}"
        found.add(shared if shared in SHARED_FILES else first)
    return found


def file_module(path: Path, src: Path) -> tuple:
    """The module path of a file: `handshake/layer.rs` is
    `("handshake", "layer")`, `handshake/mod.rs` and `lib.rs` their module."""
    parts = path.relative_to(src).with_suffix("").parts
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return tuple(parts)


def file_imports(text: str, own: tuple, is_mod: bool):
    """The module paths a file names (`crate::a::b::…`, `super::…`,
    `self::…`), outside its test module."""
    code = text.split("#[cfg(test)]\nmod tests")[0]
    code = "\n".join(line.split("//")[0] for line in code.splitlines())
    # A `mod.rs` is its module; any other file's `super` is its parent.
    parent = own if is_mod else own[:-1]
    found = set()
    for match in re.finditer(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)", code):
        root, rest = match.group(1), match.group(2).split("::")[1:]
        if root == "crate":
            base = ()
        elif root == "super":
            base = parent[:-1] if is_mod else parent
        else:
            base = parent if is_mod else own
        found.add(base + tuple(rest))
    return found


def file_cycles(src: Path):
    files = {}
    for path in sorted(src.rglob("*.rs")):
        files[file_module(path, src)] = path
    edges = set()
    for module, path in files.items():
        is_mod = path.name in ("mod.rs", "lib.rs")
        for named in file_imports(path.read_text(), module, is_mod):
            # The longest prefix that is a file: the file the name is in.
            target = next(
                (named[:n] for n in range(len(named), -1, -1) if named[:n] in files), None
            )
            if target is None or target == module:
                continue
            # A module's own mod.rs declares and re-exports its files.
            if is_mod and target[: len(module)] == module:
                continue
            edges.add((module, target))
    return sorted(
        {tuple(sorted(edge)) for edge in edges if (edge[1], edge[0]) in edges}
    )


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
    file_pairs = file_cycles(src)
    print(f"two-way imports between files: {len(file_pairs)}")
    for first, second in file_pairs:
        print(f"  {'/'.join(first) or 'lib'} <-> {'/'.join(second) or 'lib'}")
    sys.exit(1 if against or cycles or file_pairs else 0)


if __name__ == "__main__":
    main()
