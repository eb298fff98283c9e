"""dsk: Python bindings (pure ctypes) over libdsk's C ABI.

libdsk is found, in order, at $DSK_LIBRARY (a path; nothing else is tried when it is set), next to
this package (dsk/lib/libdsk.so, the wheel layout), through ctypes.util.find_library("dsk"), and as
"libdsk.so.1" on the loader's path. A library whose dsk_abi_version() is not this package's ABI
version is refused with VersionMismatchError at import.

Tensors: every function taking tensors accepts a dsk.Tensor or any object implementing
__dlpack__ (NumPy, PyTorch, CuPy, ...), imported zero-copy. Dtypes are named "f32", "f16", "bf16",
"fp8_e4m3fn", "fp8_e5m2", "int32", "int64", "uint8", "bool".
"""

from ._errors import (
    BackendUnavailableError,
    DeviceError,
    Error,
    InternalError,
    InvalidArgumentError,
    OutOfMemoryError,
    UnsupportedError,
    VersionMismatchError,
)
from ._ffi import DSK_ABI_VERSION as ABI_VERSION
from ._api import (
    DTYPE_NAMES,
    BackendInfo,
    Context,
    Device,
    DeviceProps,
    Tensor,
    abi_version,
    asarray,
    backend_info,
    backends,
    clone,
    convert_host,
    convert_host_bytes,
    copy,
    default_backend,
    device_count,
    device_props,
    devices,
    dtype_from_id,
    dtype_id,
    dtype_name,
    dtype_size,
    empty,
    fill,
    fill_random,
    from_dlpack,
    last_error_message,
    set_log_handler,
    status_string,
    validate,
    version_number,
    version_string,
)

__version__ = "0.1.0"

__all__ = [
    "ABI_VERSION", "BackendInfo", "BackendUnavailableError", "Context", "DTYPE_NAMES", "Device",
    "DeviceError", "DeviceProps", "Error", "InternalError", "InvalidArgumentError",
    "OutOfMemoryError", "Tensor", "UnsupportedError", "VersionMismatchError", "abi_version",
    "asarray", "backend_info", "backends", "clone", "convert_host", "convert_host_bytes", "copy",
    "default_backend", "device_count", "device_props", "devices", "dtype_from_id", "dtype_id",
    "dtype_name", "dtype_size", "empty", "fill", "fill_random", "from_dlpack",
    "last_error_message", "set_log_handler", "status_string", "validate", "version_number",
    "version_string",
]
