#!/usr/bin/env python3
"""Checks capi/abi/layout.txt against the program that prints it and against the headers.

Two failures are caught:
  * the program's output differs from the committed manifest: a struct layout or a constant value
    changed. Appending a field or a constant is allowed by the ABI rules but still changes the file,
    which the bindings are tested against, so the refresh must be deliberate
    (scripts/update-abi-baseline);
  * a struct, field, typedef'd enum or constant of include/dsk/*.h is missing from the manifest:
    capi/abi/layout_manifest.c was not updated when the headers grew.

usage: check_layout.py --program build/bin/dsk_layout_manifest --expected capi/abi/layout.txt \
           include/dsk/*.h
       check_layout.py --program ... --write capi/abi/layout.txt [--allow-missing] include/dsk/*.h
"""

import argparse
import difflib
import subprocess
import sys
from pathlib import Path

# Tests run these from the source tree, which must not collect __pycache__ directories.
sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import dsk_headers  # noqa: E402


def parse_manifest(lines):
    """The sets of names the manifest has facts for: types, fields ("T.f") and constants."""
    facts = {"sizeof": set(), "alignof": set(), "offsetof": set(), "const": set()}
    for number, line in enumerate(lines, 1):
        parts = line.split(" ", 2)
        if len(parts) != 3 or parts[0] not in facts:
            raise ValueError(f"manifest line {number} is not '<kind> <name> <value>': {line!r}")
        facts[parts[0]].add(parts[1])
    return facts


def missing_from_manifest(headers, facts):
    missing = []
    for header in dsk_headers.read_headers(headers):
        where = header.path.name
        for struct, fields in header.structs().items():
            for kind in ("sizeof", "alignof"):
                if struct not in facts[kind]:
                    missing.append(f"{kind} {struct} ({where})")
            missing += [f"offsetof {struct}.{f} ({where})" for f in fields
                        if f"{struct}.{f}" not in facts["offsetof"]]
        for enum in header.enums():
            missing += [f"{kind} {enum} ({where})" for kind in ("sizeof", "alignof")
                        if enum not in facts[kind]]
        missing += [f"const {c} ({where})" for c in header.constants() if c not in facts["const"]]
    return missing


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--program", required=True, help="the built layout_manifest program")
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--expected", help="the committed manifest to compare with")
    group.add_argument("--write", help="write the program's output here instead of comparing")
    ap.add_argument("--allow-missing", action="store_true",
                    help="with --write: report missing entries but write anyway (build step)")
    ap.add_argument("headers", nargs="+")
    args = ap.parse_args()

    actual = subprocess.run([args.program], check=True, capture_output=True, text=True).stdout
    lines = actual.splitlines()
    missing = missing_from_manifest(args.headers, parse_manifest(lines))
    if missing:
        print("declared in the headers but absent from the manifest "
              "(add them to capi/abi/layout_manifest.c):")
        print("\n".join(f"  {m}" for m in missing))
        if not (args.write and args.allow_missing):
            return 1

    if args.write:
        Path(args.write).write_text(actual, encoding="utf-8")
        print(f"wrote {len(lines)} facts to {args.write}")
        return 0

    expected = Path(args.expected).read_text(encoding="utf-8").splitlines()
    if lines != expected:
        print(f"the headers' layout/constants differ from {args.expected} "
              "(- committed, + now):")
        sys.stdout.writelines(difflib.unified_diff(
            [l + "\n" for l in expected], [l + "\n" for l in lines], "committed", "now", n=1))
        print("If the change is intended and ABI-compatible (appended fields/constants), refresh "
              "the baselines with scripts/update-abi-baseline and commit capi/abi/.")
        return 1
    print(f"{len(lines)} layout facts match {args.expected}; the headers declare nothing more")
    return 0


if __name__ == "__main__":
    sys.exit(main())
