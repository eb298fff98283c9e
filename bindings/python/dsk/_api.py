"""The Python API over the C functions declared in _ffi.FUNCTIONS."""

from __future__ import annotations

import ctypes
import threading
from ctypes import POINTER, byref, c_char_p, c_int32, c_int64, c_size_t, c_void_p, py_object
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from . import _ffi
from ._errors import Error, InvalidArgumentError, UnsupportedError, error_for_status
from ._ffi import (
    DLDataType,
    DLDevice,
    DLManagedTensor,
    DLManagedTensorVersioned,
    DLTensor,
    lib as _lib,
)

# --- errors and versions


def _check(status: int) -> None:
    if status != _ffi.DSK_OK:
        # Read at once: the C message lives only until this thread's next dsk call.
        raise error_for_status(status, _lib.dsk_last_error_message().decode("utf-8", "replace"))


def version_number() -> int:
    """The loaded library's version as MAJOR*10000 + MINOR*100 + PATCH."""
    return int(_lib.dsk_version_number())


def version_string() -> str:
    """The loaded library's version, e.g. "0.1.0"."""
    return _lib.dsk_version_string().decode()


def abi_version() -> int:
    """The loaded library's ABI version (always the package's: another one is refused on import)."""
    return int(_lib.dsk_abi_version())


def status_string(status: int) -> str:
    """Static text for a dsk_status code ("ok", "invalid argument", ...)."""
    return _lib.dsk_status_string(status).decode()


def last_error_message() -> str:
    """The message of this thread's last failed dsk call ("" if none); exceptions carry it too."""
    return _lib.dsk_last_error_message().decode("utf-8", "replace")


# The installed callback must outlive every call C may make to it, so it is held here.
_log_callback: Optional[Any] = None
_log_lock = threading.Lock()

LogHandler = Callable[[int, str], None]


def set_log_handler(handler: Optional[LogHandler], max_level: int = _ffi.DSK_LOG_INFO) -> None:
    """Installs handler(level, message) as dsk's process-wide log callback (None removes it).

    The handler runs on whatever thread calls into dsk and must not call dsk itself; an exception
    it raises is printed by ctypes and otherwise ignored (C cannot receive it).
    """
    global _log_callback
    with _log_lock:
        if handler is None:
            _lib.dsk_log_set(_ffi.dsk_log_fn(), None, max_level)
            _log_callback = None
            return

        def trampoline(level: int, message: bytes, user: Any) -> None:
            handler(level, message.decode("utf-8", "replace"))

        cb = _ffi.dsk_log_fn(trampoline)
        _lib.dsk_log_set(cb, None, max_level)
        # Replaced only after C stopped using the previous one.
        _log_callback = cb


# --- dtypes

DType = Union[str, DLDataType, Tuple[int, int, int]]

DTYPE_NAMES = ("f32", "f16", "bf16", "fp8_e4m3fn", "fp8_e5m2", "int32", "int64", "uint8", "bool")


def _build_dtype_table() -> Dict[str, Tuple[int, int, int]]:
    # Asked from the library, so the codes and names have one source of truth (dsk_dtype.h).
    table = {}
    for dtype_id in range(1, _ffi.DSK_DTYPE_COUNT):
        dl = DLDataType()
        _check(_lib.dsk_dtype_from_id(dtype_id, byref(dl)))
        table[_lib.dsk_dtype_name(dl).decode()] = dl.as_tuple()
    return table


_DTYPES = _build_dtype_table()


def _to_dl(dtype: DType) -> DLDataType:
    if isinstance(dtype, DLDataType):
        return dtype
    if isinstance(dtype, str):
        key = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}.get(dtype, dtype)
        if key not in _DTYPES:
            raise InvalidArgumentError(
                f"dsk: unknown dtype {dtype!r}; expected one of {', '.join(DTYPE_NAMES)}",
                _ffi.DSK_ERR_INVALID_ARGUMENT,
            )
        return DLDataType(*_DTYPES[key])
    if isinstance(dtype, tuple) and len(dtype) == 3:
        return DLDataType(*dtype)
    raise TypeError(f"dsk: a dtype is a name such as 'f32' or a (code, bits, lanes) tuple, not {dtype!r}")


def dtype_name(dtype: DType) -> str:
    """The library's name of a dtype ("unsupported" for a DLDataType dsk does not handle)."""
    return _lib.dsk_dtype_name(_to_dl(dtype)).decode()


def dtype_size(dtype: DType) -> int:
    """Bytes per element (0 for an unsupported DLDataType)."""
    return int(_lib.dsk_dtype_size(_to_dl(dtype)))


def dtype_id(dtype: DType) -> int:
    """The DSK_DTYPE_* id of a dtype; InvalidArgumentError when dsk does not support it."""
    out = c_int32()
    _check(_lib.dsk_dtype_to_id(_to_dl(dtype), byref(out)))
    return out.value


def dtype_from_id(dtype_id: int) -> str:
    """The name of the dtype with a DSK_DTYPE_* id."""
    dl = DLDataType()
    _check(_lib.dsk_dtype_from_id(dtype_id, byref(dl)))
    return _lib.dsk_dtype_name(dl).decode()


def convert_host_bytes(data: Union[bytes, bytearray, memoryview], src_dtype: DType,
                       dst_dtype: DType) -> bytes:
    """Converts a host buffer of src_dtype elements to dst_dtype (dsk_dtype.h rules)."""
    src_dl, dst_dl = _to_dl(src_dtype), _to_dl(dst_dtype)
    src_size, dst_size = dtype_size(src_dl), dtype_size(dst_dl)
    if src_size == 0 or dst_size == 0:
        # Let the library produce its own message for the unsupported dtype.
        _check(_lib.dsk_convert_host(src_dl, None, dst_dl, None, 1))
    buf = bytes(data)
    if len(buf) % src_size:
        raise InvalidArgumentError(
            f"dsk: convert_host_bytes: {len(buf)} bytes is not a whole number of "
            f"{dtype_name(src_dl)} elements", _ffi.DSK_ERR_INVALID_ARGUMENT)
    n = len(buf) // src_size
    out = ctypes.create_string_buffer(n * dst_size)
    src = ctypes.create_string_buffer(buf, len(buf))
    _check(_lib.dsk_convert_host(src_dl, src, dst_dl, out, n))
    return out.raw


# --- backends and devices

_BACKENDS = {"auto": _ffi.DSK_BACKEND_AUTO, "cpu": _ffi.DSK_BACKEND_CPU, "cuda": _ffi.DSK_BACKEND_CUDA}
_BACKEND_NAMES = {v: k for k, v in _BACKENDS.items()}


def _backend_kind(backend: Union[str, int]) -> int:
    if isinstance(backend, int):
        return backend
    try:
        return _BACKENDS[backend.lower()]
    except (KeyError, AttributeError):
        raise InvalidArgumentError(
            f"dsk: unknown backend {backend!r}; expected 'auto', 'cpu' or 'cuda'",
            _ffi.DSK_ERR_INVALID_ARGUMENT) from None


@dataclass(frozen=True)
class BackendInfo:
    backend: str
    available: bool
    score: int
    device_count: int
    name: str
    reason: str


@dataclass(frozen=True)
class DeviceProps:
    backend: str
    device_id: int
    name: str
    compute_capability: Tuple[int, int]
    multiprocessor_count: int
    memory_bus_width_bits: int
    memory_clock_khz: int
    total_memory_bytes: int
    memory_bandwidth_gbps: float


class Device(NamedTuple):
    """A DLPack device: (device_type, device_id), e.g. (1, 0) for the CPU."""

    device_type: int
    device_id: int


def backend_info(backend: Union[str, int]) -> BackendInfo:
    info = _ffi.dsk_backend_info()
    _check(_lib.dsk_backend_info_init(byref(info)))
    _check(_lib.dsk_backend_get_info(_backend_kind(backend), byref(info)))
    return BackendInfo(
        backend=_BACKEND_NAMES.get(info.backend, str(info.backend)),
        available=bool(info.available),
        score=info.score,
        device_count=info.device_count,
        name=info.name.decode(),
        reason=info.reason.decode("utf-8", "replace"),
    )


def backends() -> List[BackendInfo]:
    """Every backend kind dsk knows, available or not (see .reason)."""
    return [backend_info(k) for k in (_ffi.DSK_BACKEND_CPU, _ffi.DSK_BACKEND_CUDA)]


def default_backend() -> str:
    """The backend 'auto' resolves to now ("cpu" or "cuda"), after DSK_BACKEND is applied."""
    return _BACKEND_NAMES[_lib.dsk_backend_default()]


def device_count(backend: Union[str, int]) -> int:
    return int(_lib.dsk_device_count(_backend_kind(backend)))


def device_props(backend: Union[str, int], device_id: int = 0) -> DeviceProps:
    props = _ffi.dsk_device_props()
    _check(_lib.dsk_device_props_init(byref(props)))
    _check(_lib.dsk_device_get_props(_backend_kind(backend), device_id, byref(props)))
    return DeviceProps(
        backend=_BACKEND_NAMES.get(props.backend, str(props.backend)),
        device_id=props.device_id,
        name=props.name.decode("utf-8", "replace"),
        compute_capability=(props.compute_capability_major, props.compute_capability_minor),
        multiprocessor_count=props.multiprocessor_count,
        memory_bus_width_bits=props.memory_bus_width_bits,
        memory_clock_khz=props.memory_clock_khz,
        total_memory_bytes=props.total_memory_bytes,
        memory_bandwidth_gbps=props.memory_bandwidth_gbps,
    )


def devices(backend: Union[str, int] = "cpu") -> List[DeviceProps]:
    """Properties of every usable device of a backend ([] when it is unavailable)."""
    return [device_props(backend, i) for i in range(device_count(backend))]


# --- context


class Context:
    """An execution context (dsk_context): one backend, one device, one CUDA stream.

    ``stream`` is a cudaStream_t as an integer (0 = default stream; must be 0 on CPU). Use as a
    context manager or call close(); tensors created through it stay valid after it is closed.
    """

    def __init__(self, backend: Union[str, int] = "auto", device_id: int = 0, stream: int = 0) -> None:
        self._h: Optional[int] = None
        opts = _ffi.dsk_context_options()
        _check(_lib.dsk_context_options_init(byref(opts)))
        opts.backend = _backend_kind(backend)
        opts.device_id = device_id
        opts.stream = stream or None
        out = c_void_p()
        _check(_lib.dsk_context_create(byref(opts), byref(out)))
        self._h = out.value

    @property
    def handle(self) -> int:
        """The dsk_context* address; ValueError after close()."""
        if self._h is None:
            raise ValueError("dsk: the context is closed")
        return self._h

    def close(self) -> None:
        """Finishes queued work and destroys the context (idempotent)."""
        h, self._h = self._h, None
        if h is not None:
            _lib.dsk_context_destroy(h)

    def __del__(self) -> None:
        # The module may be half torn down at interpreter exit; never raise from here.
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def backend(self) -> str:
        """"cpu" or "cuda"."""
        out = c_int32()
        _check(_lib.dsk_context_get_backend(self.handle, byref(out)))
        return _BACKEND_NAMES[out.value]

    @property
    def device(self) -> Device:
        dev = DLDevice()
        _check(_lib.dsk_context_get_device(self.handle, byref(dev)))
        return Device(dev.device_type, dev.device_id)

    @property
    def stream(self) -> int:
        out = c_void_p()
        _check(_lib.dsk_context_get_stream(self.handle, byref(out)))
        return out.value or 0

    @stream.setter
    def stream(self, value: int) -> None:
        _check(_lib.dsk_context_set_stream(self.handle, value or None))

    def synchronize(self) -> None:
        """Waits for queued work; raises DeviceError for asynchronous failures of earlier calls."""
        _check(_lib.dsk_context_synchronize(self.handle))

    def reserve_workspace(self, nbytes: int) -> None:
        _check(_lib.dsk_context_reserve_workspace(self.handle, nbytes))

    def set_workspace(self, ptr: int, nbytes: int) -> None:
        """Hands dsk caller-owned scratch memory (address, 256-byte aligned); (0, 0) reverts.

        The memory must stay valid while the context may use it; keeping it alive is the caller's
        job because an address carries no owner.
        """
        _check(_lib.dsk_context_set_workspace(self.handle, ptr or None, nbytes))

    @property
    def workspace_size(self) -> int:
        out = c_size_t()
        _check(_lib.dsk_context_get_workspace_size(self.handle, byref(out)))
        return out.value

    def __repr__(self) -> str:
        if self._h is None:
            return "<dsk.Context closed>"
        return f"<dsk.Context backend={self.backend} device={tuple(self.device)}>"


_default_ctx: Optional[Context] = None
_default_lock = threading.Lock()


def _ctx_or_default(ctx: Optional[Context]) -> Context:
    # The default is a CPU context so that results are always readable from Python (numpy()).
    global _default_ctx
    if ctx is not None:
        return ctx
    with _default_lock:
        if _default_ctx is None:
            _default_ctx = Context("cpu")
        return _default_ctx


# --- DLPack capsules

_pyapi = ctypes.pythonapi
_pyapi.PyCapsule_New.restype = py_object
_pyapi.PyCapsule_New.argtypes = [c_void_p, c_char_p, c_void_p]
_pyapi.PyCapsule_GetPointer.restype = c_void_p
_pyapi.PyCapsule_GetPointer.argtypes = [py_object, c_char_p]
_pyapi.PyCapsule_IsValid.restype = ctypes.c_int
_pyapi.PyCapsule_IsValid.argtypes = [py_object, c_char_p]
_pyapi.PyCapsule_SetName.restype = ctypes.c_int
_pyapi.PyCapsule_SetName.argtypes = [py_object, c_char_p]
_pyapi.PyCapsule_SetDestructor.restype = ctypes.c_int
_pyapi.PyCapsule_SetDestructor.argtypes = [py_object, c_void_p]

# The capsule keeps a pointer to its name, so the names must live as long as the interpreter:
# module-level bytes constants do.
_NAME_VERSIONED = b"dltensor_versioned"
_NAME_LEGACY = b"dltensor"
_NAME_USED_VERSIONED = b"used_dltensor_versioned"
_NAME_USED_LEGACY = b"used_dltensor"


def _make_capsule_destructor() -> Any:
    # The destructor receives a capsule whose refcount is already 0, so it must not be wrapped in a
    # py_object (that would incref/decref it and free it twice): raw PyObject* and functions
    # declared on a private PyDLL with void* arguments. Everything it uses is bound here, because
    # module globals may already be gone when a capsule dies at interpreter exit.
    api = ctypes.PyDLL(None)
    is_valid = api.PyCapsule_IsValid
    is_valid.restype, is_valid.argtypes = ctypes.c_int, [c_void_p, c_char_p]
    get_ptr = api.PyCapsule_GetPointer
    get_ptr.restype, get_ptr.argtypes = c_void_p, [c_void_p, c_char_p]
    versioned, legacy = _NAME_VERSIONED, _NAME_LEGACY
    p_versioned, p_legacy = POINTER(DLManagedTensorVersioned), POINTER(DLManagedTensor)
    cast = ctypes.cast

    def destructor(capsule: int) -> None:
        # A consumer that took the tensor renamed the capsule to "used_..."; then it owns it.
        if is_valid(capsule, versioned):
            m = cast(get_ptr(capsule, versioned), p_versioned)
            if m.contents.deleter:
                m.contents.deleter(m)
        elif is_valid(capsule, legacy):
            m2 = cast(get_ptr(capsule, legacy), p_legacy)
            if m2.contents.deleter:
                m2.contents.deleter(m2)

    return ctypes.CFUNCTYPE(None, c_void_p)(destructor)


_capsule_destructor = _make_capsule_destructor()
# A leaked extra reference: the callback must survive module teardown for late capsule deaths.
_pyapi.Py_IncRef.argtypes = [py_object]
_pyapi.Py_IncRef(_capsule_destructor)
_capsule_destructor_addr = ctypes.cast(_capsule_destructor, c_void_p).value


def _new_capsule(managed_addr: int, versioned: bool) -> Any:
    return _pyapi.PyCapsule_New(managed_addr, _NAME_VERSIONED if versioned else _NAME_LEGACY,
                                _capsule_destructor_addr)


class _CapsuleProducer:
    """Hands a ready-made capsule to a consumer that wants an object with __dlpack__."""

    def __init__(self, capsule: Any, device: Tuple[int, int]) -> None:
        self._capsule, self._device = capsule, device

    def __dlpack__(self, *, stream: Any = None, max_version: Any = None, dl_device: Any = None,
                   copy: Any = None) -> Any:
        return self._capsule

    def __dlpack_device__(self) -> Tuple[int, int]:
        return self._device


# --- tensors

Shape = Sequence[int]
_HOST_DEVICES = (_ffi.kDLCPU, _ffi.kDLCUDAHost)
_CUDA_DEVICES = (_ffi.kDLCUDA, _ffi.kDLCUDAManaged)


class Tensor:
    """An owning reference to a dsk_tensor (reference counted storage on one device).

    Created by dsk.empty, clone, view and from_dlpack; each Tensor holds one C reference, dropped by
    close() or when the object is collected. retain() gives a second Tensor sharing the storage.
    """

    def __init__(self) -> None:
        raise TypeError("dsk.Tensor is created by dsk.empty, dsk.clone, dsk.from_dlpack or .view")

    @classmethod
    def _adopt(cls, handle: int, ctx: Optional[Context] = None, keep: Any = None) -> "Tensor":
        t = object.__new__(cls)
        t._h = handle
        # The context that produced the data: __dlpack__(stream=...) synchronizes it on CUDA.
        t._ctx = ctx
        # Whatever must outlive the C tensor on the Python side (a DLPack producer).
        t._keep = keep
        return t

    @property
    def handle(self) -> int:
        """The dsk_tensor* address; ValueError after close()."""
        h = getattr(self, "_h", None)
        if h is None:
            raise ValueError("dsk: the tensor is closed")
        return h

    def close(self) -> None:
        """Drops this object's reference (idempotent); storage lives on while views/exports do."""
        h, self._h = getattr(self, "_h", None), None
        if h is not None:
            _lib.dsk_tensor_release(h)
        self._keep = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self) -> "Tensor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def retain(self) -> "Tensor":
        """Another Tensor object holding its own reference to the same dsk_tensor."""
        _lib.dsk_tensor_retain(self.handle)
        return Tensor._adopt(self.handle, self._ctx, self._keep)

    @property
    def _dl(self) -> DLTensor:
        return _lib.dsk_tensor_dltensor(self.handle).contents

    @property
    def ndim(self) -> int:
        return self._dl.ndim

    @property
    def shape(self) -> Tuple[int, ...]:
        d = self._dl
        return tuple(d.shape[i] for i in range(d.ndim))

    @property
    def strides(self) -> Tuple[int, ...]:
        """Strides in elements (always filled by dsk)."""
        d = self._dl
        return tuple(d.strides[i] for i in range(d.ndim))

    @property
    def dtype(self) -> str:
        return _lib.dsk_dtype_name(self._dl.dtype).decode()

    @property
    def device(self) -> Device:
        d = self._dl.device
        return Device(d.device_type, d.device_id)

    @property
    def data_ptr(self) -> int:
        """Address of the first element (dsk views fold their offset into it)."""
        return self._dl.data or 0

    @property
    def numel(self) -> int:
        return int(_lib.dsk_tensor_numel(self.handle))

    @property
    def nbytes(self) -> int:
        return int(_lib.dsk_tensor_nbytes(self.handle))

    @property
    def is_contiguous(self) -> bool:
        return bool(_lib.dsk_tensor_is_contiguous(self.handle))

    @property
    def is_read_only(self) -> bool:
        return bool(_lib.dsk_tensor_is_read_only(self.handle))

    def view(self, shape: Shape, strides: Optional[Shape] = None, offset: int = 0) -> "Tensor":
        """A view of this storage (element strides, element offset); keeps the storage alive."""
        ndim = len(shape)
        c_shape = (c_int64 * max(ndim, 1))(*shape)
        c_strides = None
        if strides is not None:
            if len(strides) != ndim:
                raise InvalidArgumentError(
                    f"dsk: view: {len(strides)} strides for {ndim} dimensions",
                    _ffi.DSK_ERR_INVALID_ARGUMENT)
            c_strides = (c_int64 * max(ndim, 1))(*strides)
        out = c_void_p()
        _check(_lib.dsk_tensor_view(self.handle, ndim, c_shape, c_strides, offset, byref(out)))
        return Tensor._adopt(out.value, self._ctx, self._keep)

    # DLPack producer protocol

    def __dlpack_device__(self) -> Tuple[int, int]:
        return tuple(self.device)  # type: ignore[return-value]

    def __dlpack__(self, *, stream: Any = None, max_version: Optional[Tuple[int, int]] = None,
                   dl_device: Optional[Tuple[int, int]] = None, copy: Optional[bool] = None) -> Any:
        """Exports a DLPack capsule sharing this tensor's storage.

        A versioned capsule ("dltensor_versioned", DLPack 1.1) when max_version >= (1, 0), else a
        legacy one ("dltensor"), which read-only tensors refuse (UnsupportedError), as the C API
        does. ``stream`` (CUDA only): dsk cannot record an event on a foreign stream, so any stream
        other than -1 makes this synchronize the context that produced the tensor (if it is still
        open) before exporting. ``dl_device`` other than the tensor's device is refused
        (BufferError); ``copy=True`` exports a fresh copy made on the tensor's device.
        """
        if dl_device is not None and tuple(dl_device) != self.__dlpack_device__():
            raise BufferError(f"dsk: cannot export a tensor on {self.__dlpack_device__()} to "
                              f"device {tuple(dl_device)}")
        src = self
        if copy:
            dev = self.device
            if dev.device_type in _CUDA_DEVICES:
                cctx = self._ctx if self._ctx is not None and self._ctx._h is not None else \
                    Context("cuda", dev.device_id)
            else:
                cctx = _ctx_or_default(None)
            src = clone(cctx, self)
        if (stream is not None and stream != -1 and self.device.device_type in _CUDA_DEVICES
                and self._ctx is not None and self._ctx._h is not None):
            self._ctx.synchronize()
        versioned = max_version is not None and tuple(max_version)[0] >= 1
        if versioned:
            mv = POINTER(DLManagedTensorVersioned)()
            _check(_lib.dsk_tensor_to_dlpack_versioned(src.handle, byref(mv)))
            if copy:
                mv.contents.flags |= _ffi.DLPACK_FLAG_BITMASK_IS_COPIED
            addr = ctypes.cast(mv, c_void_p).value
        else:
            ml = POINTER(DLManagedTensor)()
            _check(_lib.dsk_tensor_to_dlpack(src.handle, byref(ml)))
            addr = ctypes.cast(ml, c_void_p).value
        return _new_capsule(addr, versioned)

    def numpy(self, ctx: Optional[Context] = None) -> Any:
        """The tensor as a NumPy array.

        Host tensors: zero-copy (numpy.from_dlpack), read-only when the tensor is. bf16 and fp8
        tensors, which NumPy has no dtype for, come back as zero-copy uint16 / uint8 arrays of
        their raw bits (use dsk.clone(ctx, t, "f32") for values). CUDA tensors are copied to host
        memory through ``ctx`` or the context that made them.
        """
        import numpy as np

        dev = self.device
        if dev.device_type in _CUDA_DEVICES:
            cctx = ctx if ctx is not None else self._ctx
            if cctx is None or cctx._h is None:
                raise InvalidArgumentError(
                    "dsk: numpy() of a CUDA tensor needs a CUDA context: pass ctx=",
                    _ffi.DSK_ERR_INVALID_ARGUMENT)
            host = empty(self.shape, self.dtype, _ctx_or_default(None))
            copy_(cctx, self, host)
            return host.numpy()
        dl = self._dl.dtype
        if dl.code in (_ffi.kDLBfloat,) or _ffi.kDLFloat8_e3m4 <= dl.code <= _ffi.kDLFloat4_e2m1fn:
            mv = POINTER(DLManagedTensorVersioned)()
            _check(_lib.dsk_tensor_to_dlpack_versioned(self.handle, byref(mv)))
            # The export is ours until handed over: relabel its dtype as unsigned integers of the
            # same width so NumPy accepts it, still sharing the storage.
            mv.contents.dl_tensor.dtype = DLDataType(_ffi.kDLUInt, dl.bits, 1)
            cap = _new_capsule(ctypes.cast(mv, c_void_p).value, True)
            return np.from_dlpack(_CapsuleProducer(cap, self.__dlpack_device__()))
        return np.from_dlpack(self)

    def __repr__(self) -> str:
        if getattr(self, "_h", None) is None:
            return "<dsk.Tensor closed>"
        return f"<dsk.Tensor shape={self.shape} dtype={self.dtype} device={tuple(self.device)}>"


TensorLike = Any  # a dsk.Tensor or any object with __dlpack__


def _take_capsule(capsule: Any) -> int:
    """Imports a DLPack capsule into a new dsk_tensor handle, consuming the capsule on success."""
    if _pyapi.PyCapsule_IsValid(capsule, _NAME_VERSIONED):
        name, used, fn = _NAME_VERSIONED, _NAME_USED_VERSIONED, _lib.dsk_tensor_from_dlpack_versioned
    elif _pyapi.PyCapsule_IsValid(capsule, _NAME_LEGACY):
        name, used, fn = _NAME_LEGACY, _NAME_USED_LEGACY, _lib.dsk_tensor_from_dlpack
    else:
        raise InvalidArgumentError(
            "dsk: from_dlpack: __dlpack__() returned something other than an unconsumed "
            "'dltensor' or 'dltensor_versioned' capsule", _ffi.DSK_ERR_INVALID_ARGUMENT)
    managed = _pyapi.PyCapsule_GetPointer(capsule, name)
    out = c_void_p()
    # On failure dsk took nothing: the capsule keeps its name and its destructor frees the tensor.
    _check(fn(managed, byref(out)))
    _pyapi.PyCapsule_SetName(capsule, used)
    return out.value  # type: ignore[return-value]


def from_dlpack(x: TensorLike) -> Tensor:
    """Imports any DLPack producer zero-copy (a dsk.Tensor gives a new reference to itself)."""
    if isinstance(x, Tensor):
        return x.retain()
    if not hasattr(x, "__dlpack__"):
        raise TypeError(f"dsk: {type(x).__name__} does not implement the DLPack protocol (__dlpack__)")
    try:
        capsule = x.__dlpack__(max_version=(_ffi.DLPACK_MAJOR_VERSION, _ffi.DLPACK_MINOR_VERSION))
    except TypeError:
        # A producer older than DLPack 1.0 knows no max_version: ask for the legacy capsule.
        capsule = x.__dlpack__()
    handle = _take_capsule(capsule)
    # The managed tensor's deleter keeps the producer's buffer alive; the producer object is held
    # too so that objects whose deleter does not (or that own more state) cannot vanish early.
    return Tensor._adopt(handle, None, x)


def _borrow(x: TensorLike) -> Tuple[Any, Tensor]:
    """An argument as (borrowed DLTensor*, keep-alive): the pointer is valid while keep lives."""
    t = x if isinstance(x, Tensor) else from_dlpack(x)
    return _lib.dsk_tensor_dltensor(t.handle), t


def asarray(x: Any, dtype: Optional[DType] = None, ctx: Optional[Context] = None) -> Tensor:
    """A dsk.Tensor from a Tensor, a DLPack producer or anything numpy.asarray accepts.

    Zero-copy when x already is a DLPack producer with the requested dtype on ctx's device (or
    when ctx is None); otherwise the data is cloned onto ctx's device with ``dtype``.
    """
    if not isinstance(x, Tensor) and not hasattr(x, "__dlpack__"):
        import numpy as np

        x = np.ascontiguousarray(np.asarray(x))
    t = from_dlpack(x)
    want_dtype = t.dtype if dtype is None else dtype_name(dtype)
    if want_dtype != t.dtype or (ctx is not None and tuple(ctx.device) != tuple(t.device)):
        return clone(_ctx_or_default(ctx), t, want_dtype)
    return t


def empty(shape: Shape, dtype: DType = "f32", ctx: Optional[Context] = None) -> Tensor:
    """An uninitialized contiguous tensor on ctx's device (a CPU context when ctx is None)."""
    c = _ctx_or_default(ctx)
    ndim = len(shape)
    c_shape = (c_int64 * max(ndim, 1))(*shape)
    out = c_void_p()
    _check(_lib.dsk_tensor_create(c.handle, ndim, c_shape, _to_dl(dtype), byref(out)))
    return Tensor._adopt(out.value, c)


def copy(ctx: Optional[Context], src: TensorLike, dst: TensorLike) -> None:
    """Copies src into dst element-wise, converting dtypes (dsk_copy)."""
    c = _ctx_or_default(ctx)
    s, _ks = _borrow(src)
    d, _kd = _borrow(dst)
    _check(_lib.dsk_copy(c.handle, s, d))


copy_ = copy  # the name `copy` is shadowed by __dlpack__'s parameter inside Tensor


def clone(ctx: Optional[Context], src: TensorLike, dtype: Optional[DType] = None) -> Tensor:
    """A new contiguous tensor on ctx's device holding src converted to dtype (default: src's)."""
    c = _ctx_or_default(ctx)
    s, _ks = _borrow(src)
    dl = s.contents.dtype if dtype is None else _to_dl(dtype)
    out = c_void_p()
    _check(_lib.dsk_tensor_clone(c.handle, s, dl, byref(out)))
    return Tensor._adopt(out.value, c)


def fill(ctx: Optional[Context], dst: TensorLike, value: float) -> None:
    """Sets every element of dst to value (converted to dst's dtype)."""
    c = _ctx_or_default(ctx)
    d, _kd = _borrow(dst)
    _check(_lib.dsk_fill(c.handle, d, float(value)))


_DISTRIBUTIONS = {"uniform": _ffi.DSK_RANDOM_UNIFORM, "normal": _ffi.DSK_RANDOM_NORMAL}


def fill_random(ctx: Optional[Context], dst: TensorLike, seed: int, offset: int = 0,
                distribution: str = "uniform", a: Optional[float] = None,
                b: Optional[float] = None) -> None:
    """Fills dst with reproducible Philox random numbers (see dsk_fill_random).

    uniform: values in [a, b] (default [0, 1]); normal: mean a, standard deviation b (default 0, 1).
    """
    c = _ctx_or_default(ctx)
    params = _ffi.dsk_random_params()
    _check(_lib.dsk_random_params_init(byref(params)))
    if distribution not in _DISTRIBUTIONS:
        raise InvalidArgumentError(
            f"dsk: fill_random: unknown distribution {distribution!r}; expected 'uniform' or 'normal'",
            _ffi.DSK_ERR_INVALID_ARGUMENT)
    params.distribution = _DISTRIBUTIONS[distribution]
    params.seed = seed
    params.offset = offset
    if a is not None:
        params.a = a
    if b is not None:
        params.b = b
    d, _kd = _borrow(dst)
    _check(_lib.dsk_fill_random(c.handle, d, byref(params)))


def convert_host(src: TensorLike, dst: TensorLike) -> None:
    """Converts the elements of contiguous host tensor src into contiguous host tensor dst."""
    s_t = src if isinstance(src, Tensor) else from_dlpack(src)
    d_t = dst if isinstance(dst, Tensor) else from_dlpack(dst)
    for name, t in (("src", s_t), ("dst", d_t)):
        if t.device.device_type not in _HOST_DEVICES or not t.is_contiguous:
            raise InvalidArgumentError(
                f"dsk: convert_host: {name} must be a contiguous host tensor",
                _ffi.DSK_ERR_INVALID_ARGUMENT)
    if s_t.numel != d_t.numel:
        raise InvalidArgumentError(
            f"dsk: convert_host: src has {s_t.numel} elements but dst has {d_t.numel}",
            _ffi.DSK_ERR_INVALID_ARGUMENT)
    s, d = s_t._dl, d_t._dl
    _check(_lib.dsk_convert_host(s.dtype, s.data, d.dtype, d.data, s_t.numel))


def validate(x: TensorLike, name: str = "tensor") -> None:
    """Raises InvalidArgumentError when x is not a tensor dsk accepts (dsk_dltensor_validate)."""
    p, _k = _borrow(x)
    _check(_lib.dsk_dltensor_validate(p, name.encode()))


# --- ops (dsk_ops.h)
#
# Every op takes its tensors as dsk.Tensor or any DLPack producer (NumPy arrays are imported
# zero-copy, so outputs given as NumPy arrays are written in place) and ctx=None for the
# process-wide CPU context, as copy and fill do. Outputs are passed in and written; nothing is
# allocated. Optional tensors are None (NULL).

FP8_BLOCK = _ffi.DSK_FP8_BLOCK
QUANT_SCALE_POW2 = _ffi.DSK_QUANT_SCALE_POW2
FP8_KERNEL_CPU_REFERENCE = _ffi.DSK_FP8_KERNEL_CPU_REFERENCE
FP8_KERNEL_BLOCK_SCALED = _ffi.DSK_FP8_KERNEL_BLOCK_SCALED
FP8_KERNEL_DEQUANT_GEMM = _ffi.DSK_FP8_KERNEL_DEQUANT_GEMM
ROPE_INTERLEAVED = _ffi.DSK_ROPE_INTERLEAVED
ROPE_HALF_SPLIT = _ffi.DSK_ROPE_HALF_SPLIT


class _Borrowed:
    """Borrows op arguments: .ptrs are the DLTensor* (None stays NULL), kept valid while it lives."""

    def __init__(self, *xs: Optional[TensorLike]) -> None:
        self.ptrs: List[Any] = []
        self._keep: List[Any] = []
        for x in xs:
            if x is None:
                self.ptrs.append(None)
            else:
                p, k = _borrow(x)
                self.ptrs.append(p)
                self._keep.append(k)


def _quant_flags(scale_pow2: bool) -> int:
    return _ffi.DSK_QUANT_SCALE_POW2 if scale_pow2 else 0


def _call_op(fn: Callable[..., int], ctx: Optional[Context],
             tensors: Tuple[Optional[TensorLike], ...], *extra: Any) -> None:
    """fn(ctx handle, *borrowed tensors, *extra), raising on a failed status."""
    cx = _ctx_or_default(ctx)
    args = _Borrowed(*tensors)
    _check(fn(cx.handle, *args.ptrs, *extra))


def gemm(ctx: Optional[Context], a: TensorLike, b: TensorLike, d: TensorLike,
         c: Optional[TensorLike] = None, trans_a: bool = False, trans_b: bool = False,
         alpha: float = 1.0, beta: float = 0.0) -> None:
    """d = alpha * op(a) @ op(b) + beta * c (dsk_gemm); op(x) is x.T when trans_x.

    op(a) [M, K], op(b) [K, N], c and d [M, N], or with a leading batch dimension (a 2-D a or b is
    broadcast over the batch). a and b one float dtype, c and d any float dtype; f32 accumulation.
    c may be None (beta ignored) or d itself (d += ...).
    """
    _call_op(_lib.dsk_gemm, ctx, (a, b, c, d), 1 if trans_a else 0, 1 if trans_b else 0,
             float(alpha), float(beta))


def linear(ctx: Optional[Context], x: TensorLike, w: TensorLike, y: TensorLike,
           bias: Optional[TensorLike] = None) -> None:
    """y = x @ w.T + bias (dsk_linear): x [..., in], w [out, in], bias [out] or None, y [..., out]."""
    _call_op(_lib.dsk_linear, ctx, (x, w, bias, y))


def quant_fp8_act(ctx: Optional[Context], x: TensorLike, q: TensorLike, scales: TensorLike,
                  scale_pow2: bool = False) -> None:
    """Quantizes x [..., K] per 1 x 128 tile: q [..., K] fp8_e4m3fn, scales [..., ceil(K/128)] f32.

    scale_pow2 rounds every scale up to a power of two (UE8M0, DSK_QUANT_SCALE_POW2).
    """
    _call_op(_lib.dsk_quant_fp8_act, ctx, (x, q, scales), _quant_flags(scale_pow2))


def dequant_fp8_act(ctx: Optional[Context], q: TensorLike, scales: TensorLike,
                    x: TensorLike) -> None:
    """x = q * scales per 1 x 128 tile (dsk_dequant_fp8_act)."""
    _call_op(_lib.dsk_dequant_fp8_act, ctx, (q, scales, x))


def quant_fp8_weight(ctx: Optional[Context], w: TensorLike, q: TensorLike, scales: TensorLike,
                     scale_pow2: bool = False) -> None:
    """Quantizes w [N, K] per 128 x 128 block: q [N, K] fp8_e4m3fn and
    scales [ceil(N/128), ceil(K/128)] f32 (the checkpoints' weight_scale_inv)."""
    _call_op(_lib.dsk_quant_fp8_weight, ctx, (w, q, scales), _quant_flags(scale_pow2))


def dequant_fp8_weight(ctx: Optional[Context], q: TensorLike, scales: TensorLike,
                       w: TensorLike) -> None:
    """w = q * scales per 128 x 128 block (dsk_dequant_fp8_weight)."""
    _call_op(_lib.dsk_dequant_fp8_weight, ctx, (q, scales, w))


def linear_fp8(ctx: Optional[Context], x: TensorLike, w: TensorLike, w_scales: TensorLike,
               y: TensorLike, x_scales: Optional[TensorLike] = None,
               scale_pow2: bool = False) -> None:
    """y = x @ w.T with fp8 w [N, K] and its 128 x 128 block scales (dsk_linear_fp8).

    x is either a float tensor (x_scales None; quantized per 1 x 128 tile first, scale_pow2 as in
    quant_fp8_act) or fp8_e4m3fn with its tile scales x_scales (then scale_pow2 must be False).
    """
    _call_op(_lib.dsk_linear_fp8, ctx, (x, x_scales, w, w_scales, y), _quant_flags(scale_pow2))


def linear_fp8_kernel(ctx: Optional[Context] = None) -> int:
    """Which kernel linear_fp8 runs on ctx's device: one of dsk.FP8_KERNEL_*."""
    cx = _ctx_or_default(ctx)
    out = c_int32()
    _check(_lib.dsk_linear_fp8_kernel(cx.handle, byref(out)))
    return out.value


def rmsnorm(ctx: Optional[Context], x: TensorLike, weight: TensorLike, y: TensorLike,
            eps: float = 1e-6) -> None:
    """y = x / sqrt(mean(x^2) + eps) * weight over the last dimension (y may be x)."""
    _call_op(_lib.dsk_rmsnorm, ctx, (x, weight, y), float(eps))


def add_rmsnorm(ctx: Optional[Context], x: TensorLike, residual: TensorLike, weight: TensorLike,
                y: TensorLike, residual_out: TensorLike, eps: float = 1e-6) -> None:
    """h = x + residual, rounded to residual_out's dtype; residual_out = h;
    y = rmsnorm(h) * weight. residual_out may be residual and y may be x (in place).
    """
    _call_op(_lib.dsk_add_rmsnorm, ctx, (x, residual, weight, y, residual_out), float(eps))


def swiglu(ctx: Optional[Context], gate: TensorLike, up: TensorLike, y: TensorLike) -> None:
    """y = silu(gate) * up, silu(g) = g / (1 + exp(-g))."""
    _call_op(_lib.dsk_swiglu, ctx, (gate, up, y))


def swiglu_fused(ctx: Optional[Context], gate_up: TensorLike, y: TensorLike) -> None:
    """swiglu of gate_up [..., 2I] = [gate | up] into y [..., I]."""
    _call_op(_lib.dsk_swiglu_fused, ctx, (gate_up, y))


@dataclass
class RopeConfig:
    """dsk_rope_config: RoPE/YaRN parameters; the defaults are DeepSeek-V3's (see dsk_ops.h)."""

    dim: int = 64
    theta: float = 10000.0
    factor: float = 40.0
    original_seq_len: int = 4096
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    mscale: float = 1.0
    mscale_all_dim: float = 1.0

    @classmethod
    def deepseek_v3(cls) -> "RopeConfig":
        """The library's defaults (dsk_rope_config_init), which are DeepSeek-V3's."""
        raw = _ffi.dsk_rope_config()
        _check(_lib.dsk_rope_config_init(byref(raw)))
        return cls(dim=raw.dim, theta=raw.theta, factor=raw.factor,
                   original_seq_len=raw.original_seq_len, beta_fast=raw.beta_fast,
                   beta_slow=raw.beta_slow, mscale=raw.mscale, mscale_all_dim=raw.mscale_all_dim)

    def _raw(self) -> Any:
        raw = _ffi.dsk_rope_config()
        _check(_lib.dsk_rope_config_init(byref(raw)))  # struct_size
        raw.dim = self.dim
        raw.theta = self.theta
        raw.factor = self.factor
        raw.original_seq_len = self.original_seq_len
        raw.beta_fast = self.beta_fast
        raw.beta_slow = self.beta_slow
        raw.mscale = self.mscale
        raw.mscale_all_dim = self.mscale_all_dim
        return raw


def rope_table(ctx: Optional[Context], config: Optional[RopeConfig], cos: TensorLike,
               sin: TensorLike) -> None:
    """Writes the cos/sin tables [P, dim/2] f32 for positions 0..P-1 (config None: RopeConfig())."""
    cx = _ctx_or_default(ctx)
    raw = (config if config is not None else RopeConfig())._raw()
    args = _Borrowed(cos, sin)
    _check(_lib.dsk_rope_table(cx.handle, byref(raw), *args.ptrs))


_ROPE_LAYOUTS = {"interleaved": _ffi.DSK_ROPE_INTERLEAVED, "half_split": _ffi.DSK_ROPE_HALF_SPLIT}


def _rope_layout(layout: Union[str, int]) -> int:
    if isinstance(layout, int):
        return layout
    try:
        return _ROPE_LAYOUTS[layout]
    except KeyError:
        raise InvalidArgumentError(
            f"dsk: rope_apply: unknown layout {layout!r}; expected 'interleaved' or 'half_split'",
            _ffi.DSK_ERR_INVALID_ARGUMENT) from None


def rope_apply(ctx: Optional[Context], x: TensorLike, positions: TensorLike, cos: TensorLike,
               sin: TensorLike, y: TensorLike, layout: Union[str, int] = "interleaved") -> None:
    """Rotates x [T, H, D] or [T, D] by the table rows of positions [T] into y (y may be x).

    layout: "interleaved" (pairs (2i, 2i+1), DeepSeek's reference) or "half_split" (pairs
    (i, i + D/2), Hugging Face), or a dsk.ROPE_* value.
    """
    cx = _ctx_or_default(ctx)
    lay = _rope_layout(layout)
    args = _Borrowed(x, positions, cos, sin, y)
    _check(_lib.dsk_rope_apply(cx.handle, *args.ptrs, lay))


def softmax(ctx: Optional[Context], x: TensorLike, y: TensorLike, temperature: float = 1.0) -> None:
    """y = softmax(x / temperature) over the last dimension (y may be x)."""
    _call_op(_lib.dsk_softmax, ctx, (x, y), float(temperature))


def log_softmax(ctx: Optional[Context], x: TensorLike, y: TensorLike,
                temperature: float = 1.0) -> None:
    """y = log_softmax(x / temperature) over the last dimension (y may be x)."""
    _call_op(_lib.dsk_log_softmax, ctx, (x, y), float(temperature))


def argmax(ctx: Optional[Context], x: TensorLike, indices: TensorLike) -> None:
    """indices [...] (int32/int64) = index of each row's maximum of x [..., N]; ties to the lower
    index, NaN largest."""
    _call_op(_lib.dsk_argmax, ctx, (x, indices))


def topk(ctx: Optional[Context], x: TensorLike, k: int, indices: TensorLike,
         values: Optional[TensorLike] = None) -> None:
    """The k largest of each row of x [..., N], descending, ties to the lower index, NaN largest:
    indices [..., k] int32/int64 and values [..., k] (or None)."""
    cx = _ctx_or_default(ctx)
    args = _Borrowed(x, values, indices)
    _check(_lib.dsk_topk(cx.handle, args.ptrs[0], int(k), args.ptrs[1], args.ptrs[2]))


def embedding(ctx: Optional[Context], table: TensorLike, ids: TensorLike, out: TensorLike) -> None:
    """out[..., :] = table[ids[...], :] for table [V, D] and int32/int64 ids in [0, V)."""
    _call_op(_lib.dsk_embedding, ctx, (table, ids, out))


# --- MLA attention (dsk_mla.h)
#
# The conventions of the ops above: tensors as dsk.Tensor or any DLPack producer, outputs passed in
# and written, ctx=None for the process-wide CPU context. Required arguments come in the C order,
# optional ones (None = NULL, causal) are keywords. Shapes and semantics: dsk_mla.h.


def mla_softmax_scale(qk_head_dim: int, rope_factor: float = 1.0, mscale: float = 1.0,
                      use_yarn: bool = False) -> float:
    """The reference's softmax scale (dsk_mla_softmax_scale): qk_head_dim**-0.5, times m**2 with
    m = 0.1 * mscale * ln(rope_factor) + 1 when use_yarn and rope_factor > 1.

    DeepSeek-V3: mla_softmax_scale(192, 40.0, 1.0, True) == 0.1352338 (an f32 value).
    """
    out = ctypes.c_float()
    _check(_lib.dsk_mla_softmax_scale(int(qk_head_dim), float(rope_factor), float(mscale),
                                      1 if use_yarn else 0, byref(out)))
    return out.value


class MlaDecodePlan:
    """An absorbed-decode plan (dsk_mla_decode_plan) for tensors of these shapes, dtype and device.

    Made from the tensors later passed to run() (their contents are not read): q [B, S, Hq, D],
    kv_cache [num_pages, page_size, Hkv, D], block_table [B, max_pages] int32, cache_seqlens [B]
    int32, out [B, S, Hq, Dv]. One plan serves every layer and step with the same batch shape (the
    number of pages may differ). Use as a context manager or call close(); collected plans are
    released too.
    """

    def __init__(self, ctx: Optional[Context], q: TensorLike, kv_cache: TensorLike,
                 block_table: TensorLike, cache_seqlens: TensorLike, out: TensorLike) -> None:
        self._h: Optional[int] = None
        cx = _ctx_or_default(ctx)
        args = _Borrowed(q, kv_cache, block_table, cache_seqlens, out)
        h = c_void_p()
        _check(_lib.dsk_mla_decode_plan_create(cx.handle, *args.ptrs, byref(h)))
        self._h = h.value

    @property
    def handle(self) -> int:
        """The dsk_mla_decode_plan* address; ValueError after close()."""
        h = getattr(self, "_h", None)
        if h is None:
            raise ValueError("dsk: the MLA decode plan is closed")
        return h

    def close(self) -> None:
        """Releases the plan (idempotent)."""
        h, self._h = getattr(self, "_h", None), None
        if h is not None:
            _lib.dsk_mla_decode_plan_release(h)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self) -> "MlaDecodePlan":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def workspace_size(self) -> int:
        """Bytes of scratch run() uses (0 when none): a context workspace at least this large
        (Context.reserve_workspace) makes run allocation-free and capturable."""
        out = c_size_t()
        _check(_lib.dsk_mla_decode_plan_workspace_size(self.handle, byref(out)))
        return out.value

    @property
    def num_splits(self) -> int:
        """The number of pieces each request's keys are split into (1 = no split)."""
        out = c_int32()
        _check(_lib.dsk_mla_decode_plan_num_splits(self.handle, byref(out)))
        return out.value

    def run(self, ctx: Optional[Context], q: TensorLike, kv_cache: TensorLike,
            block_table: TensorLike, cache_seqlens: TensorLike, softmax_scale: float,
            out: TensorLike, causal: bool = False, lse: Optional[TensorLike] = None) -> None:
        """mla_decode_run with this plan."""
        mla_decode_run(ctx, self, q, kv_cache, block_table, cache_seqlens, softmax_scale, out,
                       causal=causal, lse=lse)

    def __repr__(self) -> str:
        if getattr(self, "_h", None) is None:
            return "<dsk.MlaDecodePlan closed>"
        return (f"<dsk.MlaDecodePlan num_splits={self.num_splits} "
                f"workspace_size={self.workspace_size}>")


def mla_decode_plan(ctx: Optional[Context], q: TensorLike, kv_cache: TensorLike,
                    block_table: TensorLike, cache_seqlens: TensorLike,
                    out: TensorLike) -> MlaDecodePlan:
    """A decode plan for tensors like these (dsk_mla_decode_plan_create); see MlaDecodePlan."""
    return MlaDecodePlan(ctx, q, kv_cache, block_table, cache_seqlens, out)


def mla_decode_run(ctx: Optional[Context], plan: MlaDecodePlan, q: TensorLike,
                   kv_cache: TensorLike, block_table: TensorLike, cache_seqlens: TensorLike,
                   softmax_scale: float, out: TensorLike, causal: bool = False,
                   lse: Optional[TensorLike] = None) -> None:
    """Absorbed MLA decode over the paged latent cache with a plan (dsk_mla_decode_run).

    out [B, S, Hq, Dv] = softmax(q . K * softmax_scale) @ V per query head, K the cached rows
    [Dv | rope], V their first Dv values; lse [B, Hq, S] f32 or None. causal: query j of request
    b sees the first cache_seqlens[b] - S + j + 1 tokens (else all cache_seqlens[b]).
    """
    cx = _ctx_or_default(ctx)
    args = _Borrowed(q, kv_cache, block_table, cache_seqlens, out, lse)
    p = args.ptrs
    _check(_lib.dsk_mla_decode_run(cx.handle, plan.handle, p[0], p[1], p[2], p[3],
                                   float(softmax_scale), 1 if causal else 0, p[4], p[5]))


def mla_decode(ctx: Optional[Context], q: TensorLike, kv_cache: TensorLike,
               block_table: TensorLike, cache_seqlens: TensorLike, softmax_scale: float,
               out: TensorLike, causal: bool = False, lse: Optional[TensorLike] = None) -> None:
    """mla_decode_run with a plan made and released in the call (dsk_mla_decode)."""
    cx = _ctx_or_default(ctx)
    args = _Borrowed(q, kv_cache, block_table, cache_seqlens, out, lse)
    p = args.ptrs
    _check(_lib.dsk_mla_decode(cx.handle, p[0], p[1], p[2], p[3], float(softmax_scale),
                               1 if causal else 0, p[4], p[5]))


def mla_cache_append(ctx: Optional[Context], c_kv: TensorLike, k_pe: TensorLike,
                     slot_mapping: TensorLike, kv_cache: TensorLike) -> None:
    """Writes T tokens into the latent cache (dsk_mla_cache_append): for slot_mapping[t] = s >= 0,
    kv_cache[s // page_size, s % page_size, h] = [c_kv[t, h] | k_pe[t, h]] (slot -1 skips).

    c_kv [T, Hkv, Dv] or [T, Dv], k_pe [T, Hkv, D - Dv] or [T, D - Dv], slot_mapping [T] int64.
    """
    _call_op(_lib.dsk_mla_cache_append, ctx, (c_kv, k_pe, slot_mapping, kv_cache))


def mla_absorb_q(ctx: Optional[Context], q_nope: TensorLike, wkv_b: TensorLike,
                 q_latent: TensorLike, wkv_b_scale: Optional[TensorLike] = None) -> None:
    """q_latent[t, h] = q_nope[t, h] @ W_UK[h] (dsk_mla_absorb_q): q_nope [T, H, dn] ->
    q_latent [T, H, Dc]. wkv_b [H * (dn + dv), Dc]; wkv_b_scale: its 128 x 128 block scales when
    it is fp8_e4m3fn, else None."""
    _call_op(_lib.dsk_mla_absorb_q, ctx, (q_nope, wkv_b, wkv_b_scale, q_latent))


def mla_absorb_out(ctx: Optional[Context], o_latent: TensorLike, wkv_b: TensorLike,
                   o: TensorLike, wkv_b_scale: Optional[TensorLike] = None) -> None:
    """o[t, h] = o_latent[t, h] @ W_UV[h].T (dsk_mla_absorb_out): o_latent [T, H, Dc] ->
    o [T, H, dv]."""
    _call_op(_lib.dsk_mla_absorb_out, ctx, (o_latent, wkv_b, wkv_b_scale, o))


def mla_decompress_kv(ctx: Optional[Context], c_kv: TensorLike, wkv_b: TensorLike, k: TensorLike,
                      v: TensorLike, k_pe: Optional[TensorLike] = None,
                      wkv_b_scale: Optional[TensorLike] = None) -> None:
    """Per-head keys and values from latents (dsk_mla_decompress_kv): k[t, h, :dn] =
    c_kv[t] @ W_UK[h].T, v[t, h] = c_kv[t] @ W_UV[h].T and, with k_pe [T, Dr], k[t, h, dn:] =
    k_pe[t]. c_kv [T, Dc], k [T, H, dn (+ Dr)], v [T, H, dv]."""
    _call_op(_lib.dsk_mla_decompress_kv, ctx, (c_kv, k_pe, wkv_b, wkv_b_scale, k, v))


def mla_prefill(ctx: Optional[Context], q: TensorLike, k: TensorLike, v: TensorLike,
                cu_seqlens_q: TensorLike, softmax_scale: float, out: TensorLike,
                causal: bool = False, cu_seqlens_k: Optional[TensorLike] = None,
                lse: Optional[TensorLike] = None) -> None:
    """Variable-length MHA-form attention (dsk_mla_prefill): q [Tq, H, Dqk], k [Tk, Hk, Dqk],
    v [Tk, Hk, Dv] -> out [Tq, H, Dv], lse [H, Tq] f32 or None; request b owns query rows
    cu_seqlens_q[b]:cu_seqlens_q[b+1] and key rows cu_seqlens_k[b]:cu_seqlens_k[b+1] (int32;
    None = cu_seqlens_q). causal: query j sees keys 0 .. n_k - n_q + j."""
    cx = _ctx_or_default(ctx)
    args = _Borrowed(q, k, v, cu_seqlens_q, cu_seqlens_k, out, lse)
    p = args.ptrs
    _check(_lib.dsk_mla_prefill(cx.handle, p[0], p[1], p[2], p[3], p[4], float(softmax_scale),
                                1 if causal else 0, p[5], p[6]))


# --- Mixture of Experts (dsk_moe.h)
#
# The conventions of the ops above: tensors as dsk.Tensor or any DLPack producer, outputs passed in
# and written, ctx=None for the process-wide CPU context. Required arguments come in the C order,
# optional ones (None = NULL, scalars with a natural default) are keywords. The gate parameters are
# a MoeGateConfig, expert weights a MoeExpertWeights (or a (w1, w3, w2) tuple). Shapes and
# semantics: dsk_moe.h.

MOE_SCORE_SOFTMAX = _ffi.DSK_MOE_SCORE_SOFTMAX
MOE_SCORE_SIGMOID = _ffi.DSK_MOE_SCORE_SIGMOID
MOE_SCORE_NONE = _ffi.DSK_MOE_SCORE_NONE
MOE_GROUP_AUTO = _ffi.DSK_MOE_GROUP_AUTO
MOE_GROUP_MAX = _ffi.DSK_MOE_GROUP_MAX
MOE_GROUP_TOP2SUM = _ffi.DSK_MOE_GROUP_TOP2SUM
MOE_ROW_NO_FINITE = _ffi.DSK_MOE_ROW_NO_FINITE
MOE_ROW_SHORT = _ffi.DSK_MOE_ROW_SHORT

_MOE_SCORES = {"softmax": MOE_SCORE_SOFTMAX, "sigmoid": MOE_SCORE_SIGMOID, "none": MOE_SCORE_NONE}
_MOE_GROUP_RULES = {"auto": MOE_GROUP_AUTO, "max": MOE_GROUP_MAX, "top2sum": MOE_GROUP_TOP2SUM}


def _moe_enum(table: Dict[str, int], value: Union[str, int], what: str) -> int:
    if isinstance(value, int):
        return value  # the library validates the range
    try:
        return table[value.lower()]
    except (KeyError, AttributeError):
        raise InvalidArgumentError(
            f"dsk: MoeGateConfig: unknown {what} {value!r}; expected one of "
            f"{', '.join(repr(k) for k in table)}", _ffi.DSK_ERR_INVALID_ARGUMENT) from None


def _moe_enum_name(table: Dict[str, int], value: int) -> Union[str, int]:
    for name, v in table.items():
        if v == value:
            return name
    return value


@dataclass
class MoeGateConfig:
    """dsk_moe_gate_config: the gate's parameters; the defaults are DeepSeek-V3's (see dsk_moe.h).

    score_func: "softmax", "sigmoid" or "none" (the logits are already scores); group_rule:
    "auto" (top-2 sum with a bias, max without), "max" or "top2sum"; either may also be a
    dsk.MOE_* value. score_dtype "f32", or "bf16" to reproduce the GitHub reference's bf16 steps.
    """

    num_experts: int = 256
    top_k: int = 8
    n_group: int = 8
    topk_group: int = 4
    score_func: Union[str, int] = "sigmoid"
    group_rule: Union[str, int] = "auto"
    renormalize: bool = True
    routed_scaling_factor: float = 2.5
    score_dtype: DType = "f32"

    @classmethod
    def deepseek_v3(cls) -> "MoeGateConfig":
        """The library's defaults (dsk_moe_gate_config_init): E 256, k 8, G 8, topk_group 4,
        sigmoid, renormalized, scale 2.5."""
        raw = _ffi.dsk_moe_gate_config()
        _check(_lib.dsk_moe_gate_config_init(byref(raw)))
        return cls(num_experts=raw.num_experts, top_k=raw.top_k, n_group=raw.n_group,
                   topk_group=raw.topk_group,
                   score_func=_moe_enum_name(_MOE_SCORES, raw.score_func),
                   group_rule=_moe_enum_name(_MOE_GROUP_RULES, raw.group_rule),
                   renormalize=bool(raw.renormalize),
                   routed_scaling_factor=raw.routed_scaling_factor,
                   score_dtype=dtype_from_id(raw.score_dtype))

    @classmethod
    def deepseek_v2(cls) -> "MoeGateConfig":
        """DeepSeek-V2: E 160, k 6, G 8, topk_group 3, softmax, not renormalized, scale 16."""
        return cls(num_experts=160, top_k=6, n_group=8, topk_group=3, score_func="softmax",
                   renormalize=False, routed_scaling_factor=16.0)

    @classmethod
    def deepseek_v2_lite(cls) -> "MoeGateConfig":
        """DeepSeek-V2-Lite: E 64, k 6, no groups, softmax, not renormalized, scale 1."""
        return cls(num_experts=64, top_k=6, n_group=1, topk_group=1, score_func="softmax",
                   renormalize=False, routed_scaling_factor=1.0)

    def _raw(self) -> Any:
        raw = _ffi.dsk_moe_gate_config()
        _check(_lib.dsk_moe_gate_config_init(byref(raw)))  # struct_size
        raw.num_experts = self.num_experts
        raw.top_k = self.top_k
        raw.n_group = self.n_group
        raw.topk_group = self.topk_group
        raw.score_func = _moe_enum(_MOE_SCORES, self.score_func, "score_func")
        raw.group_rule = _moe_enum(_MOE_GROUP_RULES, self.group_rule, "group_rule")
        raw.renormalize = 1 if self.renormalize else 0
        raw.routed_scaling_factor = self.routed_scaling_factor
        raw.score_dtype = (self.score_dtype if isinstance(self.score_dtype, int)
                           else dtype_id(self.score_dtype))
        return raw


def _gate_config(config: Optional[MoeGateConfig]) -> Any:
    return (config if config is not None else MoeGateConfig())._raw()


@dataclass
class MoeExpertWeights:
    """dsk_moe_expert_weights: SwiGLU expert weights y = (silu(x @ w1.T) * (x @ w3.T)) @ w2.T.

    Routed experts: w1, w3 [E, I, D], w2 [E, D, I]; shared experts: w1, w3 [Is, D], w2 [D, Is].
    One float dtype, or fp8_e4m3fn with the *_scales ([E,] ceil(rows/128), ceil(cols/128)] f32,
    128 x 128 blocks); the scales are None for float weights.
    """

    w1: TensorLike
    w3: TensorLike
    w2: TensorLike
    w1_scales: Optional[TensorLike] = None
    w3_scales: Optional[TensorLike] = None
    w2_scales: Optional[TensorLike] = None

    def _raw(self) -> Tuple[Any, "_Borrowed"]:
        """The C struct (dsk_moe_expert_weights_init, then the tensors) and what keeps its
        borrowed tensors alive."""
        raw = _ffi.dsk_moe_expert_weights()
        _check(_lib.dsk_moe_expert_weights_init(byref(raw)))
        args = _Borrowed(self.w1, self.w3, self.w2, self.w1_scales, self.w3_scales, self.w2_scales)
        p = args.ptrs
        raw.w1, raw.w3, raw.w2, raw.w1_scales, raw.w3_scales, raw.w2_scales = p
        return raw, args


ExpertWeightsLike = Union[MoeExpertWeights, Sequence[Optional[TensorLike]]]


def _expert_weights(w: Optional[ExpertWeightsLike]) -> Tuple[Any, Any]:
    """(byref(struct) or None, keep-alive) for a MoeExpertWeights, a (w1, w3, w2[, w1_scales,
    w3_scales, w2_scales]) sequence, or None."""
    if w is None:
        return None, None
    if not isinstance(w, MoeExpertWeights):
        if isinstance(w, (tuple, list)) and len(w) in (3, 6):
            w = MoeExpertWeights(*w)
        else:
            raise TypeError("dsk: expert weights are a dsk.MoeExpertWeights or a (w1, w3, w2) "
                            f"tuple, not {type(w).__name__}")
    raw, keep = w._raw()
    return byref(raw), (raw, keep)


def moe_gate(ctx: Optional[Context], config: Optional[MoeGateConfig], logits: TensorLike,
             ids: TensorLike, weights: TensorLike, bias: Optional[TensorLike] = None,
             row_flags: Optional[TensorLike] = None) -> None:
    """Routes T tokens (dsk_moe_gate): logits [T, E] f32/f16/bf16 -> ids [T, k] int32/int64 (the
    k best biased scores, descending, ties to the lower expert) and weights [T, k] f32 (the
    unbiased scores at ids, renormalized and scaled as configured). bias [E] f32 or None;
    row_flags [T] uint8 or None receives dsk.MOE_ROW_* bits. config None: DeepSeek-V3's gate."""
    cx = _ctx_or_default(ctx)
    raw = _gate_config(config)
    args = _Borrowed(logits, bias, ids, weights, row_flags)
    _check(_lib.dsk_moe_gate(cx.handle, byref(raw), *args.ptrs))


def moe_gate_router(ctx: Optional[Context], config: Optional[MoeGateConfig], x: TensorLike,
                    w: TensorLike, ids: TensorLike, weights: TensorLike,
                    bias: Optional[TensorLike] = None,
                    row_flags: Optional[TensorLike] = None) -> None:
    """The router GEMM logits = x [T, D] @ w [E, D].T (f32 accumulation), then moe_gate
    (dsk_moe_gate_router)."""
    cx = _ctx_or_default(ctx)
    raw = _gate_config(config)
    args = _Borrowed(x, w, bias, ids, weights, row_flags)
    _check(_lib.dsk_moe_gate_router(cx.handle, byref(raw), *args.ptrs))


def moe_dispatch_capacity(num_tokens: int, top_k: int, num_experts: int,
                          block_size: int = 1) -> int:
    """The rows sorted_rows needs in the worst case (dsk_moe_dispatch_capacity):
    T * k + min(E, T * k) * (block_size - 1)."""
    out = c_int64()
    _check(_lib.dsk_moe_dispatch_capacity(int(num_tokens), int(top_k), int(num_experts),
                                          int(block_size), byref(out)))
    return out.value


def moe_dispatch(ctx: Optional[Context], ids: TensorLike, num_experts: int, counts: TensorLike,
                 offsets: TensorLike, sorted_rows: TensorLike, expert_begin: int = 0,
                 block_size: int = 1, block_experts: Optional[TensorLike] = None,
                 dest: Optional[TensorLike] = None) -> None:
    """Sorts the assignments t * k + j of ids [T, k] by local expert id - expert_begin, stably
    (dsk_moe_dispatch); ids outside [expert_begin, expert_begin + num_experts) are skipped.

    Outputs (int32): counts [E], offsets [E + 1] (segments padded to block_size),
    sorted_rows [capacity] (T * k for padding), block_experts [ceil(capacity / block_size)] or
    None, dest [T, k] or None (the row of each assignment, -1 when skipped).
    """
    cx = _ctx_or_default(ctx)
    args = _Borrowed(ids, counts, offsets, sorted_rows, block_experts, dest)
    p = args.ptrs
    _check(_lib.dsk_moe_dispatch(cx.handle, p[0], int(num_experts), int(expert_begin),
                                 int(block_size), p[1], p[2], p[3], p[4], p[5]))


def moe_permute(ctx: Optional[Context], x: TensorLike, sorted_rows: TensorLike, top_k: int,
                out: TensorLike, out_scales: Optional[TensorLike] = None,
                scale_pow2: bool = False) -> None:
    """out[r] = x[sorted_rows[r] // top_k], 0 for padding rows (dsk_moe_permute). An fp8_e4m3fn
    out is quantized per 1 x 128 tile with out_scales [R, ceil(D/128)] f32 (scale_pow2 as in
    quant_fp8_act); float outputs take neither."""
    cx = _ctx_or_default(ctx)
    args = _Borrowed(x, sorted_rows, out, out_scales)
    p = args.ptrs
    _check(_lib.dsk_moe_permute(cx.handle, p[0], p[1], int(top_k), p[2], p[3],
                                _quant_flags(scale_pow2)))


def moe_combine(ctx: Optional[Context], y: TensorLike, dest: TensorLike, weights: TensorLike,
                out: TensorLike, shared: Optional[TensorLike] = None) -> None:
    """out[t] = shared[t] + sum_j weights[t, j] * y[dest[t, j]] in f32, skipping dest -1
    (dsk_moe_combine). y [R, D], dest [T, k] int32, weights [T, k] f32, shared [T, D] or None;
    out may be shared itself."""
    _call_op(_lib.dsk_moe_combine, ctx, (y, dest, weights, shared, out))


def moe_experts(ctx: Optional[Context], weights: ExpertWeightsLike, x: TensorLike,
                offsets: TensorLike, y: TensorLike, x_scales: Optional[TensorLike] = None) -> None:
    """Runs SwiGLU expert e over rows offsets[e]:offsets[e+1] of x [R, D] into y [R, D]
    (dsk_moe_experts); rows at or past offsets[E] are not written. offsets [E + 1] int32 (host or
    x's device). x_scales: the 1 x 128 tile scales of an fp8_e4m3fn x (moe_permute's fp8 output),
    else None."""
    cx = _ctx_or_default(ctx)
    w, _keep_w = _expert_weights(weights)
    args = _Borrowed(x, x_scales, offsets, y)
    _check(_lib.dsk_moe_experts(cx.handle, w, *args.ptrs))


class MoePlan:
    """A MoE layer plan (dsk_moe_plan) for tensors of these shapes, dtypes and device.

    Made from the tensors later passed to run() (their contents are not read): x [T, D],
    router_w [E, D], the routed experts, the shared experts (None: the layer has none) and
    out [T, D]. Immutable; usable from any thread with any context on its device. Use as a
    context manager or call close(); collected plans are released too.
    """

    def __init__(self, ctx: Optional[Context], config: Optional[MoeGateConfig], x: TensorLike,
                 router_w: TensorLike, experts: ExpertWeightsLike, out: TensorLike,
                 shared: Optional[ExpertWeightsLike] = None) -> None:
        self._h: Optional[int] = None
        cx = _ctx_or_default(ctx)
        raw = _gate_config(config)
        ew, _keep_e = _expert_weights(experts)
        sw, _keep_s = _expert_weights(shared)
        args = _Borrowed(x, router_w, out)
        p = args.ptrs
        h = c_void_p()
        _check(_lib.dsk_moe_plan_create(cx.handle, byref(raw), p[0], p[1], ew, sw, p[2], byref(h)))
        self._h = h.value

    @property
    def handle(self) -> int:
        """The dsk_moe_plan* address; ValueError after close()."""
        h = getattr(self, "_h", None)
        if h is None:
            raise ValueError("dsk: the MoE plan is closed")
        return h

    def close(self) -> None:
        """Releases the plan (idempotent)."""
        h, self._h = getattr(self, "_h", None), None
        if h is not None:
            _lib.dsk_moe_plan_release(h)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self) -> "MoePlan":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def workspace_size(self) -> int:
        """Bytes of scratch run() uses: a context workspace at least this large
        (Context.reserve_workspace) makes run allocation-free."""
        out = c_size_t()
        _check(_lib.dsk_moe_plan_workspace_size(self.handle, byref(out)))
        return out.value

    def run(self, ctx: Optional[Context], x: TensorLike, router_w: TensorLike,
            experts: ExpertWeightsLike, out: TensorLike, bias: Optional[TensorLike] = None,
            shared: Optional[ExpertWeightsLike] = None, ids: Optional[TensorLike] = None,
            weights: Optional[TensorLike] = None) -> None:
        """moe_forward_run with this plan."""
        moe_forward_run(ctx, self, x, router_w, experts, out, bias=bias, shared=shared, ids=ids,
                        weights=weights)

    def __repr__(self) -> str:
        if getattr(self, "_h", None) is None:
            return "<dsk.MoePlan closed>"
        return f"<dsk.MoePlan workspace_size={self.workspace_size}>"


def moe_plan(ctx: Optional[Context], config: Optional[MoeGateConfig], x: TensorLike,
             router_w: TensorLike, experts: ExpertWeightsLike, out: TensorLike,
             shared: Optional[ExpertWeightsLike] = None) -> MoePlan:
    """A layer plan for tensors like these (dsk_moe_plan_create); see MoePlan."""
    return MoePlan(ctx, config, x, router_w, experts, out, shared=shared)


def moe_forward_run(ctx: Optional[Context], plan: MoePlan, x: TensorLike, router_w: TensorLike,
                    experts: ExpertWeightsLike, out: TensorLike, bias: Optional[TensorLike] = None,
                    shared: Optional[ExpertWeightsLike] = None, ids: Optional[TensorLike] = None,
                    weights: Optional[TensorLike] = None) -> None:
    """The whole MoE layer with a plan (dsk_moe_forward_run): gate_router(x, router_w, bias) ->
    dispatch -> permute -> experts -> shared experts on x -> combine (+ shared) = out [T, D].
    shared must be given exactly when it was at plan time; ids [T, k] int32 and weights [T, k]
    f32 receive the gate's output when given."""
    cx = _ctx_or_default(ctx)
    ew, _keep_e = _expert_weights(experts)
    sw, _keep_s = _expert_weights(shared)
    args = _Borrowed(x, router_w, bias, out, ids, weights)
    p = args.ptrs
    _check(_lib.dsk_moe_forward_run(cx.handle, plan.handle, p[0], p[1], p[2], ew, sw, p[3], p[4],
                                    p[5]))


def moe_forward(ctx: Optional[Context], config: Optional[MoeGateConfig], x: TensorLike,
                router_w: TensorLike, experts: ExpertWeightsLike, out: TensorLike,
                bias: Optional[TensorLike] = None,
                shared: Optional[ExpertWeightsLike] = None) -> None:
    """moe_forward_run with a plan made and released in the call (dsk_moe_forward)."""
    cx = _ctx_or_default(ctx)
    raw = _gate_config(config)
    ew, _keep_e = _expert_weights(experts)
    sw, _keep_s = _expert_weights(shared)
    args = _Borrowed(x, router_w, bias, out)
    p = args.ptrs
    _check(_lib.dsk_moe_forward(cx.handle, byref(raw), p[0], p[1], p[2], ew, sw, p[3]))


def moe_load_accumulate(ctx: Optional[Context], ids: TensorLike, load: TensorLike,
                        expert_begin: int = 0) -> None:
    """load[e] += the number of assignments of ids [T, k] to expert expert_begin + e
    (dsk_moe_load_accumulate); load [E] int64. Other ids (other devices' experts, -1) are
    skipped."""
    cx = _ctx_or_default(ctx)
    args = _Borrowed(ids, load)
    _check(_lib.dsk_moe_load_accumulate(cx.handle, args.ptrs[0], int(expert_begin), args.ptrs[1]))


def moe_bias_update(ctx: Optional[Context], load: TensorLike, bias: TensorLike,
                    gamma: float = 0.001) -> None:
    """DeepSeek-V3's auxiliary-loss-free update (dsk_moe_bias_update), in place:
    bias[e] += gamma * sign(mean(load) - load[e]). load [E] int64 or f32, bias [E] f32."""
    _call_op(_lib.dsk_moe_bias_update, ctx, (load, bias), float(gamma))


def moe_ep_layout(ctx: Optional[Context], ids: TensorLike, num_experts: int, num_ranks: int,
                  tokens_per_rank: TensorLike, tokens_per_expert: TensorLike,
                  is_token_in_rank: TensorLike) -> None:
    """DeepEP's dispatch layout for num_ranks ranks owning contiguous expert ranges
    (dsk_moe_ep_layout): tokens_per_rank [R] int32, tokens_per_expert [E] int32,
    is_token_in_rank [T, R] bool/uint8, from ids [T, k] (-1 = no expert)."""
    cx = _ctx_or_default(ctx)
    args = _Borrowed(ids, tokens_per_rank, tokens_per_expert, is_token_in_rank)
    p = args.ptrs
    _check(_lib.dsk_moe_ep_layout(cx.handle, p[0], int(num_experts), int(num_ranks), p[1], p[2],
                                  p[3]))


# --- token sampling (dsk_sampling.h)
#
# The conventions of the ops above (tensors as dsk.Tensor or any DLPack producer, ctx=None for the
# process-wide CPU context), with two conveniences: every parameter is a scalar or a per-row
# sequence / tensor [B], and token lists and the logit bias may be given as Python lists per row
# (the CSR tensors are built here). Outputs are allocated on ctx's device unless given. Semantics,
# the processing chain and the RNG layout: dsk_sampling.h.

SAMPLE_OK = _ffi.DSK_SAMPLE_OK
SAMPLE_ALL_MASKED = _ffi.DSK_SAMPLE_ALL_MASKED
SAMPLE_NONFINITE = _ffi.DSK_SAMPLE_NONFINITE
SAMPLE_INVALID = _ffi.DSK_SAMPLE_INVALID
LOGPROBS_PROCESSED = _ffi.DSK_LOGPROBS_PROCESSED
LOGPROBS_RAW = _ffi.DSK_LOGPROBS_RAW
SAMPLE_MAX_TOP_LOGPROBS = _ffi.DSK_SAMPLE_MAX_TOP_LOGPROBS
VERIFY_SAMPLE = _ffi.DSK_VERIFY_SAMPLE
VERIFY_GREEDY = _ffi.DSK_VERIFY_GREEDY

_U64 = (1 << 64) - 1
_I32_MIN, _I32_MAX = -(1 << 31), (1 << 31) - 1


class SampleResult(NamedTuple):
    """What sample() returns when more than the ids is asked for (None where not asked)."""

    ids: Tensor
    logprobs: Optional[Tensor]
    top_ids: Optional[Tensor]
    top_logprobs: Optional[Tensor]
    raw_logprobs: Optional[Tensor]
    status: Optional[Tensor]


class VerifyResult(NamedTuple):
    """What speculative_verify() returns: out_ids [B, n + 1], accepted [B], emitted [B] or None."""

    out_ids: Tensor
    accepted: Tensor
    emitted: Optional[Tensor]


def _sampling_invalid(message: str) -> InvalidArgumentError:
    return InvalidArgumentError("dsk: " + message, _ffi.DSK_ERR_INVALID_ARGUMENT)


def _is_tensor(x: Any) -> bool:
    return isinstance(x, Tensor) or hasattr(x, "__dlpack__")


def _is_scalar(x: Any) -> bool:
    # Python and NumPy numbers, and 0-d arrays / tensors.
    if isinstance(x, (int, float)):
        return True
    if isinstance(x, Tensor):
        return False
    return getattr(x, "ndim", None) == 0 or (
        not hasattr(x, "__len__") and not hasattr(x, "__dlpack__") and hasattr(x, "__index__"))


def _scalar_value(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else x


def _operand(x: Any, dtype: str, ctx: Context) -> Tensor:
    """x as a tensor of dtype on ctx's device: zero-copy when it already is one, else converted."""
    if not _is_tensor(x):
        import numpy as np

        np_dtype = {"f32": np.float32, "int32": np.int32, "int64": np.int64}[dtype]
        x = np.ascontiguousarray(np.asarray(x, dtype=np_dtype))
    return asarray(x, dtype, ctx)


def _seed_operand(x: Any, ctx: Context) -> Tensor:
    """Per-row seeds / offsets as int64 (read as uint64 by the library): Python ints are taken
    mod 2**64 and NumPy uint64 arrays reinterpreted."""
    import numpy as np

    if isinstance(x, np.ndarray) and x.dtype.kind == "u":
        x = np.ascontiguousarray(x.astype(np.uint64)).view(np.int64)
    elif not _is_tensor(x):
        x = np.array([int(v) & _U64 for v in x], dtype=np.uint64).view(np.int64)
    return asarray(x, "int64", ctx)


def _index_operand(x: Any, ctx: Context) -> Tensor:
    """An int32 / int64 index tensor (CSR offsets or ids, draft ids) on ctx's device; other dtypes
    and lists become int64."""
    if not _is_tensor(x):
        import numpy as np

        x = np.ascontiguousarray(np.asarray(x, dtype=np.int64))
    t = asarray(x, None, ctx)
    if t.dtype not in ("int32", "int64"):
        t = clone(ctx, t, "int64")
    return t


def _csr_rows(rows: Any, batch: int, name: str) -> Tuple[Any, Any]:
    """(offsets [B + 1], ids [N]) int64 NumPy arrays from B per-row id sequences (None = empty)."""
    import numpy as np

    if _is_tensor(rows) and not isinstance(rows, np.ndarray):
        raise _sampling_invalid(
            f"{name}: pass a list of per-row id lists, or the flat ids tensor together with "
            f"{name.replace('_ids', '_offsets')}")
    rows = list(rows)
    if len(rows) != batch:
        raise _sampling_invalid(
            f"{name} has {len(rows)} rows, expected one per logits row ({batch})")
    parts = [np.asarray([] if r is None else r, dtype=np.int64).reshape(-1) for r in rows]
    offsets = np.zeros(batch + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(p) for p in parts])
    ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return offsets, ids


def _bias_rows(bias: Any, batch: int) -> Tuple[Any, Any, Any]:
    """(offsets, ids, values) NumPy arrays from logit_bias: one {id: value} mapping for every row,
    or B entries each None, a mapping or a sequence of (id, value) pairs."""
    import numpy as np
    from collections.abc import Mapping

    rows = [bias] * batch if isinstance(bias, Mapping) else list(bias)
    if len(rows) != batch:
        raise _sampling_invalid(
            f"logit_bias has {len(rows)} rows, expected one per logits row ({batch}) or one "
            f"{{token: bias}} mapping for all")
    ids: List[int] = []
    values: List[float] = []
    offsets = [0]
    for row in rows:
        pairs = [] if row is None else (row.items() if isinstance(row, Mapping) else row)
        for token, value in pairs:
            ids.append(int(token))
            values.append(float(value))
        offsets.append(len(ids))
    return (np.asarray(offsets, dtype=np.int64), np.asarray(ids, dtype=np.int64),
            np.asarray(values, dtype=np.float32))


def _mask_operand(mask: Any, batch: int, vocab: int, ctx: Context) -> Tensor:
    """allowed_mask as the library's [B, ceil(V / 32)] int32 bitmask. A boolean array [B, V] (or
    [V] for every row) is packed here; integer arrays are taken as the bitmask words."""
    import numpy as np

    if _is_tensor(mask) and not isinstance(mask, np.ndarray):
        t = mask if isinstance(mask, Tensor) else from_dlpack(mask)
        if t.dtype != "bool":
            return asarray(t, "int32", ctx)
        if t.device.device_type not in _HOST_DEVICES:
            raise _sampling_invalid(
                "allowed_mask: a boolean mask is packed on the host; pass a device mask as the "
                "[B, ceil(V / 32)] int32 bitmask")
        mask = t.numpy()
    arr = np.asarray(mask)
    if arr.dtype == np.bool_:
        if arr.shape[-1:] != (vocab,) or arr.ndim not in (1, 2):
            raise _sampling_invalid(
                f"allowed_mask: a boolean mask must be [B, V] or [V] (V = {vocab}), not "
                f"{list(arr.shape)}")
        words = (vocab + 31) // 32
        padded = np.zeros((batch, words * 32), dtype=np.bool_)
        padded[:, :vocab] = np.broadcast_to(arr, (batch, vocab))
        packed = np.packbits(padded, axis=1, bitorder="little")
        arr = np.ascontiguousarray(packed).view("<u4").astype(np.uint32)
    elif arr.dtype.kind in "iu":
        arr = (arr.astype(np.int64) & 0xFFFFFFFF).astype(np.uint32)
    else:
        raise _sampling_invalid(
            f"allowed_mask: expected a boolean [B, V] mask or int32 bitmask words, not {arr.dtype}")
    return asarray(np.ascontiguousarray(arr).view(np.int32), "int32", ctx)


def _logits_operand(logits: Any) -> Tensor:
    if _is_tensor(logits):
        return logits if isinstance(logits, Tensor) else from_dlpack(logits)
    import numpy as np

    return from_dlpack(np.ascontiguousarray(np.asarray(logits, dtype=np.float32)))


def _rows_and_vocab(t: Tensor) -> Tuple[int, int]:
    shape = t.shape
    return (shape[0] if shape else 0), (shape[-1] if shape else 0)


# (scalar field, per-row tensor field, dtype) of dsk_sampling_params.
_SAMPLING_SCALARS = (
    ("temperature", "temperatures", "f32"),
    ("top_k", "top_ks", "int32"),
    ("top_p", "top_ps", "f32"),
    ("min_p", "min_ps", "f32"),
    ("repetition_penalty", "repetition_penalties", "f32"),
    ("frequency_penalty", "frequency_penalties", "f32"),
    ("presence_penalty", "presence_penalties", "f32"),
    ("seed", "seeds", "int64"),
    ("offset", "offsets", "int64"),
)


def _sampling_params(cx: Context, batch: int, vocab: int, *,
                     temperature: Any = 1.0, top_k: Any = 0, top_p: Any = 1.0, min_p: Any = 0.0,
                     repetition_penalty: Any = 1.0, frequency_penalty: Any = 0.0,
                     presence_penalty: Any = 0.0, seed: Any = 0, offset: Any = 0,
                     output_ids: Any = None, output_offsets: Any = None,
                     prompt_ids: Any = None, prompt_offsets: Any = None,
                     logit_bias: Any = None, bias_offsets: Any = None, bias_ids: Any = None,
                     bias_values: Any = None, allowed_mask: Any = None) -> Tuple[Any, List[Any]]:
    """The C struct (dsk_sampling_params_init, then the arguments) and what keeps its tensors
    alive. Scalars set the scalar fields; anything else becomes the per-row tensor."""
    raw = _ffi.dsk_sampling_params()
    _check(_lib.dsk_sampling_params_init(byref(raw)))
    keep: List[Any] = []

    def tensor(t: Tensor) -> Any:
        p, k = _borrow(t)
        keep.append(k)
        return p

    values = dict(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                  repetition_penalty=repetition_penalty, frequency_penalty=frequency_penalty,
                  presence_penalty=presence_penalty, seed=seed, offset=offset)
    for name, per_row, dtype in _SAMPLING_SCALARS:
        v = values[name]
        if v is None:
            continue  # the library's default
        if _is_scalar(v):
            v = _scalar_value(v)
            if dtype == "f32":
                setattr(raw, name, float(v))
            elif dtype == "int32":
                setattr(raw, name, min(max(int(v), _I32_MIN), _I32_MAX))
            else:
                setattr(raw, name, int(v) & _U64)
        elif dtype == "int64":
            setattr(raw, per_row, tensor(_seed_operand(v, cx)))
        else:
            setattr(raw, per_row, tensor(_operand(v, dtype, cx)))

    for ids, offs, ids_field, offs_field in (
            (output_ids, output_offsets, "output_ids", "output_offsets"),
            (prompt_ids, prompt_offsets, "prompt_ids", "prompt_offsets")):
        if ids is None and offs is None:
            continue
        if ids is None:
            raise _sampling_invalid(f"{offs_field} is given without {ids_field}")
        if offs is None:
            offs, ids = _csr_rows(ids, batch, ids_field)
        setattr(raw, offs_field, tensor(_index_operand(offs, cx)))
        setattr(raw, ids_field, tensor(_index_operand(ids, cx)))

    if logit_bias is not None:
        if bias_offsets is not None or bias_ids is not None or bias_values is not None:
            raise _sampling_invalid(
                "logit_bias and bias_offsets / bias_ids / bias_values are alternatives")
        bias_offsets, bias_ids, bias_values = _bias_rows(logit_bias, batch)
    if bias_offsets is not None or bias_ids is not None or bias_values is not None:
        if bias_offsets is None or bias_ids is None or bias_values is None:
            raise _sampling_invalid("bias_offsets, bias_ids and bias_values go together")
        raw.bias_offsets = tensor(_index_operand(bias_offsets, cx))
        raw.bias_ids = tensor(_index_operand(bias_ids, cx))
        raw.bias_values = tensor(_operand(bias_values, "f32", cx))

    if allowed_mask is not None:
        raw.allowed_mask = tensor(_mask_operand(allowed_mask, batch, vocab, cx))
    return raw, keep


def _want(x: Any) -> bool:
    """Whether an optional output was asked for: True, or a tensor to write into."""
    return x is not None and x is not False


def _output(x: Any, shape: Shape, dtype: str, cx: Context) -> Tensor:
    if x is True:
        return empty(shape, dtype, cx)
    return x if isinstance(x, Tensor) else from_dlpack(x)


def _top_source(value: Union[str, int]) -> int:
    if isinstance(value, int):
        return value
    table = {"processed": LOGPROBS_PROCESSED, "raw": LOGPROBS_RAW}
    try:
        return table[value.lower()]
    except (KeyError, AttributeError):
        raise _sampling_invalid(
            f"sample: unknown top_source {value!r}; expected 'processed' or 'raw'") from None


def sample(ctx: Optional[Context], logits: TensorLike, *, temperature: Any = 1.0,
           top_k: Any = 0, top_p: Any = 1.0, min_p: Any = 0.0, repetition_penalty: Any = 1.0,
           frequency_penalty: Any = 0.0, presence_penalty: Any = 0.0, seed: Any = 0,
           offset: Any = 0, output_ids: Any = None, output_offsets: Any = None,
           prompt_ids: Any = None, prompt_offsets: Any = None, logit_bias: Any = None,
           bias_offsets: Any = None, bias_ids: Any = None, bias_values: Any = None,
           allowed_mask: Any = None, ids: Optional[TensorLike] = None, logprobs: Any = False,
           top_logprobs: Any = 0, top_source: Union[str, int] = "processed",
           raw_logprobs: Any = False, status: Any = False) -> Union[Tensor, SampleResult]:
    """Samples one token per row of logits [B, V] (f32, f16 or bf16; dsk_sample).

    Per row: allowed_mask -> logit_bias -> penalties -> temperature (0 = greedy) -> top_k ->
    top_p -> min_p -> Gumbel-max sampling with Philox noise keyed by (seed, offset); the same
    (seed, offset) gives the same token on every backend and in any batch. Advance offset by one
    per decode step.

    Each of temperature, top_k, top_p, min_p, repetition_penalty, frequency_penalty,
    presence_penalty, seed and offset is a scalar for every row or a per-row sequence / tensor
    [B] (seeds and offsets are taken mod 2**64). Token lists (output_ids: the generated ids, for
    the three penalties; prompt_ids: for the repetition penalty) are B per-row id lists, or the
    flat ids tensor with its CSR offsets [B + 1] (output_offsets / prompt_offsets). logit_bias is
    one {token: bias} mapping for every row or B per-row mappings / (token, bias) lists, or give
    bias_offsets, bias_ids and bias_values as CSR tensors. allowed_mask is a boolean [B, V] (or
    [V]) array, or the [B, ceil(V / 32)] int32 bitmask (bit j % 32 of word j / 32 allows token j).

    Outputs are allocated on ctx's device, or written into the tensors given: ids [B] int32;
    logprobs (True or a [B] f32 tensor): the sampled token's logprob under the processed
    distribution; top_logprobs (n <= 64, or an (ids [B, n] int32, logprobs [B, n] f32) pair):
    the n most likely tokens of top_source's distribution ("processed" or "raw"), -1 / -inf past
    its end; raw_logprobs (True or [B] f32): under log_softmax(logits); status (True or [B]
    uint8): dsk.SAMPLE_* per row (rows not SAMPLE_OK get id 0 and NaN logprobs).

    Returns the ids tensor, or a SampleResult when any other output was asked for.
    """
    cx = _ctx_or_default(ctx)
    lt = _logits_operand(logits)
    batch, vocab = _rows_and_vocab(lt)
    raw, keep = _sampling_params(
        cx, batch, vocab, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
        repetition_penalty=repetition_penalty, frequency_penalty=frequency_penalty,
        presence_penalty=presence_penalty, seed=seed, offset=offset, output_ids=output_ids,
        output_offsets=output_offsets, prompt_ids=prompt_ids, prompt_offsets=prompt_offsets,
        logit_bias=logit_bias, bias_offsets=bias_offsets, bias_ids=bias_ids,
        bias_values=bias_values, allowed_mask=allowed_mask)

    out = _ffi.dsk_sampling_outputs()
    _check(_lib.dsk_sampling_outputs_init(byref(out)))
    out.top_source = _top_source(top_source)
    ids_t = empty([batch], "int32", cx) if ids is None else _output(ids, [batch], "int32", cx)
    lp_t = _output(logprobs, [batch], "f32", cx) if _want(logprobs) else None
    raw_t = _output(raw_logprobs, [batch], "f32", cx) if _want(raw_logprobs) else None
    st_t = _output(status, [batch], "uint8", cx) if _want(status) else None
    top_ids_t = top_lp_t = None
    if isinstance(top_logprobs, (tuple, list)):
        if len(top_logprobs) != 2:
            raise _sampling_invalid(
                "top_logprobs: expected n or an (ids, logprobs) pair of tensors")
        top_ids_t = _output(top_logprobs[0], [], "int32", cx)
        top_lp_t = _output(top_logprobs[1], [], "f32", cx)
    elif top_logprobs:
        n = int(top_logprobs)
        top_ids_t, top_lp_t = empty([batch, n], "int32", cx), empty([batch, n], "f32", cx)
    args = _Borrowed(ids_t, lp_t, top_ids_t, top_lp_t, raw_t, st_t)
    out.ids, out.logprobs, out.top_ids, out.top_logprobs, out.raw_logprobs, out.status = args.ptrs
    lp_ptr, _k = _borrow(lt)
    _check(_lib.dsk_sample(cx.handle, byref(raw), lp_ptr, byref(out)))
    del keep
    if lp_t is None and top_ids_t is None and raw_t is None and st_t is None:
        return ids_t
    return SampleResult(ids_t, lp_t, top_ids_t, top_lp_t, raw_t, st_t)


def sampling_logits(ctx: Optional[Context], logits: TensorLike, out: Optional[TensorLike] = None,
                    *, dtype: DType = "f32", status: Any = False,
                    **params: Any) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """The processed logits after the filters (dsk_sampling_logits): out [B, V] (allocated with
    ``dtype`` f32/f16/bf16 unless given) holds z_j for kept tokens and -inf for the others; rows
    that are not SAMPLE_OK are all NaN. ``params`` are sample()'s parameters (seed and offset are
    not used). Returns out, or (out, status) when status is True or a [B] uint8 tensor."""
    cx = _ctx_or_default(ctx)
    lt = _logits_operand(logits)
    batch, vocab = _rows_and_vocab(lt)
    raw, keep = _sampling_params(cx, batch, vocab, **params)
    out_t = empty(lt.shape, dtype, cx) if out is None else _output(out, [], "f32", cx)
    st_t = _output(status, [batch], "uint8", cx) if _want(status) else None
    args = _Borrowed(lt, out_t, st_t)
    _check(_lib.dsk_sampling_logits(cx.handle, byref(raw), *args.ptrs))
    del keep
    return out_t if st_t is None else (out_t, st_t)


def sampling_probs(ctx: Optional[Context], logits: TensorLike, probs: Optional[TensorLike] = None,
                   *, status: Any = False, **params: Any) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """The processed distribution (dsk_sampling_probs): probs [B, V] f32 (allocated unless given),
    0 for removed tokens, rows that are not SAMPLE_OK all NaN. ``params`` are sample()'s
    parameters (seed and offset are not used). Returns probs, or (probs, status) when status is
    True or a [B] uint8 tensor."""
    cx = _ctx_or_default(ctx)
    lt = _logits_operand(logits)
    batch, vocab = _rows_and_vocab(lt)
    raw, keep = _sampling_params(cx, batch, vocab, **params)
    pr_t = empty(lt.shape, "f32", cx) if probs is None else _output(probs, [], "f32", cx)
    st_t = _output(status, [batch], "uint8", cx) if _want(status) else None
    args = _Borrowed(lt, pr_t, st_t)
    _check(_lib.dsk_sampling_probs(cx.handle, byref(raw), *args.ptrs))
    del keep
    return pr_t if st_t is None else (pr_t, st_t)


def _verify_mode(mode: Union[str, int]) -> int:
    if isinstance(mode, int):
        return mode
    table = {"sample": VERIFY_SAMPLE, "greedy": VERIFY_GREEDY}
    try:
        return table[mode.lower()]
    except (KeyError, AttributeError):
        raise _sampling_invalid(
            f"speculative_verify: unknown mode {mode!r}; expected 'sample' or 'greedy'") from None


def speculative_verify(ctx: Optional[Context], draft_ids: Any, target: TensorLike,
                       draft_probs: Optional[TensorLike] = None, *,
                       mode: Union[str, int] = "sample", seed: Any = 0, offset: Any = 0,
                       out_ids: Optional[TensorLike] = None,
                       accepted: Optional[TensorLike] = None,
                       emitted: Any = False) -> VerifyResult:
    """Chain verification of n draft tokens per row (dsk_speculative_verify), for MTP and draft
    models: draft_ids [B, n] (int32/int64 or lists; -1 ends a row's chain), target [B, n + 1, V]
    probabilities (logits suffice for mode "greedy"), draft_probs [B, n, V] or None (a
    deterministic draft such as greedy MTP).

    mode "sample": accept t_i when u_i * q_i(t_i) < p_i(t_i), resample from max(p_i - q_i, 0) at
    the first rejection, else a bonus token from p_i; the tokens are distributed as if sampled
    from the target one by one. mode "greedy": accept while t_i is target row i's argmax. seed and
    offset are scalars or per-row [B]; draft position i draws at offset + i, so advance offset
    by n + 1 after the step (as sample() advances it by one per token).

    Returns VerifyResult(out_ids [B, n + 1] int32: the accepted drafts, the emitted token, then
    -1; accepted [B] int32; emitted [B] int32 = accepted + 1, or None unless asked for).
    """
    cx = _ctx_or_default(ctx)
    drafts = _index_operand(draft_ids, cx)
    shape = drafts.shape
    batch = shape[0] if shape else 0
    n = shape[1] if len(shape) > 1 else 0
    raw = _ffi.dsk_verify_params()
    _check(_lib.dsk_verify_params_init(byref(raw)))
    raw.mode = _verify_mode(mode)
    keep: List[Any] = []
    for name, per_row, v in (("seed", "seeds", seed), ("offset", "offsets", offset)):
        if _is_scalar(v):
            setattr(raw, name, int(_scalar_value(v)) & _U64)
        else:
            p, k = _borrow(_seed_operand(v, cx))
            keep.append(k)
            setattr(raw, per_row, p)
    out_t = (empty([batch, n + 1], "int32", cx) if out_ids is None
             else _output(out_ids, [], "int32", cx))
    acc_t = empty([batch], "int32", cx) if accepted is None else _output(accepted, [], "int32", cx)
    em_t = _output(emitted, [batch], "int32", cx) if _want(emitted) else None
    args = _Borrowed(drafts, draft_probs, target, out_t, acc_t, em_t)
    _check(_lib.dsk_speculative_verify(cx.handle, byref(raw), *args.ptrs))
    del keep
    return VerifyResult(out_t, acc_t, em_t)


# Which Python-level entry point covers each C function (checked by test_api_coverage).
WRAPPERS: Dict[str, Callable[..., Any]] = {
    "dsk_version_number": version_number,
    "dsk_version_string": version_string,
    "dsk_abi_version": abi_version,
    "dsk_status_string": status_string,
    "dsk_last_error_message": last_error_message,
    "dsk_log_set": set_log_handler,
    "dsk_dtype_from_id": dtype_from_id,
    "dsk_dtype_to_id": dtype_id,
    "dsk_dtype_size": dtype_size,
    "dsk_dtype_name": dtype_name,
    "dsk_convert_host": convert_host,
    "dsk_backend_info_init": backend_info,
    "dsk_device_props_init": device_props,
    "dsk_backend_get_info": backend_info,
    "dsk_device_count": device_count,
    "dsk_device_get_props": device_props,
    "dsk_backend_default": default_backend,
    "dsk_context_options_init": Context,
    "dsk_context_create": Context,
    "dsk_context_destroy": Context.close,
    "dsk_context_get_backend": Context.backend.fget,  # type: ignore[attr-defined]
    "dsk_context_get_device": Context.device.fget,  # type: ignore[attr-defined]
    "dsk_context_set_stream": Context.stream.fset,  # type: ignore[attr-defined]
    "dsk_context_get_stream": Context.stream.fget,  # type: ignore[attr-defined]
    "dsk_context_synchronize": Context.synchronize,
    "dsk_context_set_workspace": Context.set_workspace,
    "dsk_context_reserve_workspace": Context.reserve_workspace,
    "dsk_context_get_workspace_size": Context.workspace_size.fget,  # type: ignore[attr-defined]
    "dsk_tensor_create": empty,
    "dsk_tensor_retain": Tensor.retain,
    "dsk_tensor_release": Tensor.close,
    "dsk_tensor_dltensor": _borrow,
    "dsk_tensor_numel": Tensor.numel.fget,  # type: ignore[attr-defined]
    "dsk_tensor_nbytes": Tensor.nbytes.fget,  # type: ignore[attr-defined]
    "dsk_tensor_is_contiguous": Tensor.is_contiguous.fget,  # type: ignore[attr-defined]
    "dsk_tensor_is_read_only": Tensor.is_read_only.fget,  # type: ignore[attr-defined]
    "dsk_tensor_view": Tensor.view,
    "dsk_copy": copy,
    "dsk_tensor_clone": clone,
    "dsk_fill": fill,
    "dsk_random_params_init": fill_random,
    "dsk_fill_random": fill_random,
    "dsk_tensor_to_dlpack_versioned": Tensor.__dlpack__,
    "dsk_tensor_to_dlpack": Tensor.__dlpack__,
    "dsk_tensor_from_dlpack_versioned": from_dlpack,
    "dsk_tensor_from_dlpack": from_dlpack,
    "dsk_dltensor_validate": validate,
    "dsk_gemm": gemm,
    "dsk_linear": linear,
    "dsk_quant_fp8_act": quant_fp8_act,
    "dsk_dequant_fp8_act": dequant_fp8_act,
    "dsk_quant_fp8_weight": quant_fp8_weight,
    "dsk_dequant_fp8_weight": dequant_fp8_weight,
    "dsk_linear_fp8": linear_fp8,
    "dsk_linear_fp8_kernel": linear_fp8_kernel,
    "dsk_rmsnorm": rmsnorm,
    "dsk_add_rmsnorm": add_rmsnorm,
    "dsk_swiglu": swiglu,
    "dsk_swiglu_fused": swiglu_fused,
    "dsk_rope_config_init": RopeConfig.deepseek_v3,
    "dsk_rope_table": rope_table,
    "dsk_rope_apply": rope_apply,
    "dsk_softmax": softmax,
    "dsk_log_softmax": log_softmax,
    "dsk_argmax": argmax,
    "dsk_topk": topk,
    "dsk_embedding": embedding,
    "dsk_mla_softmax_scale": mla_softmax_scale,
    "dsk_mla_decode_plan_create": MlaDecodePlan,
    "dsk_mla_decode_plan_release": MlaDecodePlan.close,
    "dsk_mla_decode_plan_workspace_size": MlaDecodePlan.workspace_size.fget,  # type: ignore[attr-defined]
    "dsk_mla_decode_plan_num_splits": MlaDecodePlan.num_splits.fget,  # type: ignore[attr-defined]
    "dsk_mla_decode_run": mla_decode_run,
    "dsk_mla_decode": mla_decode,
    "dsk_mla_cache_append": mla_cache_append,
    "dsk_mla_absorb_q": mla_absorb_q,
    "dsk_mla_absorb_out": mla_absorb_out,
    "dsk_mla_decompress_kv": mla_decompress_kv,
    "dsk_mla_prefill": mla_prefill,
    "dsk_moe_gate_config_init": MoeGateConfig.deepseek_v3,
    "dsk_moe_gate": moe_gate,
    "dsk_moe_gate_router": moe_gate_router,
    "dsk_moe_dispatch": moe_dispatch,
    "dsk_moe_dispatch_capacity": moe_dispatch_capacity,
    "dsk_moe_permute": moe_permute,
    "dsk_moe_combine": moe_combine,
    "dsk_moe_expert_weights_init": MoeExpertWeights._raw,
    "dsk_moe_experts": moe_experts,
    "dsk_moe_plan_create": MoePlan,
    "dsk_moe_plan_release": MoePlan.close,
    "dsk_moe_plan_workspace_size": MoePlan.workspace_size.fget,  # type: ignore[attr-defined]
    "dsk_moe_forward_run": moe_forward_run,
    "dsk_moe_forward": moe_forward,
    "dsk_moe_load_accumulate": moe_load_accumulate,
    "dsk_moe_bias_update": moe_bias_update,
    "dsk_moe_ep_layout": moe_ep_layout,
    "dsk_sampling_params_init": _sampling_params,
    "dsk_sampling_outputs_init": sample,
    "dsk_sample": sample,
    "dsk_sampling_logits": sampling_logits,
    "dsk_sampling_probs": sampling_probs,
    "dsk_verify_params_init": speculative_verify,
    "dsk_speculative_verify": speculative_verify,
}
