#!/usr/bin/env python3
"""qr_decode.py: reads a QR code drawn in a terminal with half blocks (as qpc draws it:
light modules drawn, two modules per cell) from stdin, writes it as a PBM image scaled
8 times, and prints what zbarimg decodes from that image. Lines that are not made of
block characters (the text under the code) are ignored."""
import subprocess
import sys
import tempfile

CELL = {"\u2588": (0, 0), "\u2580": (0, 1), "\u2584": (1, 0), " ": (1, 1)}  # (top dark, bottom dark)
rows = []
for line in sys.stdin.read().splitlines():
    if line and all(c in CELL for c in line) and any(c != " " for c in line):
        top = [CELL[c][0] for c in line]
        bottom = [CELL[c][1] for c in line]
        rows += [top, bottom]
if not rows:
    sys.exit("qr_decode: no QR code in the input")
width = max(len(r) for r in rows)
scale = 8
with tempfile.NamedTemporaryFile(suffix=".pbm", delete=False) as f:
    f.write(b"P1\n%d %d\n" % (width * scale, len(rows) * scale))
    for r in rows:
        line = b" ".join(b"1" if (r[x] if x < len(r) else 0) else b"0" for x in range(width) for _ in range(scale))
        f.write((line + b"\n") * scale)
    path = f.name
out = subprocess.run(["zbarimg", "--quiet", "--raw", path], capture_output=True, text=True)
sys.stdout.write(out.stdout)
sys.exit(out.returncode)
