"""ctypes mirror of include/dsk/*.h: constants, structs, and the table of every C function.

The tests compare the constants and struct layouts below with the manifest the C build generates
(capi/abi/layout.txt) and the function table with the DSK_API declarations of the headers, so a
header change that is not mirrored here fails the suite instead of corrupting memory at run time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char,
    c_char_p,
    c_double,
    c_float,
    c_int32,
    c_int64,
    c_size_t,
    c_uint8,
    c_uint16,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ._errors import UnsupportedError, VersionMismatchError

# --- constants (dsk_version.h, dsk_status.h, dsk_dtype.h, dsk_backend.h, dsk_tensor.h, dsk_ops.h,
# dsk_moe.h, dsk_sampling.h, dsk_safetensors.h, dsk_dlpack.h; dsk_mla.h declares none)

DSK_VERSION_MAJOR = 0
DSK_VERSION_MINOR = 1
DSK_VERSION_PATCH = 0
DSK_VERSION_NUMBER = 100
DSK_VERSION_STRING = "0.1.0"
# The ABI this package was written against; a library reporting another one is refused.
DSK_ABI_VERSION = 1

DSK_OK = 0
DSK_ERR_INVALID_ARGUMENT = 1
DSK_ERR_UNSUPPORTED = 2
DSK_ERR_OUT_OF_MEMORY = 3
DSK_ERR_BACKEND_UNAVAILABLE = 4
DSK_ERR_DEVICE_ERROR = 5
DSK_ERR_VERSION_MISMATCH = 6
DSK_ERR_INTERNAL = 7
DSK_ERR_IO = 8
DSK_ERR_NOT_FOUND = 9

DSK_LOG_ERROR = 1
DSK_LOG_WARN = 2
DSK_LOG_INFO = 3
DSK_LOG_DEBUG = 4

DSK_DTYPE_F32 = 1
DSK_DTYPE_F16 = 2
DSK_DTYPE_BF16 = 3
DSK_DTYPE_FP8_E4M3FN = 4
DSK_DTYPE_FP8_E5M2 = 5
DSK_DTYPE_INT32 = 6
DSK_DTYPE_INT64 = 7
DSK_DTYPE_UINT8 = 8
DSK_DTYPE_BOOL = 9
DSK_DTYPE_COUNT = 10

DSK_BACKEND_AUTO = 0
DSK_BACKEND_CPU = 1
DSK_BACKEND_CUDA = 2
DSK_BACKEND_COUNT = 3

DSK_MAX_NDIM = 8
DSK_RANDOM_UNIFORM = 1
DSK_RANDOM_NORMAL = 2

DSK_FP8_BLOCK = 128
DSK_QUANT_SCALE_POW2 = 1
DSK_FP8_KERNEL_CPU_REFERENCE = 1
DSK_FP8_KERNEL_BLOCK_SCALED = 2
DSK_FP8_KERNEL_DEQUANT_GEMM = 3
DSK_ROPE_INTERLEAVED = 0
DSK_ROPE_HALF_SPLIT = 1

DSK_MOE_SCORE_SOFTMAX = 0
DSK_MOE_SCORE_SIGMOID = 1
DSK_MOE_SCORE_NONE = 2
DSK_MOE_GROUP_AUTO = 0
DSK_MOE_GROUP_MAX = 1
DSK_MOE_GROUP_TOP2SUM = 2
DSK_MOE_ROW_NO_FINITE = 1
DSK_MOE_ROW_SHORT = 2

DSK_SAMPLE_OK = 0
DSK_SAMPLE_ALL_MASKED = 1
DSK_SAMPLE_NONFINITE = 2
DSK_SAMPLE_INVALID = 3
DSK_LOGPROBS_PROCESSED = 0
DSK_LOGPROBS_RAW = 1
DSK_SAMPLE_MAX_TOP_LOGPROBS = 64
DSK_VERIFY_SAMPLE = 0
DSK_VERIFY_GREEDY = 1

DSK_SAFETENSORS_MAX_HEADER_BYTES = 100000000

DLPACK_MAJOR_VERSION = 1
DLPACK_MINOR_VERSION = 1
DLPACK_FLAG_BITMASK_READ_ONLY = 1
DLPACK_FLAG_BITMASK_IS_COPIED = 2
DLPACK_FLAG_BITMASK_IS_SUBBYTE_TYPE_PADDED = 4

kDLCPU = 1
kDLCUDA = 2
kDLCUDAHost = 3
kDLOpenCL = 4
kDLVulkan = 7
kDLMetal = 8
kDLVPI = 9
kDLROCM = 10
kDLROCMHost = 11
kDLExtDev = 12
kDLCUDAManaged = 13
kDLOneAPI = 14
kDLWebGPU = 15
kDLHexagon = 16
kDLMAIA = 17
kDLTrn = 18

kDLInt = 0
kDLUInt = 1
kDLFloat = 2
kDLOpaqueHandle = 3
kDLBfloat = 4
kDLComplex = 5
kDLBool = 6
kDLFloat8_e3m4 = 7
kDLFloat8_e4m3 = 8
kDLFloat8_e4m3b11fnuz = 9
kDLFloat8_e4m3fn = 10
kDLFloat8_e4m3fnuz = 11
kDLFloat8_e5m2 = 12
kDLFloat8_e5m2fnuz = 13
kDLFloat8_e8m0fnu = 14
kDLFloat6_e2m3fn = 15
kDLFloat6_e3m2fn = 16
kDLFloat4_e2m1fn = 17

# C enums whose size is part of the ABI (stored in structs). The headers give them int32_t.
DLDeviceType = c_int32
DLDataTypeCode = c_int32
dsk_status = c_int32

# --- structs


class DLPackVersion(Structure):
    _fields_ = [("major", c_uint32), ("minor", c_uint32)]


class DLDevice(Structure):
    _fields_ = [("device_type", DLDeviceType), ("device_id", c_int32)]


class DLDataType(Structure):
    _fields_ = [("code", c_uint8), ("bits", c_uint8), ("lanes", c_uint16)]

    def as_tuple(self) -> Tuple[int, int, int]:
        return (self.code, self.bits, self.lanes)


class DLTensor(Structure):
    _fields_ = [
        ("data", c_void_p),
        ("device", DLDevice),
        ("ndim", c_int32),
        ("dtype", DLDataType),
        ("shape", POINTER(c_int64)),
        ("strides", POINTER(c_int64)),
        ("byte_offset", c_uint64),
    ]


class DLManagedTensor(Structure):
    pass


DLManagedTensorDeleter = CFUNCTYPE(None, POINTER(DLManagedTensor))
DLManagedTensor._fields_ = [
    ("dl_tensor", DLTensor),
    ("manager_ctx", c_void_p),
    ("deleter", DLManagedTensorDeleter),
]


class DLManagedTensorVersioned(Structure):
    pass


DLManagedTensorVersionedDeleter = CFUNCTYPE(None, POINTER(DLManagedTensorVersioned))
DLManagedTensorVersioned._fields_ = [
    ("version", DLPackVersion),
    ("manager_ctx", c_void_p),
    ("deleter", DLManagedTensorVersionedDeleter),
    ("flags", c_uint64),
    ("dl_tensor", DLTensor),
]


class dsk_backend_info(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("backend", c_int32),
        ("available", c_int32),
        ("score", c_int32),
        ("device_count", c_int32),
        ("reserved", c_int32),
        ("name", c_char * 32),
        ("reason", c_char * 256),
    ]


class dsk_device_props(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("backend", c_int32),
        ("device_id", c_int32),
        ("compute_capability_major", c_int32),
        ("compute_capability_minor", c_int32),
        ("multiprocessor_count", c_int32),
        ("memory_bus_width_bits", c_int32),
        ("memory_clock_khz", c_int32),
        ("total_memory_bytes", c_uint64),
        ("memory_bandwidth_gbps", c_double),
        ("name", c_char * 256),
    ]


dsk_alloc_fn = CFUNCTYPE(c_void_p, c_void_p, c_size_t, c_size_t, DLDevice, c_void_p)
dsk_free_fn = CFUNCTYPE(None, c_void_p, c_void_p, c_size_t, DLDevice, c_void_p)


class dsk_allocator(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("reserved", c_uint32),
        ("user", c_void_p),
        ("alloc", dsk_alloc_fn),
        ("free", dsk_free_fn),
    ]


class dsk_context_options(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("backend", c_int32),
        ("device_id", c_int32),
        ("reserved", c_int32),
        ("stream", c_void_p),
        ("allocator", POINTER(dsk_allocator)),
    ]


class dsk_random_params(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("distribution", c_int32),
        ("seed", c_uint64),
        ("offset", c_uint64),
        ("a", c_double),
        ("b", c_double),
    ]


class dsk_rope_config(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("dim", c_int32),
        ("theta", c_double),
        ("factor", c_double),
        ("original_seq_len", c_int64),
        ("beta_fast", c_double),
        ("beta_slow", c_double),
        ("mscale", c_double),
        ("mscale_all_dim", c_double),
    ]


class dsk_moe_gate_config(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("num_experts", c_int32),
        ("top_k", c_int32),
        ("n_group", c_int32),
        ("topk_group", c_int32),
        ("score_func", c_int32),
        ("group_rule", c_int32),
        ("renormalize", c_int32),
        ("routed_scaling_factor", c_float),
        ("score_dtype", c_int32),
    ]


class dsk_moe_expert_weights(Structure):
    # Borrowed tensors; None = NULL.
    _fields_ = [
        ("struct_size", c_uint32),
        ("w1", POINTER(DLTensor)),
        ("w3", POINTER(DLTensor)),
        ("w2", POINTER(DLTensor)),
        ("w1_scales", POINTER(DLTensor)),
        ("w3_scales", POINTER(DLTensor)),
        ("w2_scales", POINTER(DLTensor)),
    ]


class dsk_sampling_params(Structure):
    # Per-row tensors and token lists are borrowed; None = NULL (the scalar applies).
    _fields_ = [
        ("struct_size", c_uint32),
        ("temperature", c_float),
        ("top_k", c_int32),
        ("top_p", c_float),
        ("min_p", c_float),
        ("repetition_penalty", c_float),
        ("frequency_penalty", c_float),
        ("presence_penalty", c_float),
        ("seed", c_uint64),
        ("offset", c_uint64),
        ("temperatures", POINTER(DLTensor)),
        ("top_ks", POINTER(DLTensor)),
        ("top_ps", POINTER(DLTensor)),
        ("min_ps", POINTER(DLTensor)),
        ("repetition_penalties", POINTER(DLTensor)),
        ("frequency_penalties", POINTER(DLTensor)),
        ("presence_penalties", POINTER(DLTensor)),
        ("seeds", POINTER(DLTensor)),
        ("offsets", POINTER(DLTensor)),
        ("output_offsets", POINTER(DLTensor)),
        ("output_ids", POINTER(DLTensor)),
        ("prompt_offsets", POINTER(DLTensor)),
        ("prompt_ids", POINTER(DLTensor)),
        ("bias_offsets", POINTER(DLTensor)),
        ("bias_ids", POINTER(DLTensor)),
        ("bias_values", POINTER(DLTensor)),
        ("allowed_mask", POINTER(DLTensor)),
    ]


class dsk_sampling_outputs(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("top_source", c_int32),
        ("ids", POINTER(DLTensor)),
        ("logprobs", POINTER(DLTensor)),
        ("top_ids", POINTER(DLTensor)),
        ("top_logprobs", POINTER(DLTensor)),
        ("raw_logprobs", POINTER(DLTensor)),
        ("status", POINTER(DLTensor)),
    ]


class dsk_verify_params(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("mode", c_int32),
        ("seed", c_uint64),
        ("offset", c_uint64),
        ("seeds", POINTER(DLTensor)),
        ("offsets", POINTER(DLTensor)),
    ]


class dsk_safetensors_info(Structure):
    # Every pointer is owned by the dsk_safetensors handle.
    _fields_ = [
        ("struct_size", c_uint32),
        ("ndim", c_int32),
        ("dtype_id", c_int32),
        ("reserved", c_int32),
        ("name", c_char_p),
        ("dtype", c_char_p),
        ("shape", POINTER(c_int64)),
        ("file", c_char_p),
        ("file_offset", c_uint64),
        ("nbytes", c_uint64),
    ]


# Name in the headers/manifest -> ctypes type, for the layout test.
STRUCTS = {
    "dsk_backend_info": dsk_backend_info,
    "dsk_device_props": dsk_device_props,
    "dsk_allocator": dsk_allocator,
    "dsk_context_options": dsk_context_options,
    "dsk_random_params": dsk_random_params,
    "dsk_rope_config": dsk_rope_config,
    "dsk_moe_gate_config": dsk_moe_gate_config,
    "dsk_moe_expert_weights": dsk_moe_expert_weights,
    "dsk_sampling_params": dsk_sampling_params,
    "dsk_sampling_outputs": dsk_sampling_outputs,
    "dsk_verify_params": dsk_verify_params,
    "dsk_safetensors_info": dsk_safetensors_info,
    "DLDeviceType": DLDeviceType,
    "DLDataTypeCode": DLDataTypeCode,
    "DLPackVersion": DLPackVersion,
    "DLDevice": DLDevice,
    "DLDataType": DLDataType,
    "DLTensor": DLTensor,
    "DLManagedTensor": DLManagedTensor,
    "DLManagedTensorVersioned": DLManagedTensorVersioned,
}

dsk_log_fn = CFUNCTYPE(None, c_int32, c_char_p, c_void_p)

# Opaque handles travel as void*: ctypes never dereferences them, and c_void_p keeps NULL as None.
_ctx = c_void_p
_tensor = c_void_p
_plan = c_void_p
_st = c_void_p
_P = POINTER

# Every DSK_API function: name -> (restype, argtypes). Test test_api_coverage checks it is complete.
FUNCTIONS: Dict[str, Tuple[object, List[object]]] = {
    # dsk_version.h
    "dsk_version_number": (c_uint32, []),
    "dsk_version_string": (c_char_p, []),
    "dsk_abi_version": (c_uint32, []),
    # dsk_status.h
    "dsk_status_string": (c_char_p, [dsk_status]),
    "dsk_last_error_message": (c_char_p, []),
    "dsk_log_set": (None, [dsk_log_fn, c_void_p, c_int32]),
    # dsk_dtype.h
    "dsk_dtype_from_id": (dsk_status, [c_int32, _P(DLDataType)]),
    "dsk_dtype_to_id": (dsk_status, [DLDataType, _P(c_int32)]),
    "dsk_dtype_size": (c_size_t, [DLDataType]),
    "dsk_dtype_name": (c_char_p, [DLDataType]),
    "dsk_convert_host": (dsk_status, [DLDataType, c_void_p, DLDataType, c_void_p, c_size_t]),
    # dsk_backend.h
    "dsk_backend_info_init": (dsk_status, [_P(dsk_backend_info)]),
    "dsk_device_props_init": (dsk_status, [_P(dsk_device_props)]),
    "dsk_backend_get_info": (dsk_status, [c_int32, _P(dsk_backend_info)]),
    "dsk_device_count": (c_int32, [c_int32]),
    "dsk_device_get_props": (dsk_status, [c_int32, c_int32, _P(dsk_device_props)]),
    "dsk_backend_default": (c_int32, []),
    # dsk_context.h
    "dsk_context_options_init": (dsk_status, [_P(dsk_context_options)]),
    "dsk_context_create": (dsk_status, [_P(dsk_context_options), _P(_ctx)]),
    "dsk_context_destroy": (None, [_ctx]),
    "dsk_context_get_backend": (dsk_status, [_ctx, _P(c_int32)]),
    "dsk_context_get_device": (dsk_status, [_ctx, _P(DLDevice)]),
    "dsk_context_set_stream": (dsk_status, [_ctx, c_void_p]),
    "dsk_context_get_stream": (dsk_status, [_ctx, _P(c_void_p)]),
    "dsk_context_synchronize": (dsk_status, [_ctx]),
    "dsk_context_set_workspace": (dsk_status, [_ctx, c_void_p, c_size_t]),
    "dsk_context_reserve_workspace": (dsk_status, [_ctx, c_size_t]),
    "dsk_context_get_workspace_size": (dsk_status, [_ctx, _P(c_size_t)]),
    # dsk_tensor.h
    "dsk_tensor_create": (dsk_status, [_ctx, c_int32, _P(c_int64), DLDataType, _P(_tensor)]),
    "dsk_tensor_retain": (None, [_tensor]),
    "dsk_tensor_release": (None, [_tensor]),
    "dsk_tensor_dltensor": (_P(DLTensor), [_tensor]),
    "dsk_tensor_numel": (c_int64, [_tensor]),
    "dsk_tensor_nbytes": (c_int64, [_tensor]),
    "dsk_tensor_is_contiguous": (c_int32, [_tensor]),
    "dsk_tensor_is_read_only": (c_int32, [_tensor]),
    "dsk_tensor_view": (
        dsk_status,
        [_tensor, c_int32, _P(c_int64), _P(c_int64), c_int64, _P(_tensor)],
    ),
    "dsk_copy": (dsk_status, [_ctx, _P(DLTensor), _P(DLTensor)]),
    "dsk_tensor_clone": (dsk_status, [_ctx, _P(DLTensor), DLDataType, _P(_tensor)]),
    "dsk_fill": (dsk_status, [_ctx, _P(DLTensor), c_double]),
    "dsk_random_params_init": (dsk_status, [_P(dsk_random_params)]),
    "dsk_fill_random": (dsk_status, [_ctx, _P(DLTensor), _P(dsk_random_params)]),
    "dsk_tensor_to_dlpack_versioned": (
        dsk_status,
        [_tensor, _P(_P(DLManagedTensorVersioned))],
    ),
    "dsk_tensor_to_dlpack": (dsk_status, [_tensor, _P(_P(DLManagedTensor))]),
    # The managed tensors come out of PyCapsule_GetPointer as plain addresses.
    "dsk_tensor_from_dlpack_versioned": (dsk_status, [c_void_p, _P(_tensor)]),
    "dsk_tensor_from_dlpack": (dsk_status, [c_void_p, _P(_tensor)]),
    "dsk_dltensor_validate": (dsk_status, [_P(DLTensor), c_char_p]),
    # dsk_ops.h (optional tensors are NULL = None)
    "dsk_gemm": (
        dsk_status,
        [_ctx, _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor), c_int32, c_int32, c_float,
         c_float],
    ),
    "dsk_linear": (dsk_status, [_ctx, _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor)]),
    "dsk_quant_fp8_act": (
        dsk_status, [_ctx, _P(DLTensor), _P(DLTensor), _P(DLTensor), c_uint32]),
    "dsk_dequant_fp8_act": (dsk_status, [_ctx, _P(DLTensor), _P(DLTensor), _P(DLTensor)]),
    "dsk_quant_fp8_weight": (
        dsk_status, [_ctx, _P(DLTensor), _P(DLTensor), _P(DLTensor), c_uint32]),
    "dsk_dequant_fp8_weight": (dsk_status, [_ctx, _P(DLTensor), _P(DLTensor), _P(DLTensor)]),
    "dsk_linear_fp8": (
        dsk_status,
        [_ctx, _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor), c_uint32],
    ),
    "dsk_linear_fp8_kernel": (dsk_status, [_ctx, _P(c_int32)]),
    "dsk_rmsnorm": (dsk_status, [_ctx, _P(DLTensor), _P(DLTensor), _P(DLTensor), c_float]),
    "dsk_add_rmsnorm": (
        dsk_status,
        [_ctx, _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor), c_float],
    ),
    "dsk_swiglu": (dsk_status, [_ctx, _P(DLTensor), _P(DLTensor), _P(DLTensor)]),
    "dsk_swiglu_fused": (dsk_status, [_ctx, _P(DLTensor), _P(DLTensor)]),
    "dsk_rope_config_init": (dsk_status, [_P(dsk_rope_config)]),
    "dsk_rope_table": (dsk_status, [_ctx, _P(dsk_rope_config), _P(DLTensor), _P(DLTensor)]),
    "dsk_rope_apply": (
        dsk_status,
        [_ctx, _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor), c_int32],
    ),
    "dsk_softmax": (dsk_status, [_ctx, _P(DLTensor), _P(DLTensor), c_float]),
    "dsk_log_softmax": (dsk_status, [_ctx, _P(DLTensor), _P(DLTensor), c_float]),
    "dsk_argmax": (dsk_status, [_ctx, _P(DLTensor), _P(DLTensor)]),
    "dsk_topk": (dsk_status, [_ctx, _P(DLTensor), c_int32, _P(DLTensor), _P(DLTensor)]),
    "dsk_embedding": (dsk_status, [_ctx, _P(DLTensor), _P(DLTensor), _P(DLTensor)]),
    # dsk_mla.h (the decode plan is an opaque handle; optional tensors are NULL = None)
    "dsk_mla_softmax_scale": (dsk_status, [c_int64, c_double, c_double, c_int32, _P(c_float)]),
    "dsk_mla_decode_plan_create": (
        dsk_status,
        [_ctx, _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(_plan)],
    ),
    "dsk_mla_decode_plan_release": (None, [_plan]),
    "dsk_mla_decode_plan_workspace_size": (dsk_status, [_plan, _P(c_size_t)]),
    "dsk_mla_decode_plan_num_splits": (dsk_status, [_plan, _P(c_int32)]),
    "dsk_mla_decode_run": (
        dsk_status,
        [_ctx, _plan, _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor), c_float, c_int32,
         _P(DLTensor), _P(DLTensor)],
    ),
    "dsk_mla_decode": (
        dsk_status,
        [_ctx, _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor), c_float, c_int32,
         _P(DLTensor), _P(DLTensor)],
    ),
    "dsk_mla_cache_append": (
        dsk_status, [_ctx, _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor)]),
    "dsk_mla_absorb_q": (
        dsk_status, [_ctx, _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor)]),
    "dsk_mla_absorb_out": (
        dsk_status, [_ctx, _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor)]),
    "dsk_mla_decompress_kv": (
        dsk_status,
        [_ctx, _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor)],
    ),
    "dsk_mla_prefill": (
        dsk_status,
        [_ctx, _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor), c_float,
         c_int32, _P(DLTensor), _P(DLTensor)],
    ),
    # dsk_moe.h (the layer plan is an opaque handle; optional tensors and shared weights are NULL)
    "dsk_moe_gate_config_init": (dsk_status, [_P(dsk_moe_gate_config)]),
    "dsk_moe_gate": (
        dsk_status,
        [_ctx, _P(dsk_moe_gate_config), _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor),
         _P(DLTensor)],
    ),
    "dsk_moe_gate_router": (
        dsk_status,
        [_ctx, _P(dsk_moe_gate_config), _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor),
         _P(DLTensor), _P(DLTensor)],
    ),
    "dsk_moe_dispatch": (
        dsk_status,
        [_ctx, _P(DLTensor), c_int32, c_int32, c_int32, _P(DLTensor), _P(DLTensor), _P(DLTensor),
         _P(DLTensor), _P(DLTensor)],
    ),
    "dsk_moe_dispatch_capacity": (dsk_status, [c_int64, c_int32, c_int32, c_int32, _P(c_int64)]),
    "dsk_moe_permute": (
        dsk_status,
        [_ctx, _P(DLTensor), _P(DLTensor), c_int32, _P(DLTensor), _P(DLTensor), c_uint32],
    ),
    "dsk_moe_combine": (
        dsk_status,
        [_ctx, _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor)],
    ),
    "dsk_moe_expert_weights_init": (dsk_status, [_P(dsk_moe_expert_weights)]),
    "dsk_moe_experts": (
        dsk_status,
        [_ctx, _P(dsk_moe_expert_weights), _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor)],
    ),
    "dsk_moe_plan_create": (
        dsk_status,
        [_ctx, _P(dsk_moe_gate_config), _P(DLTensor), _P(DLTensor), _P(dsk_moe_expert_weights),
         _P(dsk_moe_expert_weights), _P(DLTensor), _P(_plan)],
    ),
    "dsk_moe_plan_release": (None, [_plan]),
    "dsk_moe_plan_workspace_size": (dsk_status, [_plan, _P(c_size_t)]),
    "dsk_moe_forward_run": (
        dsk_status,
        [_ctx, _plan, _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(dsk_moe_expert_weights),
         _P(dsk_moe_expert_weights), _P(DLTensor), _P(DLTensor), _P(DLTensor)],
    ),
    "dsk_moe_forward": (
        dsk_status,
        [_ctx, _P(dsk_moe_gate_config), _P(DLTensor), _P(DLTensor), _P(DLTensor),
         _P(dsk_moe_expert_weights), _P(dsk_moe_expert_weights), _P(DLTensor)],
    ),
    "dsk_moe_load_accumulate": (dsk_status, [_ctx, _P(DLTensor), c_int32, _P(DLTensor)]),
    "dsk_moe_bias_update": (dsk_status, [_ctx, _P(DLTensor), _P(DLTensor), c_float]),
    "dsk_moe_ep_layout": (
        dsk_status,
        [_ctx, _P(DLTensor), c_int32, c_int32, _P(DLTensor), _P(DLTensor), _P(DLTensor)],
    ),
    # dsk_sampling.h (optional tensors are NULL = None)
    "dsk_sampling_params_init": (dsk_status, [_P(dsk_sampling_params)]),
    "dsk_sampling_outputs_init": (dsk_status, [_P(dsk_sampling_outputs)]),
    "dsk_sample": (
        dsk_status,
        [_ctx, _P(dsk_sampling_params), _P(DLTensor), _P(dsk_sampling_outputs)],
    ),
    "dsk_sampling_logits": (
        dsk_status,
        [_ctx, _P(dsk_sampling_params), _P(DLTensor), _P(DLTensor), _P(DLTensor)],
    ),
    "dsk_sampling_probs": (
        dsk_status,
        [_ctx, _P(dsk_sampling_params), _P(DLTensor), _P(DLTensor), _P(DLTensor)],
    ),
    "dsk_verify_params_init": (dsk_status, [_P(dsk_verify_params)]),
    "dsk_speculative_verify": (
        dsk_status,
        [_ctx, _P(dsk_verify_params), _P(DLTensor), _P(DLTensor), _P(DLTensor), _P(DLTensor),
         _P(DLTensor), _P(DLTensor)],
    ),
    # dsk_safetensors.h (the checkpoint is an opaque handle)
    "dsk_safetensors_open": (dsk_status, [c_char_p, _P(_st)]),
    "dsk_safetensors_close": (None, [_st]),
    "dsk_safetensors_count": (dsk_status, [_st, _P(c_int64)]),
    "dsk_safetensors_name": (dsk_status, [_st, c_int64, _P(c_char_p)]),
    "dsk_safetensors_find": (dsk_status, [_st, c_char_p, _P(c_int64)]),
    "dsk_safetensors_tensor": (dsk_status, [_st, c_char_p, _P(DLTensor)]),
    "dsk_safetensors_info_init": (dsk_status, [_P(dsk_safetensors_info)]),
    "dsk_safetensors_tensor_info": (dsk_status, [_st, c_char_p, _P(dsk_safetensors_info)]),
    "dsk_safetensors_to_dlpack": (dsk_status, [_st, c_char_p, _P(_P(DLManagedTensorVersioned))]),
    "dsk_safetensors_metadata": (dsk_status, [_st, c_char_p, _P(c_char_p)]),
    "dsk_safetensors_metadata_count": (dsk_status, [_st, _P(c_int64)]),
    "dsk_safetensors_metadata_key": (dsk_status, [_st, c_int64, _P(c_char_p)]),
}


def _candidates() -> List[str]:
    out: List[str] = []
    env = os.environ.get("DSK_LIBRARY")
    if env:
        # An explicit choice is final: falling back silently would test the wrong library.
        return [env]
    here = Path(__file__).resolve().parent / "lib"
    for name in ("libdsk.so", "libdsk.so.1"):
        if (here / name).exists():
            out.append(str(here / name))
    found = ctypes.util.find_library("dsk")
    if found:
        out.append(found)
    out.append("libdsk.so.1")
    return out


def load_library(path: Optional[str] = None, expected_abi: int = DSK_ABI_VERSION) -> ctypes.CDLL:
    """Loads libdsk (``path`` or the search order of the package docstring) and declares FUNCTIONS.

    Raises OSError when no library loads and VersionMismatchError when its ABI is not ours. A
    function of FUNCTIONS the library does not export (an older libdsk of the same ABI) is listed
    in MISSING and raises UnsupportedError when called.
    """
    paths: Sequence[str] = [path] if path else _candidates()
    errors = []
    lib = None
    for p in paths:
        try:
            lib = ctypes.CDLL(p)
            break
        except OSError as e:
            errors.append(f"{p}: {e}")
    if lib is None:
        raise OSError(
            "dsk: cannot load libdsk (set DSK_LIBRARY to its path). Tried: " + "; ".join(errors)
        )
    # Check the ABI before declaring anything else: with another ABI even the signatures may lie.
    abi = lib.dsk_abi_version
    abi.restype, abi.argtypes = c_uint32, []
    got = abi()
    if got != expected_abi:
        raise VersionMismatchError(
            f"dsk: {lib._name} has ABI version {got}, but this Python package needs ABI version "
            f"{expected_abi}; install a matching libdsk or dsk package",
            6,
        )
    missing = []
    for name, (restype, argtypes) in FUNCTIONS.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            # A library of the same ABI that predates this function (functions are only ever
            # added within an ABI version): everything else still works, and calling this one
            # raises UnsupportedError. The test suite requires MISSING to be empty.
            missing.append(name)
            setattr(lib, name, _missing_function(name, lib._name))
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    MISSING[:] = missing
    return lib


# Names of FUNCTIONS the loaded library does not export (see load_library).
MISSING: List[str] = []


def _missing_function(name: str, path: str) -> object:
    def missing(*args: object) -> int:
        raise UnsupportedError(
            f"dsk: {path} does not export {name}: the library is older than this package; "
            f"install a matching libdsk", 2)

    missing.__name__ = name
    return missing


lib = load_library()
