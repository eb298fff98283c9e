#!/usr/bin/env python3
"""Checks that libdsk exports exactly the functions the public headers declare with DSK_API.

An exported symbol missing from the headers is a leak (callers could bind to something with no
stability promise); a declared function that is not exported fails at link or load time for users.
Both directions are errors, and every exported function must carry the version node of
capi/libdsk.map, which shows the version script was applied.

usage: check_symbols.py --library build/lib/libdsk.so [--nm nm] include/dsk/*.h
       check_symbols.py --list include/dsk/*.h     (print the declared names, one per line)
"""

import argparse
import re
import subprocess
import sys
from pathlib import Path

# Tests run these from the source tree, which must not collect __pycache__ directories.
sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import dsk_headers  # noqa: E402

# Version nodes of capi/libdsk.map show up in `nm -D` as absolute symbols of their own name.
VERSION_NODE = re.compile(r"^DSK_\d+$")


def declared(headers):
    names = []
    for header in dsk_headers.read_headers(headers):
        names += header.functions()
    return names


def exported(nm, library):
    """name -> version ("" when unversioned) of each defined dynamic symbol of the library."""
    out = subprocess.run([nm, "-D", "--defined-only", library], check=True, capture_output=True,
                         text=True).stdout
    symbols = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        kind, raw = fields[-2], fields[-1]
        name, _, version = raw.partition("@")
        version = version.lstrip("@")
        if kind == "A" and VERSION_NODE.match(name):
            continue
        symbols[name] = version
    return symbols


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--library", help="the shared libdsk to inspect")
    ap.add_argument("--nm", default="nm")
    ap.add_argument("--list", action="store_true", help="print the declared names and exit")
    ap.add_argument("headers", nargs="+")
    args = ap.parse_args()

    names = declared(args.headers)
    dups = sorted({n for n in names if names.count(n) > 1})
    if args.list:
        print("\n".join(sorted(set(names))))
        return 0
    if not args.library:
        ap.error("--library is required unless --list is given")

    symbols = exported(args.nm, args.library)
    problems = []
    if dups:
        problems.append(("declared with DSK_API more than once", dups))
    problems.append(("declared with DSK_API but not exported by the library",
                     sorted(set(names) - set(symbols))))
    problems.append(("exported by the library but not declared with DSK_API in any header",
                     sorted(set(symbols) - set(names))))
    problems.append(("declared without the dsk_ prefix the version script exports",
                     sorted(n for n in set(names) if not n.startswith("dsk_"))))
    problems.append(("exported without a DSK_n symbol version (version script not applied?)",
                     sorted(n for n, v in symbols.items() if not VERSION_NODE.match(v))))
    problems = [(what, items) for what, items in problems if items]
    if not problems:
        print(f"{len(symbols)} exported symbols == {len(set(names))} DSK_API declarations "
              f"in {len(args.headers)} headers")
        return 0
    for what, items in problems:
        print(f"{what}:")
        for item in items:
            print(f"  {item}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
