"""Safetensors checkpoints (include/dsk/dsk_safetensors.h): zero-copy, validated on opening."""

from __future__ import annotations

import ctypes
import os
from ctypes import POINTER, byref, c_char_p, c_int64, c_void_p
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple, Union

from . import _api, _ffi
from ._api import Tensor, _check, _CapsuleProducer, _new_capsule, _take_capsule
from ._errors import InvalidArgumentError, NotFoundError
from ._ffi import DLDataType, DLManagedTensorVersioned, DLTensor, lib as _lib


class SafeTensorInfo(NamedTuple):
    """Where and how one tensor is stored (dsk_safetensors_info)."""

    name: str
    dtype: str  # the safetensors dtype string: "BF16", "F8_E4M3", ...
    shape: Tuple[int, ...]
    file: str  # the file holding it (a shard's path for a sharded checkpoint)
    file_offset: int  # of its first byte in that file
    nbytes: int
    dsk_dtype: Optional[str]  # dsk's name for the type ("bf16", ...), None when dsk has none


def _encode(name: str) -> bytes:
    if not isinstance(name, str):
        raise TypeError(f"dsk: tensor names and metadata keys are str, got {type(name).__name__}")
    return name.encode("utf-8")


class SafeTensors:
    """An open safetensors checkpoint: one file, a sharded index (model.safetensors.index.json) or
    a directory, mapped read-only and validated when opened (dsk_safetensors_open).

    A read-only mapping of tensor names to tensors: ``len``, iteration over the names (sorted),
    ``in``, ``st[name]`` (a read-only dsk.Tensor, no copy), ``keys()``. ``numpy(name)`` gives a
    read-only NumPy array without copying, for every dtype NumPy can hold; ``info(name)`` describes
    any tensor. Tensors and arrays keep their file mapped by themselves, so they stay valid after
    close(). Use it as a context manager or call close().
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"]) -> None:
        self._h: Optional[int] = None
        out = c_void_p()
        _check(_lib.dsk_safetensors_open(os.fsencode(path), byref(out)))
        self._h = out.value

    @property
    def handle(self) -> int:
        """The dsk_safetensors* address; ValueError after close()."""
        if self._h is None:
            raise ValueError("dsk: the safetensors checkpoint is closed")
        return self._h

    def close(self) -> None:
        """Unmaps the files (those exported tensors still use stay mapped); idempotent."""
        h, self._h = getattr(self, "_h", None), None
        if h is not None:
            _lib.dsk_safetensors_close(h)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self) -> "SafeTensors":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __len__(self) -> int:
        n = c_int64()
        _check(_lib.dsk_safetensors_count(self.handle, byref(n)))
        return n.value

    def name(self, index: int) -> str:
        """Name number ``index`` in byte (code point) order."""
        out = c_char_p()
        _check(_lib.dsk_safetensors_name(self.handle, index, byref(out)))
        return out.value.decode("utf-8")  # type: ignore[union-attr]

    def keys(self) -> List[str]:
        return [self.name(i) for i in range(len(self))]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def find(self, name: str) -> int:
        """The index of ``name``; NotFoundError (a KeyError) when absent."""
        index = c_int64()
        _check(_lib.dsk_safetensors_find(self.handle, _encode(name), byref(index)))
        return index.value

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.find(name)
        except NotFoundError:
            return False
        return True

    def info(self, name: str) -> SafeTensorInfo:
        raw = _ffi.dsk_safetensors_info()
        _check(_lib.dsk_safetensors_info_init(byref(raw)))
        _check(_lib.dsk_safetensors_tensor_info(self.handle, _encode(name), byref(raw)))
        shape = tuple(raw.shape[i] for i in range(raw.ndim))
        return SafeTensorInfo(
            raw.name.decode("utf-8"), raw.dtype.decode(), shape, os.fsdecode(raw.file),
            raw.file_offset, raw.nbytes,
            _api.dtype_from_id(raw.dtype_id) if raw.dtype_id else None)

    def dltensor(self, name: str) -> DLTensor:
        """The borrowed C view (dsk_safetensors_tensor): valid only while this stays open."""
        out = DLTensor()
        _check(_lib.dsk_safetensors_tensor(self.handle, _encode(name), byref(out)))
        return out

    def _export(self, name: str) -> Any:
        """A fresh DLPack export (POINTER(DLManagedTensorVersioned)) owned by the caller."""
        m = POINTER(DLManagedTensorVersioned)()
        _check(_lib.dsk_safetensors_to_dlpack(self.handle, _encode(name), byref(m)))
        return m

    def capsule(self, name: str) -> Any:
        """A versioned DLPack capsule ("dltensor_versioned", read-only) of the tensor, for any
        consumer of capsules; it keeps the file mapped until consumed and released."""
        return _new_capsule(ctypes.cast(self._export(name), c_void_p).value, True)

    def tensor(self, name: str) -> Tensor:
        """The tensor as a read-only dsk.Tensor sharing the mapping, for dsk's dtypes and up to 8
        dimensions (numpy() takes the others)."""
        info = self.info(name)
        if info.dsk_dtype is None:
            raise InvalidArgumentError(
                f"dsk: tensor '{name}' has dtype {info.dtype}, which dsk tensors do not support; "
                f"use SafeTensors.numpy()", _ffi.DSK_ERR_INVALID_ARGUMENT)
        # On failure the unconsumed capsule deletes the export when it is collected.
        return Tensor._adopt(_take_capsule(self.capsule(name)))

    __getitem__ = tensor

    def numpy(self, name: str) -> Any:
        """The tensor as a read-only NumPy array sharing the mapping. NumPy has no bf16 or fp8
        types: those come back as uint16 / uint8 arrays of their raw bits (as Tensor.numpy does);
        F64, I8, I16, U16, U32, U64 and C64 keep their types."""
        import numpy as np

        m = self._export(name)
        dl = m.contents.dl_tensor.dtype
        if dl.code == _ffi.kDLBfloat or _ffi.kDLFloat8_e3m4 <= dl.code <= _ffi.kDLFloat4_e2m1fn:
            m.contents.dl_tensor.dtype = DLDataType(_ffi.kDLUInt, dl.bits, 1)
        capsule = _new_capsule(ctypes.cast(m, c_void_p).value, True)
        return np.from_dlpack(_CapsuleProducer(capsule, (_ffi.kDLCPU, 0)))

    def metadata(self) -> Dict[str, str]:
        """The "__metadata__" map (for several files, the first file holding a key wins)."""
        n = c_int64()
        _check(_lib.dsk_safetensors_metadata_count(self.handle, byref(n)))
        out: Dict[str, str] = {}
        for i in range(n.value):
            raw = c_char_p()
            _check(_lib.dsk_safetensors_metadata_key(self.handle, i, byref(raw)))
            key = raw.value.decode("utf-8")  # type: ignore[union-attr]
            out[key] = self.metadata_value(key)
        return out

    def metadata_value(self, key: str) -> str:
        """One "__metadata__" value; NotFoundError (a KeyError) when absent."""
        value = c_char_p()
        _check(_lib.dsk_safetensors_metadata(self.handle, _encode(key), byref(value)))
        return value.value.decode("utf-8")  # type: ignore[union-attr]

    def __repr__(self) -> str:
        if self._h is None:
            return "<dsk.SafeTensors closed>"
        return f"<dsk.SafeTensors {len(self)} tensors>"


# Every C function of dsk_safetensors.h has its Python entry point (checked by test_abi).
_api.WRAPPERS.update({
    "dsk_safetensors_open": SafeTensors,
    "dsk_safetensors_close": SafeTensors.close,
    "dsk_safetensors_count": SafeTensors.__len__,
    "dsk_safetensors_name": SafeTensors.name,
    "dsk_safetensors_find": SafeTensors.find,
    "dsk_safetensors_tensor": SafeTensors.dltensor,
    "dsk_safetensors_info_init": SafeTensors.info,
    "dsk_safetensors_tensor_info": SafeTensors.info,
    "dsk_safetensors_to_dlpack": SafeTensors.capsule,
    "dsk_safetensors_metadata": SafeTensors.metadata_value,
    "dsk_safetensors_metadata_count": SafeTensors.metadata,
    "dsk_safetensors_metadata_key": SafeTensors.metadata,
})
