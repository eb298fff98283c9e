"""The ctypes mirror against the C build's manifest and the headers' DSK_API declarations."""

import ctypes
import sys
from pathlib import Path

import pytest

import dsk
from dsk import _api, _ffi

from conftest import env_path


def _manifest():
    facts = {"sizeof": {}, "alignof": {}, "offsetof": {}, "const": {}}
    for line in Path(env_path("DSK_LAYOUT_MANIFEST")).read_text().splitlines():
        kind, name, value = line.split(" ", 2)
        facts[kind][name] = value
    return facts


def test_manifest_is_not_empty():
    m = _manifest()
    assert m["sizeof"] and m["offsetof"] and m["const"]


def test_struct_sizes_and_alignments():
    m = _manifest()
    for name, size in m["sizeof"].items():
        assert name in _ffi.STRUCTS, f"no ctypes mirror of {name}"
        t = _ffi.STRUCTS[name]
        assert ctypes.sizeof(t) == int(size), name
        assert ctypes.alignment(t) == int(m["alignof"][name]), name


def test_struct_offsets_and_field_order():
    m = _manifest()
    per_struct = {}
    for key, off in m["offsetof"].items():
        struct, field = key.split(".")
        per_struct.setdefault(struct, []).append(field)
        assert getattr(_ffi.STRUCTS[struct], field).offset == int(off), key
    for struct, fields in per_struct.items():
        assert [f[0] for f in _ffi.STRUCTS[struct]._fields_] == fields, struct


def test_constants():
    m = _manifest()
    for name, value in m["const"].items():
        assert hasattr(_ffi, name), f"constant {name} is not mirrored in dsk._ffi"
        mine = getattr(_ffi, name)
        if value.startswith('"'):
            assert f'"{mine}"' == value, name
        else:
            assert mine == int(value, 0), name


def _header_functions():
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
    try:
        import dsk_headers
    finally:
        sys.path.pop(0)
    headers = dsk_headers.read_headers(Path(env_path("DSK_INCLUDE_DIR")).glob("dsk/*.h"))
    names = [f for h in headers for f in h.functions()]
    assert len(names) > 40, "header parsing found too few functions"
    return names


def test_every_c_function_has_a_binding_and_a_wrapper():
    names = _header_functions()
    missing = [n for n in names if n not in _ffi.FUNCTIONS]
    assert not missing, f"no ctypes declaration for {missing}"
    unwrapped = [n for n in names if not callable(_api.WRAPPERS.get(n))]
    assert not unwrapped, f"no Python-level wrapper for {unwrapped}"
    stale = set(_ffi.FUNCTIONS) - set(names)
    assert not stale, f"declared but not in the headers: {stale}"
    assert not _ffi.MISSING, f"the library under test does not export {_ffi.MISSING}"
    for n in names:
        assert getattr(_ffi.lib, n).argtypes is not None or not _ffi.FUNCTIONS[n][1]


def test_function_missing_from_an_older_library_raises_unsupported():
    stub = _ffi._missing_function("dsk_future_op", "libdsk.so.1")
    with pytest.raises(dsk.UnsupportedError, match="does not export dsk_future_op"):
        stub(None)


def test_versions():
    assert dsk.abi_version() == dsk.ABI_VERSION == _ffi.DSK_ABI_VERSION
    assert dsk.version_number() == _ffi.DSK_VERSION_NUMBER
    assert dsk.version_string() == _ffi.DSK_VERSION_STRING
    assert dsk.status_string(0) == "ok"
    assert dsk.status_string(1) == "invalid argument"


def test_abi_mismatch_is_refused():
    with pytest.raises(dsk.VersionMismatchError, match="ABI version"):
        _ffi.load_library(env_path("DSK_LIBRARY"), expected_abi=_ffi.DSK_ABI_VERSION + 1)


def test_unloadable_library_is_reported(tmp_path):
    with pytest.raises(OSError, match="DSK_LIBRARY"):
        _ffi.load_library(str(tmp_path / "nope.so"))
