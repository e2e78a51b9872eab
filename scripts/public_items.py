#!/usr/bin/env python3
"""Counts the crate's public API: the items reachable from its root
(through public modules and re-exports), and the public methods of their
inherent impls, from rustdoc's JSON.

    RUSTC_BOOTSTRAP=1 cargo rustdoc --all-features --lib -- \\
        -Z unstable-options --output-format json
    python3 scripts/public_items.py [target/doc/wsgate.json]

Prints one line per kind and the total; with `--list`, every item's path.
"""

import json
import sys
from collections import Counter

TYPES = {"struct", "enum", "trait", "type_alias", "union"}


def kind_of(item):
    return next(iter(item["inner"]))


def main() -> None:
    args = [arg for arg in sys.argv[1:] if not arg.startswith("--")]
    listing = "--list" in sys.argv
    doc = json.load(open(args[0] if args else "target/doc/wsgate.json"))
    index = doc["index"]
    seen = {}
    # (item, the path of the module that names it, or the item's own path)
    stack = [(str(doc["root"]), None)]
    while stack:
        item_id, parent = stack.pop()
        item = index.get(item_id)
        if item is None or item.get("crate_id") != 0:
            continue
        kind = kind_of(item)
        if kind == "use":
            use = item["inner"]["use"]
            if use["id"] is not None:
                # A glob re-export names the module's items in `parent`.
                target = index.get(str(use["id"]))
                if use["is_glob"] and target and kind_of(target) == "module":
                    for child in target["inner"]["module"]["items"]:
                        stack.append((str(child), parent))
                else:
                    stack.append((str(use["id"]), f"{parent}::{use['name']}"))
            continue
        if item_id in seen:
            continue
        if parent is None:
            path = "wsgate"
        elif parent.endswith("::" + (item["name"] or "")):
            path = parent
        else:
            path = f"{parent}::{item['name']}"
        seen[item_id] = (kind, path)
        if kind == "module":
            for child in item["inner"]["module"]["items"]:
                child_item = index.get(str(child))
                if child_item is None or child_item["visibility"] != "public":
                    continue
                stack.append((str(child), path))
        elif kind in ("struct", "enum"):
            for impl_id in item["inner"][kind]["impls"]:
                impl = index.get(str(impl_id))
                if impl is None or impl["inner"]["impl"]["trait"] is not None:
                    continue
                for method in impl["inner"]["impl"]["items"]:
                    method_item = index.get(str(method))
                    if method_item and method_item["visibility"] == "public":
                        method_kind = kind_of(method_item)
                        method_kind = "method" if method_kind == "function" else method_kind
                        seen[str(method)] = (method_kind, f"{path}::{method_item['name']}")
    counts = Counter(kind for kind, _ in seen.values())
    types = sum(counts[kind] for kind in TYPES)
    functions = counts["function"] + counts["method"]
    if listing:
        for kind, path in sorted(seen.values(), key=lambda entry: entry[1]):
            print(f"{kind:12} {path}")
    for kind, count in sorted(counts.items()):
        print(f"{kind:12} {count}")
    print(f"types        {types} (struct, enum, trait, type alias)")
    print(f"functions    {functions} (free functions and inherent methods)")
    print(f"total        {sum(counts.values())}")


if __name__ == "__main__":
    main()
