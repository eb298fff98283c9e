#!/usr/bin/env python3
"""Compares libdsk's ABI with the committed libabigail baseline, or refreshes that baseline.

  abi_baseline.py check  --library build/lib/libdsk.so   (the capi.abi.abidiff test)
  abi_baseline.py update --library build/lib/libdsk.so   (scripts/update-abi-baseline)

check fails on any ABI change abidiff reports (exit bit 4 or 8). An incompatible one (a removed
function, a changed parameter, a moved field) needs a DSK_ABI_VERSION bump; an allowed one (a new
function, a field appended to a struct_size-versioned struct) needs a deliberate baseline refresh
committed together with the change. It exits 77 (skipped) when abidiff is not installed
or the library carries no debug info, since libabigail reads types from DWARF.

The baseline describes only the exported dsk_* functions and the types they reach, with file names
instead of paths and no architecture, so that it is small and the same from any checkout, build
directory or LP64 machine.
"""

import argparse
import shutil
import struct
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = 77

# Shared by abidw and abidiff so both sides of the comparison see the same slice of the DWARF:
# public types only (those defined in --headers-dir), reached from exported functions only, and
# no ELF architecture (the baseline has none, so that aarch64 and x86_64 compare alike).
FILTER = ["--drop-private-types", "--exported-interfaces-only", "--no-architecture"]
# Keep this machine's paths out of the baseline. Source locations stay, as bare file names: abidiff
# decides which types are public by the header they are defined in, and without locations in the
# baseline it silently filters out every change to them.
ABIDW_ONLY = ["--no-corpus-path", "--no-comp-dir-path", "--short-locs", "--no-elf-needed",
              "--type-id-style", "hash"]

ABIDIFF_ERROR, ABIDIFF_USAGE, ABIDIFF_CHANGE, ABIDIFF_INCOMPATIBLE = 1, 2, 4, 8


def elf_section_names(path):
    """Section names of an ELF file ([] if it is not one): enough to see whether it has DWARF."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF":
        return []
    is64 = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    if is64:
        shoff, = struct.unpack_from(end + "Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x3A)
    else:
        shoff, = struct.unpack_from(end + "I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x2E)

    def header(i):
        base = shoff + i * shentsize
        name, = struct.unpack_from(end + "I", data, base)
        off_fmt, off_at = ("Q", base + 0x18) if is64 else ("I", base + 0x10)
        offset, = struct.unpack_from(end + off_fmt, data, off_at)
        return name, offset

    _, strtab = header(shstrndx)
    names = []
    for i in range(shnum):
        name, _ = header(i)
        start = strtab + name
        names.append(data[start:data.index(b"\0", start)].decode("ascii", "replace"))
    return names


def require_debug_info(library, action, status):
    if ".debug_info" not in elf_section_names(library):
        print(f"{'SKIP: ' if status == SKIP else ''}{library} has no debug info (.debug_info); "
              f"libabigail cannot {action} without it. libdsk is compiled with -g in every build "
              "type; was it stripped?")
        sys.exit(status)


def check(args):
    abidiff = shutil.which(args.abidiff)
    if not abidiff:
        print(f"SKIP: {args.abidiff} not found (Debian/Ubuntu: apt-get install abigail-tools)")
        return SKIP
    require_debug_info(args.library, "compare it", SKIP)
    cmd = [abidiff, *FILTER, "--headers-dir2", str(args.headers_dir), "--fail-no-debug-info",
           str(args.baseline), str(args.library)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    rc = result.returncode
    report = (result.stdout + result.stderr).strip()
    if rc == 0:
        print(f"no ABI change against {args.baseline}")
        return 0
    print(report)
    print()
    if rc & (ABIDIFF_ERROR | ABIDIFF_USAGE):
        print(f"abidiff failed (exit status {rc}): {' '.join(cmd)}")
    elif rc & ABIDIFF_INCOMPATIBLE:
        print("INCOMPATIBLE ABI change (abidiff exit bit 8). Released functions and struct layouts "
              "must not change: restore them, or make the break deliberate (bump DSK_ABI_VERSION "
              "in include/dsk/dsk_version.h) and refresh the baseline with "
              "scripts/update-abi-baseline.")
    elif rc & ABIDIFF_CHANGE:
        print("ABI change (abidiff exit bit 4). libabigail calls changes behind pointers "
              "compatible, but dsk's rules are stricter: only new functions and fields appended "
              "to a struct_size-versioned struct are allowed. If that is all the report shows, "
              "refresh the baseline with scripts/update-abi-baseline and commit capi/abi/ together "
              "with the change; anything else (a moved, removed or retyped field) breaks callers "
              "and needs a DSK_ABI_VERSION bump.")
    else:
        print(f"unexpected abidiff exit status {rc}")
    return 1


def update(args):
    abidw = shutil.which(args.abidw)
    if not abidw:
        print(f"{args.abidw} not found (Debian/Ubuntu: apt-get install abigail-tools)")
        return 1
    require_debug_info(args.library, "describe it", 1)
    subprocess.run([abidw, *FILTER, *ABIDW_ONLY, "--headers-dir", str(args.headers_dir),
                    "--out-file", str(args.baseline), str(args.library)], check=True)
    print(f"wrote {args.baseline} ({args.baseline.stat().st_size} bytes) from {args.library}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["check", "update"])
    ap.add_argument("--library", required=True, type=Path, help="the built shared libdsk")
    ap.add_argument("--headers-dir", type=Path, default=ROOT / "include" / "dsk")
    ap.add_argument("--baseline", type=Path, default=ROOT / "capi" / "abi" / "libdsk.abi")
    ap.add_argument("--abidiff", default="abidiff")
    ap.add_argument("--abidw", default="abidw")
    args = ap.parse_args()
    args.library = args.library.resolve()
    return check(args) if args.mode == "check" else update(args)


if __name__ == "__main__":
    sys.exit(main())
