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
    FP8_BLOCK,
    FP8_KERNEL_BLOCK_SCALED,
    FP8_KERNEL_CPU_REFERENCE,
    FP8_KERNEL_DEQUANT_GEMM,
    QUANT_SCALE_POW2,
    ROPE_HALF_SPLIT,
    ROPE_INTERLEAVED,
    BackendInfo,
    Context,
    Device,
    DeviceProps,
    RopeConfig,
    Tensor,
    abi_version,
    add_rmsnorm,
    argmax,
    asarray,
    backend_info,
    backends,
    clone,
    convert_host,
    convert_host_bytes,
    copy,
    default_backend,
    dequant_fp8_act,
    dequant_fp8_weight,
    device_count,
    device_props,
    devices,
    dtype_from_id,
    dtype_id,
    dtype_name,
    dtype_size,
    embedding,
    empty,
    fill,
    fill_random,
    from_dlpack,
    gemm,
    last_error_message,
    linear,
    linear_fp8,
    linear_fp8_kernel,
    log_softmax,
    quant_fp8_act,
    quant_fp8_weight,
    rmsnorm,
    rope_apply,
    rope_table,
    set_log_handler,
    softmax,
    status_string,
    swiglu,
    swiglu_fused,
    topk,
    validate,
    version_number,
    version_string,
)

__version__ = "0.1.0"

__all__ = [
    "ABI_VERSION", "BackendInfo", "BackendUnavailableError", "Context", "DTYPE_NAMES", "Device",
    "DeviceError", "DeviceProps", "Error", "FP8_BLOCK", "FP8_KERNEL_BLOCK_SCALED",
    "FP8_KERNEL_CPU_REFERENCE", "FP8_KERNEL_DEQUANT_GEMM", "InternalError",
    "InvalidArgumentError", "OutOfMemoryError", "QUANT_SCALE_POW2", "ROPE_HALF_SPLIT",
    "ROPE_INTERLEAVED", "RopeConfig", "Tensor", "UnsupportedError", "VersionMismatchError",
    "abi_version", "add_rmsnorm", "argmax", "asarray", "backend_info", "backends", "clone",
    "convert_host", "convert_host_bytes", "copy", "default_backend", "dequant_fp8_act",
    "dequant_fp8_weight", "device_count", "device_props", "devices", "dtype_from_id", "dtype_id",
    "dtype_name", "dtype_size", "embedding", "empty", "fill", "fill_random", "from_dlpack",
    "gemm", "last_error_message", "linear", "linear_fp8", "linear_fp8_kernel", "log_softmax",
    "quant_fp8_act", "quant_fp8_weight", "rmsnorm", "rope_apply", "rope_table",
    "set_log_handler", "softmax", "status_string", "swiglu", "swiglu_fused", "topk", "validate",
    "version_number", "version_string",
]
