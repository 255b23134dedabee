#!/usr/bin/env python3
"""check_layers.py: dependencies between source files run one way.

Usage: check_layers.py SRC_DIR BUILD_DIR [--graph]

For each program directory (src/server, src/client) it builds a graph of its files,
file A -> file B when A calls or reads a symbol that B defines (read off the object
files with `nm`, so only real references count, not declarations) or when A includes
B's header. A cycle in that graph means two files can only be understood together,
which is what the layering forbids (docs/architecture.md); every cycle found is
printed with the symbols or includes that make it. Function pointers set through a
callback struct are not references, which is the intended way for a lower layer to
reach an upper one.

It also checks that libqpc (lib/ and include/) names neither program nor their
settings: the library knows nothing of its users.

With --graph it prints each program's file graph instead ("file: the files it calls
or includes"), the table docs/architecture.md shows.

Exit status: 0 when clean, 1 with a report otherwise, 2 on a usage error.
"""
import os
import re
import subprocess
import sys

PROGRAMS = {
    "src/server": "qpc-server.dir",
    "src/client": "qpc.dir",
}

# What libqpc must not mention: the programs' names (as identifiers or in text) and
# their settings types. "qpc" alone is the project prefix, so it is not in the list.
LIB_FORBIDDEN = re.compile(
    r"qpc-server|\bqpc_server_|\bqpc_client_|\bserver_config\b|\bclient_config\b|"
    r"server_keys|client_keys|src/server|src/client")


def objects_of(build, target_dir, prog_dir):
    """Maps a source file stem ('delivery') to every object of that file in the build."""
    found = {}
    for root, _dirs, files in os.walk(build):
        if "CMakeFiles" not in root:
            continue
        rel = root.replace(os.sep, "/")
        if not rel.endswith("/" + prog_dir) and ("/" + prog_dir + "/") not in rel + "/":
            continue
        for f in files:
            if f.endswith(".c.o"):
                found.setdefault(f[:-4], []).append(os.path.join(root, f))
    return found


def nm_symbols(path, defined):
    args = ["nm", "-g", "--defined-only" if defined else "--undefined-only", path]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    syms = set()
    for line in out.splitlines():
        parts = line.split()
        if parts:
            syms.add(parts[-1])
    return syms


def include_edges(src_dir, stems):
    """(a, b, header) for every #include "b.h" in a.c or a.h, both stems of this dir."""
    edges = []
    for stem in stems:
        for ext in (".c", ".h"):
            path = os.path.join(src_dir, stem + ext)
            if not os.path.exists(path):
                continue
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    m = re.match(r'\s*#\s*include\s+"([^"/]+)\.h"', line)
                    if m and m.group(1) in stems and m.group(1) != stem:
                        edges.append((stem, m.group(1), "#include " + m.group(1) + ".h"))
    return edges


def cycles(nodes, edges):
    """Strongly connected components with more than one node (Tarjan)."""
    graph = {n: set() for n in nodes}
    for a, b in edges:
        graph[a].add(b)
    index, low, on_stack, stack, sccs = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return sccs


def file_graph(src, build, prog_dir, target):
    """(stems, {(a, b): reasons}) for one program directory, or (stems, None) unbuilt."""
    src_dir = os.path.join(src, prog_dir)
    stems = {f[:-2] for f in os.listdir(src_dir) if f.endswith((".c", ".h"))}
    objs = objects_of(build, target, prog_dir)
    if not objs:
        return stems, None
    defined = {}
    for stem, paths in objs.items():
        for p in paths:
            for s in nm_symbols(p, True):
                defined.setdefault(s, stem)
    why = {}
    for stem, paths in objs.items():
        for p in paths:
            for s in nm_symbols(p, False):
                owner = defined.get(s)
                if owner and owner != stem:
                    why.setdefault((stem, owner), set()).add(s + "()")
    for a, b, inc in include_edges(src_dir, stems):
        why.setdefault((a, b), set()).add(inc)
    return stems, why


def check_program(src, build, prog_dir, target):
    stems, why = file_graph(src, build, prog_dir, target)
    if why is None:
        return ["%s: no object files under %s (build it first)" % (prog_dir, build)]
    problems = []
    for comp in cycles(stems, why.keys()):
        lines = ["%s: call/include cycle among %s:" % (prog_dir, ", ".join(comp))]
        for (a, b), reasons in sorted(why.items()):
            if a in comp and b in comp:
                lines.append("    %s -> %s: %s" % (a, b, ", ".join(sorted(reasons)[:6])))
        problems.append("\n".join(lines))
    return problems


def check_library(src):
    problems = []
    for top in ("lib", "include"):
        for root, _dirs, files in os.walk(os.path.join(src, top)):
            for f in sorted(files):
                if not f.endswith((".c", ".h")):
                    continue
                path = os.path.join(root, f)
                with open(path, encoding="utf-8", errors="replace") as fh:
                    for n, line in enumerate(fh, 1):
                        m = LIB_FORBIDDEN.search(line)
                        if m:
                            problems.append("%s:%d: libqpc names a program or its settings "
                                            "(%s)" % (os.path.relpath(path, src), n, m.group(0)))
    return problems


def print_graph(src, build):
    for prog_dir, target in PROGRAMS.items():
        stems, why = file_graph(src, build, prog_dir, target)
        print("%s:" % prog_dir)
        for stem in sorted(stems):
            callees = sorted({b for (a, b) in (why or {}) if a == stem})
            print("  %-20s %s" % (stem, ", ".join(callees) if callees else "-"))
    return 0


def main(argv):
    if len(argv) == 4 and argv[3] == "--graph":
        return print_graph(argv[1], argv[2])
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    src, build = argv[1], argv[2]
    problems = []
    for prog_dir, target in PROGRAMS.items():
        problems += check_program(src, build, prog_dir, target)
    problems += check_library(src)
    for p in problems:
        print(p)
    if problems:
        print("check_layers: %d problem(s)" % len(problems))
        return 1
    print("check_layers: no cycles among src/server or src/client files; "
          "libqpc names neither program")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
