#!/usr/bin/python3
"""Prints a file as a Go fuzzing corpus entry (the testdata/fuzz/<Target>/
format: "go test fuzz v1" and one []byte literal), so that seeds written by
other tools (PyTorch, numpy) can be committed next to a fuzz target:

    scripts/fuzzseed.py FILE > PKG/testdata/fuzz/FuzzTarget/NAME
"""
import sys

data = open(sys.argv[1], "rb").read()
out = []
for b in data:
    c = chr(b)
    if c == '"' or c == "\\":
        out.append("\\" + c)
    elif 0x20 <= b < 0x7F:
        out.append(c)
    else:
        out.append("\\x%02x" % b)
sys.stdout.write('go test fuzz v1\n[]byte("%s")\n' % "".join(out))
