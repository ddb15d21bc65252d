#!/usr/bin/env python3
"""The import check of the ossfs-rs crate: layers import one way, no module
imports another in a circle, and no source file grows past the size limit
without saying why.

Usage: python3 scripts/layers.py [ossfs-rs/src]
       python3 scripts/layers.py --self-test   (the check fails on each kind of problem)

What counts as an import: every `crate::a::b` path (in code and in doc
links, which rustdoc resolves too), every `use crate::{a, b}` group and
every `super::x` path. Test code is left out: `#[cfg(test)] mod` blocks,
files named tests.rs and files under a `tests/` folder.

Rules, each printed as one line when broken; the exit status is 1 when any
line is printed:
- `layer`: a file of layer N names a module of a layer above N (LAYERS
  below; modules in one row are peers and may import each other, but not in
  a circle);
- `island`: `serve` imports only what ISLAND allows, and only the modules
  in ISLAND_USERS import it;
- `cycle`: a strongly connected set of top-level modules, or of files;
- `size`: a file with more than MAX_LINES lines of non-test code whose
  `//!` header has no `Length:` line saying why it is long;
- `header`: a file whose `//!` header has no `Imports` line saying what it
  may import.
"""
import os
import re
import sys

# Bottom first. A module may import its own row and the rows below.
LAYERS = [
    ["sys"],
    ["store"],
    ["memory", "metrics"],
    ["cache", "prefetch", "upload"],
    ["fs"],
    ["fuse"],
    ["config", "check"],
    ["supervisor"],
    ["facade"],
    ["cli"],
]
# The embedded endpoint stands beside the stack.
ISLAND = "serve"
ISLAND_IMPORTS = {"store", "sys"}
ISLAND_USERS = {"cli", "test_support"}
# Test helpers (compiled only for tests) and the crate root see everything.
UNRANKED = {"test_support", "(root)"}
MAX_LINES = 600
# The crate root lists the layers instead; the binary's main is one call.
HEADER_FREE = {"lib.rs", "main.rs"}

RANK = {m: i for i, row in enumerate(LAYERS) for m in row}


def strip_tests(text):
    """`text` without its `#[cfg(test)] mod name { ... }` blocks."""
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def module_path(rel):
    parts = rel[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def read_sources(src):
    files = {}
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if d != "tests")
        for name in sorted(filenames):
            if name.endswith(".rs") and name != "tests.rs":
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8") as f:
                    files[os.path.relpath(path, src)] = f.read()
    return files


def references(rel, text):
    """The module paths `text` (of file `rel`) names."""
    me = module_path(rel)
    found = set()
    for m in re.finditer(r"\bcrate::((?:\w+::)*\w+)", text):
        found.add(tuple(m.group(1).split("::")))
    for m in re.finditer(r"\buse\s+crate::\{([^;]*)\}", text, re.S):
        for item in re.findall(r"(\w+)(?:::|\s*[,}]|$)", m.group(1)):
            found.add((item,))
    # `super::super::x` climbs one module per `super`. In a mod.rs the
    # file is the module itself, so its first `super` is its parent too.
    for m in re.finditer(r"\b((?:super::)+)((?:\w+::)*\w+)", text):
        ups = m.group(1).count("super::")
        base = me[: len(me) - ups] if ups <= len(me) else []
        found.add(tuple(base + m.group(2).split("::")))
    # `use super::{a, b::c}` and `use super::super::{...}` groups.
    for m in re.finditer(r"\buse\s+((?:super::)+)\{([^;]*)\}", text, re.S):
        ups = m.group(1).count("super::")
        base = me[: len(me) - ups] if ups <= len(me) else []
        for item in re.findall(r"(\w+)(?:::|\s*[,}]|$)", m.group(2)):
            if item != "self":
                found.add(tuple(base + [item]))
    return found


def sccs(graph):
    """Tarjan's strongly connected components with more than one node."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]
    nodes = sorted(set(graph) | {v for vs in graph.values() for v in vs})

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in nodes:
        if v not in index:
            visit(v)
    return out


def check(src):
    raw = read_sources(src)
    code = {rel: strip_tests(text) for rel, text in raw.items()}
    known = {tuple(module_path(rel)): rel for rel in code}
    problems = []
    top_graph, file_graph = {}, {}
    for rel, text in sorted(code.items()):
        me = module_path(rel)
        mine = me[0] if me else "(root)"
        for target in sorted(references(rel, text)):
            dst = next((known[target[:k]] for k in range(len(target), 0, -1) if target[:k] in known), None)
            if dst is None or dst == rel:
                continue
            file_graph.setdefault(rel, set()).add(dst)
            theirs = target[0]
            if theirs == mine or mine in UNRANKED or theirs not in RANK and theirs != ISLAND:
                continue
            top_graph.setdefault(mine, set()).add(theirs)
            where = f"{rel} -> {'::'.join(target)}"
            if mine == ISLAND:
                if theirs not in ISLAND_IMPORTS:
                    problems.append(f"island: {where}: serve may import only {sorted(ISLAND_IMPORTS)}")
            elif theirs == ISLAND:
                if mine not in ISLAND_USERS:
                    problems.append(f"island: {where}: only {sorted(ISLAND_USERS)} may import serve")
            elif mine not in RANK:
                problems.append(f"layer: {where}: module {mine} has no layer in scripts/layers.py")
            elif RANK[theirs] > RANK[mine]:
                problems.append(f"layer: {where}: {mine} (layer {RANK[mine]}) imports {theirs} (layer {RANK[theirs]})")
    for comp in sccs(top_graph):
        problems.append(f"cycle: top-level modules {' '.join(comp)}")
    for comp in sccs(file_graph):
        problems.append(f"cycle: files {' '.join(comp)}")
    for rel, text in sorted(code.items()):
        header = "\n".join(l for l in raw[rel].splitlines() if l.startswith("//!"))
        if rel not in HEADER_FREE and not re.search(r"^//!.*\bImports\b", header, re.M):
            problems.append(f"header: {rel}: its `//!` header does not say what it may import (an `Imports:` line)")
        lines = [l for l in text.splitlines() if l.strip()]
        header = "\n".join(l for l in raw[rel].splitlines() if l.startswith("//!"))
        if len(lines) > MAX_LINES and "Length:" not in header:
            problems.append(f"size: {rel}: {len(lines)} lines of non-test code (limit {MAX_LINES}); split it or say why in a `//! Length:` line")
    return problems


def self_test():
    """The check must fail on each kind of problem: a throw-away tree with
    one upward import, one island breach, one cycle and one long file."""
    import tempfile

    def tree(files):
        root = tempfile.mkdtemp(prefix="layers-self-test-")
        for rel, text in files.items():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        return root

    cases = [
        ("layer", {"store/mod.rs": "use crate::fs::Fs;\n", "fs/mod.rs": "pub struct Fs;\n"}),
        ("island", {"fuse/mod.rs": "use crate::serve::S;\n", "serve/mod.rs": "pub struct S;\n"}),
        ("cycle", {"fs/a.rs": "use super::b::B;\n", "fs/b.rs": "use super::a::A;\n"}),
        ("cycle", {"fs/a.rs": "use super::{b, c};\n", "fs/b.rs": "use super::super::fs::a::A;\n", "fs/c.rs": ""}),
        ("size", {"sys/big.rs": "//! Big.\n" + "fn f() {}\n" * (MAX_LINES + 1)}),
        ("header", {"sys/x.rs": "//! Owns x.\nfn f() {}\n"}),
    ]
    imports = "//! Imports: as named.\n"
    clean = {"store/mod.rs": imports + "use crate::sys::x;\n#[cfg(test)]\nmod tests {\n    use crate::cli::C;\n}\n",
             "sys/x.rs": imports + "//! Length: a table.\n" + "fn f() {}\n" * (MAX_LINES + 1),
             "cli/mod.rs": imports + "use crate::serve::S;\n", "serve/mod.rs": imports + "use crate::store::T;\n"}
    import shutil

    def check_tree(files):
        root = tree(files)
        try:
            return check(root)
        finally:
            shutil.rmtree(root)

    failed = []
    for kind, files in cases:
        found = check_tree(files)
        if not any(p.startswith(kind + ":") for p in found):
            failed.append(f"self-test: a {kind} problem was not reported (got {found})")
    found = check_tree(clean)
    if found:
        failed.append(f"self-test: a clean tree was reported: {found}")
    for f in failed:
        print(f)
    return 1 if failed else 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "ossfs-rs", "src")
    problems = check(os.path.abspath(src))
    for p in problems:
        print(p)
    modules = sorted({module_path(r)[0] for r in read_sources(os.path.abspath(src)) if module_path(r)})
    unlayered = [m for m in modules if m not in RANK and m != ISLAND and m not in UNRANKED]
    for m in unlayered:
        print(f"layer: module {m} has no layer in scripts/layers.py")
    if problems or unlayered:
        print(f"scripts/layers.py: {len(problems) + len(unlayered)} problem(s)")
        return 1
    print(f"scripts/layers.py: {len(modules)} modules in {len(LAYERS)} layers, imports one way, no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
