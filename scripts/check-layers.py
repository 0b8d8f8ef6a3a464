#!/usr/bin/env python3
"""scripts/check-layers.py [--root DIR] [--build DIR] [--data FILE] [--enforce|--report]

Checks that every source file of resil only includes headers of, and only
calls functions defined in, its own module or a lower layer, as written in
cmake/layers.txt (see docs/layers.md).  Includes are read from the sources;
calls from the object files of a build tree (`nm`: each object's undefined
resil_* / resil__* symbols, mapped to the object that defines them), so
calls made through inline functions of headers are seen too.

It prints the lines of each .c file, the 15 longest functions, the
cross-module table (module -> module: distinct symbols used), and the
violations.  Exit status: 1 when there are violations (or files the data
file does not place) and enforcement is on (`enforce = yes` in the data
file, or --enforce), else 0; 2 for a usage error or a missing build.
"""
import argparse
import fnmatch
import glob
import os
import re
import subprocess
import sys


def parse_data(path):
    layers, rules, allow, enforce = [], [], set(), False
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            words = line.split()
            if words[0] == "layers":
                layers = words[1:]
            elif words[0] == "enforce":
                val = line.split("=", 1)[1].strip() if "=" in line else ""
                if val not in ("yes", "no"):
                    sys.exit(f"{path}:{n}: enforce = yes|no, not '{val}'")
                enforce = val == "yes"
            elif words[0] == "allow":
                if len(words) != 3:
                    sys.exit(f"{path}:{n}: expected: allow FROM_MODULE TO_MODULE")
                allow.add((words[1], words[2]))
            else:
                if len(words) != 3:
                    sys.exit(f"{path}:{n}: expected: PATTERN LAYER MODULE")
                if words[1] not in layers:
                    sys.exit(f"{path}:{n}: unknown layer '{words[1]}' (layers: {' '.join(layers)})")
                rules.append((words[0], words[1], words[2]))
    if not layers:
        sys.exit(f"{path}: no 'layers' line")
    return layers, rules, allow, enforce


def place(rules, rel):
    for pat, layer, module in rules:
        if fnmatch.fnmatchcase(rel, pat):
            return layer, module
    return None


def source_files(root):
    pats = ["src/*.c", "src/internal/*.h", "include/resil/*.h", "src/cli/*.c", "src/cli/*.h"]
    out = []
    for p in pats:
        out += sorted(os.path.relpath(f, root) for f in glob.glob(os.path.join(root, p)))
    return out


INCLUDE_RE = re.compile(r'^\s*#\s*include\s*[<"]([^">]+)[">]')


def resolve_include(root, rel, name):
    """The project file an #include names, or None for system headers."""
    cands = []
    if name.startswith("resil/"):
        cands.append(os.path.join("include", name))
    cands.append(os.path.join("src", name))
    cands.append(os.path.join(os.path.dirname(rel), name))
    for c in cands:
        c = os.path.normpath(c)
        if os.path.exists(os.path.join(root, c)):
            return c
    return None


def includes(root, rel):
    out = []
    with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            m = INCLUDE_RE.match(line)
            if m:
                target = resolve_include(root, rel, m.group(1))
                if target:
                    out.append((n, target))
    return out


SIG_STOP = re.compile(r"(;|\}|\*/|^#.*)\s*$")
NAME_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")


def functions(root, rel):
    """(name, first line, lines) of each function definition, for the
    project's style: the body's braces alone at column 0."""
    with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    out = []
    i = 0
    while i < len(lines):
        if lines[i] == "{":
            start = i
            while start > 0 and lines[start - 1].strip() and not SIG_STOP.search(lines[start - 1]) \
                    and not lines[start - 1].startswith("#"):
                start -= 1
            sig = " ".join(lines[start:i])
            m = NAME_RE.search(sig)
            end = i + 1
            while end < len(lines) and not lines[end].startswith("}"):
                end += 1
            if m and "=" not in sig.split("(", 1)[0]:
                out.append((m.group(1), start + 1, end - start + 1))
            i = end
        i += 1
    return out


DECL_RE = re.compile(r"\b(resil_[A-Za-z0-9_]*)\s*(\(|;|\[|[A-Z_]+\s*;)")


def header_declarations(root, headers):
    """symbol -> headers that declare it: names followed by `(`, `;` or `[`
    at file scope (not in comments, macros or the bodies of inline
    functions, whose calls are not declarations)."""
    out = {}
    for rel in headers:
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            text = f.read()
        text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
        text = re.sub(r"//[^\n]*", "", text)
        text = re.sub(r"\\\n", " ", text)  # macro continuations
        text = "\n".join("" if l.lstrip().startswith("#") else l for l in text.split("\n"))
        text = text.replace('extern "C" {', "")
        depth, top = 0, []
        for ch in text:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth = max(depth - 1, 0)
            elif depth == 0:
                top.append(ch)
        for m in DECL_RE.finditer("".join(top)):
            out.setdefault(m.group(1), set()).add(rel)
    return out


def objects(build):
    """source path (relative to the root) -> object file, from CMake's
    object directories (the library's objects first)."""
    found = {}
    dirs = sorted(glob.glob(os.path.join(build, "CMakeFiles", "*.dir")),
                  key=lambda d: (not d.endswith("resil_obj.dir"), d))
    for d in dirs:
        for o in sorted(glob.glob(os.path.join(d, "src", "**", "*.o"), recursive=True)):
            src = os.path.relpath(o, d)[:-2]  # src/x.c.o -> src/x.c
            found.setdefault(src, o)
    return found


def nm(path):
    res = subprocess.run(["nm", "-P", path], capture_output=True, text=True, check=True)
    defined, undefined = set(), set()
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        sym, kind = parts[0], parts[1]
        if not sym.startswith("resil_"):
            continue
        if kind == "U":
            undefined.add(sym)
        elif kind.isupper() or kind in ("u", "v", "w"):  # global (or weak / unique)
            defined.add(sym)
    return defined, undefined


def main():
    ap = argparse.ArgumentParser(description="resil's layer check")
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--build", default=None, help="a build tree (default ROOT/build/dev)")
    ap.add_argument("--data", default=None, help="the layer table (default ROOT/cmake/layers.txt)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--enforce", action="store_true", help="fail on violations whatever the data says")
    g.add_argument("--report", action="store_true", help="never fail on violations")
    a = ap.parse_args()
    root = os.path.abspath(a.root)
    build = os.path.abspath(a.build or os.path.join(root, "build", "dev"))
    data = a.data or os.path.join(root, "cmake", "layers.txt")
    layers, rules, allow, enforce = parse_data(data)
    if a.enforce:
        enforce = True
    if a.report:
        enforce = False
    rank = {name: i for i, name in enumerate(layers)}

    files = source_files(root)
    where, unlisted = {}, []
    for rel in files:
        p = place(rules, rel)
        if p:
            where[rel] = p
        else:
            unlisted.append(rel)

    def verdict(src, dst):
        """None when src may use dst, else why not."""
        (sl, sm), (dl, dm) = where[src], where[dst]
        if sm == dm:
            return None
        if rank[dl] > rank[sl]:
            return f"upward: {sl}/{sm} -> {dl}/{dm}"
        if rank[dl] == rank[sl] and (sm, dm) not in allow:
            return f"sideways: {sl}/{sm} -> {dl}/{dm}"
        return None

    violations = []
    for rel in files:
        if rel not in where:
            continue
        for n, target in includes(root, rel):
            if target not in where:
                continue
            why = verdict(rel, target)
            if why:
                violations.append(f"include  {rel}:{n} includes {target} ({why})")

    # ---- calls, from the objects ----
    objs = objects(build)
    if not any(s.startswith("src/") and not s.startswith("src/cli/") for s in objs):
        print(f"check-layers: no object files of the library under {build}/CMakeFiles "
              "(build it first)", file=sys.stderr)
        return 2
    defs, undefs = {}, {}
    for src, o in objs.items():
        if src not in where:
            continue
        d, u = nm(o)
        undefs[src] = u
        for s in d:
            defs.setdefault(s, src)
    # A module defines only its own functions: the header that declares a
    # symbol must be of the defining file's module.
    decls = header_declarations(root, [f for f in files if f.endswith(".h") and f in where])
    for sym, src in sorted(defs.items()):
        for hdr in decls.get(sym, ()):
            if where[hdr][1] != where[src][1]:
                violations.append(f"define   {src} defines {sym}, declared by {hdr} "
                                  f"(module {where[hdr][1]}, not {where[src][1]})")
    table = {}
    for src, u in sorted(undefs.items()):
        for sym in sorted(u):
            dst = defs.get(sym)
            if not dst or dst == src:
                continue
            sm, dm = where[src][1], where[dst][1]
            if sm != dm and not src.startswith("src/cli/"):
                table.setdefault((sm, dm), set()).add(sym)
            why = verdict(src, dst)
            if why:
                violations.append(f"call     {src} calls {sym} (defined in {dst}; {why})")

    # ---- the report ----
    print(f"layers: {' < '.join(layers)}   (data: {os.path.relpath(data, root)}, "
          f"objects: {os.path.relpath(build, root) if build.startswith(root) else build})")
    print("\n== lines per .c file ==")
    sizes = []
    for rel in files:
        if rel.endswith(".c"):
            with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
                sizes.append((sum(1 for _ in f), rel))
    for n, rel in sorted(sizes, key=lambda x: (-x[0], x[1])):
        l, m = where.get(rel, ("?", "?"))
        print(f"  {n:6d}  {rel:32s} {l}/{m}")
    print(f"  {sum(n for n, _ in sizes):6d}  total ({len(sizes)} files)")

    print("\n== the 15 longest functions (lines, signature to closing brace) ==")
    funcs = []
    for rel in files:
        if rel.endswith(".c"):
            funcs += [(ln, name, rel, line) for name, line, ln in functions(root, rel)]
    for ln, name, rel, line in sorted(funcs, key=lambda x: (-x[0], x[2], x[3]))[:15]:
        print(f"  {ln:5d}  {name:40s} {rel}:{line}")
    print(f"  functions over 120 lines: {sum(1 for f in funcs if f[0] > 120)}")

    print("\n== cross-module calls in the library (module -> module: distinct symbols) ==")
    for (sm, dm), syms in sorted(table.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        sample = ", ".join(sorted(syms)[:4]) + (", ..." if len(syms) > 4 else "")
        print(f"  {sm:>12s} -> {dm:12s} {len(syms):4d}   {sample}")

    print("\n== violations ==")
    for rel in unlisted:
        print(f"  unlisted {rel} (no line of {os.path.relpath(data, root)} places it)")
    for v in violations:
        print(f"  {v}")
    bad = len(violations) + len(unlisted)
    print(f"\nlayers: {len(violations)} violation(s), {len(unlisted)} unlisted file(s); "
          + ("enforced" if enforce else "enforce = no: reported, not failed"))
    return 1 if bad and enforce else 0


if __name__ == "__main__":
    sys.exit(main())
