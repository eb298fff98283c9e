/* layout_manifest - prints the memory layout of every public struct and enum and the value of every
 * public constant of the dsk headers, one fact per line (format: capi/abi/README.md).
 *
 * The output is committed as capi/abi/layout.txt. The capi.abi.layout test rebuilds it and
 * compares, so a layout or constant change cannot slip in unnoticed, and the Python and Rust
 * bindings, which mirror these declarations by hand, are tested against the committed file.
 * check_layout.py fails when a struct, field, enum or constant of the headers is missing here: add
 * new ones below. */
#include <dsk/dsk.h>
#include <stddef.h>
#include <stdio.h>

/* C11 _Alignof, the alignment a type gets inside a struct: what Rust's align_of and ctypes report
 * (GCC's __alignof__ differs for some types on 32-bit x86). */
#define TYPE(T)                                           \
  do {                                                    \
    printf("sizeof %s %zu\n", #T, (size_t)sizeof(T));     \
    printf("alignof %s %zu\n", #T, (size_t) _Alignof(T)); \
  } while (0)
#define FIELD(T, f) printf("offsetof %s.%s %zu\n", #T, #f, (size_t)offsetof(T, f))
/* Every integer constant fits in long long; printing them all one way keeps the file uniform. */
#define CONST(name) printf("const %s %lld\n", #name, (long long)(name))
#define STRING_CONST(name) printf("const %s \"%s\"\n", #name, name)

static void dsk_structs(void) {
  TYPE(dsk_backend_info);
  FIELD(dsk_backend_info, struct_size);
  FIELD(dsk_backend_info, backend);
  FIELD(dsk_backend_info, available);
  FIELD(dsk_backend_info, score);
  FIELD(dsk_backend_info, device_count);
  FIELD(dsk_backend_info, reserved);
  FIELD(dsk_backend_info, name);
  FIELD(dsk_backend_info, reason);

  TYPE(dsk_device_props);
  FIELD(dsk_device_props, struct_size);
  FIELD(dsk_device_props, backend);
  FIELD(dsk_device_props, device_id);
  FIELD(dsk_device_props, compute_capability_major);
  FIELD(dsk_device_props, compute_capability_minor);
  FIELD(dsk_device_props, multiprocessor_count);
  FIELD(dsk_device_props, memory_bus_width_bits);
  FIELD(dsk_device_props, memory_clock_khz);
  FIELD(dsk_device_props, total_memory_bytes);
  FIELD(dsk_device_props, memory_bandwidth_gbps);
  FIELD(dsk_device_props, name);

  TYPE(dsk_allocator);
  FIELD(dsk_allocator, struct_size);
  FIELD(dsk_allocator, reserved);
  FIELD(dsk_allocator, user);
  FIELD(dsk_allocator, alloc);
  FIELD(dsk_allocator, free);

  TYPE(dsk_context_options);
  FIELD(dsk_context_options, struct_size);
  FIELD(dsk_context_options, backend);
  FIELD(dsk_context_options, device_id);
  FIELD(dsk_context_options, reserved);
  FIELD(dsk_context_options, stream);
  FIELD(dsk_context_options, allocator);

  TYPE(dsk_random_params);
  FIELD(dsk_random_params, struct_size);
  FIELD(dsk_random_params, distribution);
  FIELD(dsk_random_params, seed);
  FIELD(dsk_random_params, offset);
  FIELD(dsk_random_params, a);
  FIELD(dsk_random_params, b);

  TYPE(dsk_rope_config);
  FIELD(dsk_rope_config, struct_size);
  FIELD(dsk_rope_config, dim);
  FIELD(dsk_rope_config, theta);
  FIELD(dsk_rope_config, factor);
  FIELD(dsk_rope_config, original_seq_len);
  FIELD(dsk_rope_config, beta_fast);
  FIELD(dsk_rope_config, beta_slow);
  FIELD(dsk_rope_config, mscale);
  FIELD(dsk_rope_config, mscale_all_dim);

  TYPE(dsk_moe_gate_config);
  FIELD(dsk_moe_gate_config, struct_size);
  FIELD(dsk_moe_gate_config, num_experts);
  FIELD(dsk_moe_gate_config, top_k);
  FIELD(dsk_moe_gate_config, n_group);
  FIELD(dsk_moe_gate_config, topk_group);
  FIELD(dsk_moe_gate_config, score_func);
  FIELD(dsk_moe_gate_config, group_rule);
  FIELD(dsk_moe_gate_config, renormalize);
  FIELD(dsk_moe_gate_config, routed_scaling_factor);
  FIELD(dsk_moe_gate_config, score_dtype);

  TYPE(dsk_moe_expert_weights);
  FIELD(dsk_moe_expert_weights, struct_size);
  FIELD(dsk_moe_expert_weights, w1);
  FIELD(dsk_moe_expert_weights, w3);
  FIELD(dsk_moe_expert_weights, w2);
  FIELD(dsk_moe_expert_weights, w1_scales);
  FIELD(dsk_moe_expert_weights, w3_scales);
  FIELD(dsk_moe_expert_weights, w2_scales);
  TYPE(dsk_sampling_params);
  FIELD(dsk_sampling_params, struct_size);
  FIELD(dsk_sampling_params, temperature);
  FIELD(dsk_sampling_params, top_k);
  FIELD(dsk_sampling_params, top_p);
  FIELD(dsk_sampling_params, min_p);
  FIELD(dsk_sampling_params, repetition_penalty);
  FIELD(dsk_sampling_params, frequency_penalty);
  FIELD(dsk_sampling_params, presence_penalty);
  FIELD(dsk_sampling_params, seed);
  FIELD(dsk_sampling_params, offset);
  FIELD(dsk_sampling_params, temperatures);
  FIELD(dsk_sampling_params, top_ks);
  FIELD(dsk_sampling_params, top_ps);
  FIELD(dsk_sampling_params, min_ps);
  FIELD(dsk_sampling_params, repetition_penalties);
  FIELD(dsk_sampling_params, frequency_penalties);
  FIELD(dsk_sampling_params, presence_penalties);
  FIELD(dsk_sampling_params, seeds);
  FIELD(dsk_sampling_params, offsets);
  FIELD(dsk_sampling_params, output_offsets);
  FIELD(dsk_sampling_params, output_ids);
  FIELD(dsk_sampling_params, prompt_offsets);
  FIELD(dsk_sampling_params, prompt_ids);
  FIELD(dsk_sampling_params, bias_offsets);
  FIELD(dsk_sampling_params, bias_ids);
  FIELD(dsk_sampling_params, bias_values);
  FIELD(dsk_sampling_params, allowed_mask);
  TYPE(dsk_sampling_outputs);
  FIELD(dsk_sampling_outputs, struct_size);
  FIELD(dsk_sampling_outputs, top_source);
  FIELD(dsk_sampling_outputs, ids);
  FIELD(dsk_sampling_outputs, logprobs);
  FIELD(dsk_sampling_outputs, top_ids);
  FIELD(dsk_sampling_outputs, top_logprobs);
  FIELD(dsk_sampling_outputs, raw_logprobs);
  FIELD(dsk_sampling_outputs, status);
  TYPE(dsk_verify_params);
  FIELD(dsk_verify_params, struct_size);
  FIELD(dsk_verify_params, mode);
  FIELD(dsk_verify_params, seed);
  FIELD(dsk_verify_params, offset);
  FIELD(dsk_verify_params, seeds);
  FIELD(dsk_verify_params, offsets);

  TYPE(dsk_safetensors_info);
  FIELD(dsk_safetensors_info, struct_size);
  FIELD(dsk_safetensors_info, ndim);
  FIELD(dsk_safetensors_info, dtype_id);
  FIELD(dsk_safetensors_info, reserved);
  FIELD(dsk_safetensors_info, name);
  FIELD(dsk_safetensors_info, dtype);
  FIELD(dsk_safetensors_info, shape);
  FIELD(dsk_safetensors_info, file);
  FIELD(dsk_safetensors_info, file_offset);
  FIELD(dsk_safetensors_info, nbytes);
}

static void dlpack_types(void) {
  TYPE(DLDeviceType);
  TYPE(DLDataTypeCode);

  TYPE(DLPackVersion);
  FIELD(DLPackVersion, major);
  FIELD(DLPackVersion, minor);

  TYPE(DLDevice);
  FIELD(DLDevice, device_type);
  FIELD(DLDevice, device_id);

  TYPE(DLDataType);
  FIELD(DLDataType, code);
  FIELD(DLDataType, bits);
  FIELD(DLDataType, lanes);

  TYPE(DLTensor);
  FIELD(DLTensor, data);
  FIELD(DLTensor, device);
  FIELD(DLTensor, ndim);
  FIELD(DLTensor, dtype);
  FIELD(DLTensor, shape);
  FIELD(DLTensor, strides);
  FIELD(DLTensor, byte_offset);

  TYPE(DLManagedTensor);
  FIELD(DLManagedTensor, dl_tensor);
  FIELD(DLManagedTensor, manager_ctx);
  FIELD(DLManagedTensor, deleter);

  TYPE(DLManagedTensorVersioned);
  FIELD(DLManagedTensorVersioned, version);
  FIELD(DLManagedTensorVersioned, manager_ctx);
  FIELD(DLManagedTensorVersioned, deleter);
  FIELD(DLManagedTensorVersioned, flags);
  FIELD(DLManagedTensorVersioned, dl_tensor);
}

static void dsk_constants(void) {
  CONST(DSK_VERSION_MAJOR);
  CONST(DSK_VERSION_MINOR);
  CONST(DSK_VERSION_PATCH);
  CONST(DSK_VERSION_NUMBER);
  STRING_CONST(DSK_VERSION_STRING);
  CONST(DSK_ABI_VERSION);

  CONST(DSK_OK);
  CONST(DSK_ERR_INVALID_ARGUMENT);
  CONST(DSK_ERR_UNSUPPORTED);
  CONST(DSK_ERR_OUT_OF_MEMORY);
  CONST(DSK_ERR_BACKEND_UNAVAILABLE);
  CONST(DSK_ERR_DEVICE_ERROR);
  CONST(DSK_ERR_VERSION_MISMATCH);
  CONST(DSK_ERR_INTERNAL);
  CONST(DSK_ERR_IO);
  CONST(DSK_ERR_NOT_FOUND);

  CONST(DSK_LOG_ERROR);
  CONST(DSK_LOG_WARN);
  CONST(DSK_LOG_INFO);
  CONST(DSK_LOG_DEBUG);

  CONST(DSK_DTYPE_F32);
  CONST(DSK_DTYPE_F16);
  CONST(DSK_DTYPE_BF16);
  CONST(DSK_DTYPE_FP8_E4M3FN);
  CONST(DSK_DTYPE_FP8_E5M2);
  CONST(DSK_DTYPE_INT32);
  CONST(DSK_DTYPE_INT64);
  CONST(DSK_DTYPE_UINT8);
  CONST(DSK_DTYPE_BOOL);
  CONST(DSK_DTYPE_COUNT);

  CONST(DSK_BACKEND_AUTO);
  CONST(DSK_BACKEND_CPU);
  CONST(DSK_BACKEND_CUDA);
  CONST(DSK_BACKEND_COUNT);

  CONST(DSK_MAX_NDIM);
  CONST(DSK_RANDOM_UNIFORM);
  CONST(DSK_RANDOM_NORMAL);

  CONST(DSK_FP8_BLOCK);
  CONST(DSK_QUANT_SCALE_POW2);
  CONST(DSK_FP8_KERNEL_CPU_REFERENCE);
  CONST(DSK_FP8_KERNEL_BLOCK_SCALED);
  CONST(DSK_FP8_KERNEL_DEQUANT_GEMM);
  CONST(DSK_ROPE_INTERLEAVED);
  CONST(DSK_ROPE_HALF_SPLIT);
  CONST(DSK_MOE_SCORE_SOFTMAX);
  CONST(DSK_MOE_SCORE_SIGMOID);
  CONST(DSK_MOE_SCORE_NONE);
  CONST(DSK_MOE_GROUP_AUTO);
  CONST(DSK_MOE_GROUP_MAX);
  CONST(DSK_MOE_GROUP_TOP2SUM);
  CONST(DSK_MOE_ROW_NO_FINITE);
  CONST(DSK_MOE_ROW_SHORT);
  CONST(DSK_SAMPLE_OK);
  CONST(DSK_SAMPLE_ALL_MASKED);
  CONST(DSK_SAMPLE_NONFINITE);
  CONST(DSK_SAMPLE_INVALID);
  CONST(DSK_LOGPROBS_PROCESSED);
  CONST(DSK_LOGPROBS_RAW);
  CONST(DSK_SAMPLE_MAX_TOP_LOGPROBS);
  CONST(DSK_VERIFY_SAMPLE);
  CONST(DSK_VERIFY_GREEDY);
  CONST(DSK_SAFETENSORS_MAX_HEADER_BYTES);
}

static void dlpack_constants(void) {
  CONST(DLPACK_MAJOR_VERSION);
  CONST(DLPACK_MINOR_VERSION);
  CONST(DLPACK_FLAG_BITMASK_READ_ONLY);
  CONST(DLPACK_FLAG_BITMASK_IS_COPIED);
  CONST(DLPACK_FLAG_BITMASK_IS_SUBBYTE_TYPE_PADDED);

  CONST(kDLCPU);
  CONST(kDLCUDA);
  CONST(kDLCUDAHost);
  CONST(kDLOpenCL);
  CONST(kDLVulkan);
  CONST(kDLMetal);
  CONST(kDLVPI);
  CONST(kDLROCM);
  CONST(kDLROCMHost);
  CONST(kDLExtDev);
  CONST(kDLCUDAManaged);
  CONST(kDLOneAPI);
  CONST(kDLWebGPU);
  CONST(kDLHexagon);
  CONST(kDLMAIA);
  CONST(kDLTrn);

  CONST(kDLInt);
  CONST(kDLUInt);
  CONST(kDLFloat);
  CONST(kDLOpaqueHandle);
  CONST(kDLBfloat);
  CONST(kDLComplex);
  CONST(kDLBool);
  CONST(kDLFloat8_e3m4);
  CONST(kDLFloat8_e4m3);
  CONST(kDLFloat8_e4m3b11fnuz);
  CONST(kDLFloat8_e4m3fn);
  CONST(kDLFloat8_e4m3fnuz);
  CONST(kDLFloat8_e5m2);
  CONST(kDLFloat8_e5m2fnuz);
  CONST(kDLFloat8_e8m0fnu);
  CONST(kDLFloat6_e2m3fn);
  CONST(kDLFloat6_e3m2fn);
  CONST(kDLFloat4_e2m1fn);
}

int main(void) {
  dsk_structs();
  dlpack_types();
  dsk_constants();
  dlpack_constants();
  return fflush(stdout) == 0 ? 0 : 1;
}
