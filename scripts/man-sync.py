#!/usr/bin/env python3
"""man-sync.py: keep the man pages in docs/man/ equal to the programs' --help.

    scripts/man-sync.py --check BUILD_DIR    # exit 1 and print a diff if a page drifted
    scripts/man-sync.py --write BUILD_DIR    # rewrite the generated parts in place

A page is written by hand except between pairs of markers,

    .\\" generated from qpc --version by scripts/man-sync.py: do not edit {{{
    ...
    .\\" }}}

where this script puts what it renders from `PROGRAM --version` (the .TH line) and from
`PROGRAM --help` (one section per block of the help text: options, subcommands,
settings, then EXIT STATUS and ENVIRONMENT from the settings' [env ...] notes).
The one idea: the help text is the source of truth, so the man page cannot say
something else; CTest runs --check (test man_pages).
"""
import difflib
import os
import re
import subprocess
import sys

PAGES = [  # program, section, man page file (relative to the source tree)
    ("qpc", "1", "docs/man/qpc.1"),
    ("qpc-server", "8", "docs/man/qpc-server.8"),
]
BEGIN = re.compile(r'^\.\\" generated from (\S+) --(help|version) by scripts/man-sync\.py: '
                   r'do not edit \{\{\{$')
END = '.\\" }}}'


def roff_text(text):
    """Escapes running text for roff: backslashes, and a leading . or ' (a request)."""
    text = text.replace("\\", "\\e")
    text = re.sub(r"(?<![\w-])--?(?=[A-Za-z])", lambda m: m.group(0).replace("-", "\\-"), text)
    if text.startswith((".", "'")):
        text = "\\&" + text
    return text


def roff_term(term):
    """An option or subcommand term: names in bold, metavariables in italics."""
    out = []
    for tok in re.split(r"(\s+|,\s*|\s*/\s*|\s*\|\s*)", term):
        if not tok or re.fullmatch(r"\s+|,\s*|\s*/\s*|\s*\|\s*", tok or ""):
            out.append(roff_text(tok))
            continue
        m = re.fullmatch(r"(--?[A-Za-z][\w-]*)(=(.*))?", tok)
        if m:
            out.append("\\fB" + roff_text(m.group(1)) + "\\fR")
            if m.group(2):
                out.append("=\\fI" + roff_text(m.group(3)) + "\\fR")
        elif re.fullmatch(r"[<\[].*|[A-Z][A-Z0-9_:.,]*", tok):
            out.append("\\fI" + roff_text(tok) + "\\fR")
        else:
            out.append("\\fB" + roff_text(tok) + "\\fR")
    return "".join(out)


def parse_help(text):
    """Splits --help into blocks: (heading, [(term, description)]) or ('', paragraph)."""
    blocks, cur = [], []
    for line in text.splitlines() + [""]:
        if line.strip():
            cur.append(line.rstrip())
        elif cur:
            blocks.append(cur)
            cur = []
    parsed = []
    for block in blocks[1:]:   # the first block is the usage line and what the program is
        if not block[0].startswith(" "):
            head = []
            while block and not block[0].startswith(" "):
                head.append(block.pop(0))
            heading = " ".join(head)
        else:
            heading = ""
        if not block:   # a paragraph such as "Exit status: ..."
            parsed.append(("para", heading, []))
            continue
        items = []
        for line in block:
            indent = len(line) - len(line.lstrip())
            body = line.strip()
            if indent >= 8 and items and not body.startswith("-"):
                items[-1][1] = (items[-1][1] + " " + body).strip()
                continue
            m = re.match(r"(\S.*?)\s{2,}(\S.*)$", body)
            if m:
                items.append([m.group(1), m.group(2)])
            elif "[env " in body:
                term, _, desc = body.partition(" ")
                items.append([term, desc])
            else:
                items.append([body, ""])
        parsed.append(("list", heading, items))
    return parsed


SECTION_OF = [("Subcommands", "SUBCOMMANDS"), ("Options", "OPTIONS"), ("Settings", "SETTINGS")]


def render_title(program, section, version):
    return ['.TH %s %s "" "quicprochat %s" "quicprochat manual"' % (program.upper(), section, version)]


def render_sections(help_text):
    """The sections rendered from --help, without the markers."""
    out = []
    env = []
    exit_paras = []
    body = []
    for kind, heading, items in parse_help(help_text):
        if kind == "para":
            title, _, rest = heading.partition(":")
            if title.lower().startswith("exit"):
                exit_paras.append(rest.strip())
            else:
                body += [".PP", roff_text(heading)]
            continue
        name = "OPTIONS"
        intro = heading
        for prefix, sect in SECTION_OF:
            if heading.startswith(prefix):
                name = sect
                intro = heading[len(prefix):].strip().strip(":").strip()
                intro = intro[1:-1] if intro.startswith("(") and intro.endswith(")") else intro
        body.append(".SH " + name)
        if intro:
            body += [".PP", roff_text(intro[0].upper() + intro[1:]) + "."]
        for term, desc in items:
            m = re.match(r"(.*?)\s*\[env (\w+), default (.*)\]$", desc)
            body += [".TP", roff_term(term)]
            if m:
                body.append(roff_text(m.group(1)))
                body.append(".br")
                body.append("Environment \\fB%s\\fR; default \\fB%s\\fR." % (m.group(2), roff_text(m.group(3))))
                env.append((m.group(2), term.split("=")[0]))
            elif desc:
                body.append(roff_text(desc))
            for var in re.findall(r"\benv (QPC_\w+)", desc if not m else ""):
                env.append((var, term.split(",")[-1].split("=")[0].strip()))
    out += body
    if exit_paras:
        out += [".SH EXIT STATUS", ".PP"] + [roff_text(p) for p in exit_paras]
    if env:
        out += [".SH ENVIRONMENT", ".PP",
                "A variable overrides the file and is overridden by a flag."]
        for var, flag in env:
            out += [".TP", "\\fB%s\\fR" % var, "Same as \\fB%s\\fR." % roff_text(flag)]
    return out


def run(binary, arg):
    return subprocess.run([binary, arg], check=True, capture_output=True, text=True,
                          timeout=30).stdout


def sync(src_dir, build_dir, write):
    ok = True
    for program, section, rel in PAGES:
        path = os.path.join(src_dir, rel)
        binary = os.path.join(build_dir, program)
        generated = {
            "version": render_title(program, section, run(binary, "--version").split()[-1]),
            "help": render_sections(run(binary, "--help")),
        }
        with open(path, encoding="utf-8") as f:
            old = f.read().splitlines()
        new, i, found = [], 0, set()
        while i < len(old):
            new.append(old[i])
            m = BEGIN.match(old[i])
            if m and m.group(1) == program:
                found.add(m.group(2))
                new += generated[m.group(2)]
                while i < len(old) and old[i] != END:
                    i += 1
                if i == len(old):
                    sys.exit("%s: generated part has no end marker %s" % (rel, END))
                new.append(END)
            i += 1
        for what in sorted(set(generated) - found):
            sys.exit("%s: no line '.\\\" generated from %s --%s by scripts/man-sync.py: "
                     "do not edit {{{'" % (rel, program, what))
        if new == old:
            continue
        if write:
            with open(path, "w", encoding="utf-8") as f:
                f.write("\n".join(new) + "\n")
            print("man-sync: rewrote", rel)
        else:
            ok = False
            sys.stdout.writelines(difflib.unified_diff(
                [l + "\n" for l in old], [l + "\n" for l in new], rel, rel + " (from --help)"))
            print("man-sync: %s differs from %s --help; run scripts/man-sync.py --write %s"
                  % (rel, program, build_dir))
    return ok


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("--check", "--write"):
        sys.exit("usage: scripts/man-sync.py --check|--write BUILD_DIR")
    src_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ok = sync(src_dir, sys.argv[2], sys.argv[1] == "--write")
    print("man-sync: %s" % ("pages match --help" if ok else "pages drifted"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
