//! Calls through the raw layer that the safe crate cannot express (it always sets struct_size).

use dsk_sys::*;
use std::ffi::CStr;

fn last_error() -> String {
    unsafe { CStr::from_ptr(dsk_last_error_message()) }.to_string_lossy().into_owned()
}

#[test]
fn struct_size_too_small_is_version_mismatch() {
    unsafe {
        let mut info: dsk_backend_info = std::mem::zeroed();
        info.struct_size = 4;
        assert_eq!(dsk_backend_get_info(DSK_BACKEND_CPU, &mut info), DSK_ERR_VERSION_MISMATCH);
        assert!(last_error().contains("struct_size"), "message: {}", last_error());

        let mut options: dsk_context_options = std::mem::zeroed();
        assert_eq!(dsk_context_options_init(&mut options), DSK_OK);
        assert_eq!(options.struct_size as usize, std::mem::size_of::<dsk_context_options>());
        options.struct_size = 8;
        let mut ctx = std::ptr::null_mut();
        assert_eq!(dsk_context_create(&options, &mut ctx), DSK_ERR_VERSION_MISMATCH);
        assert!(ctx.is_null());

        let mut params: dsk_random_params = std::mem::zeroed();
        assert_eq!(dsk_random_params_init(&mut params), DSK_OK);
        assert_eq!(params.distribution, DSK_RANDOM_UNIFORM);
        assert_eq!((params.a, params.b), (0.0, 1.0));
    }
}

#[test]
fn init_functions_set_struct_size() {
    unsafe {
        let mut info: dsk_backend_info = std::mem::zeroed();
        assert_eq!(dsk_backend_info_init(&mut info), DSK_OK);
        assert_eq!(info.struct_size as usize, std::mem::size_of::<dsk_backend_info>());
        let mut props: dsk_device_props = std::mem::zeroed();
        assert_eq!(dsk_device_props_init(&mut props), DSK_OK);
        assert_eq!(props.struct_size as usize, std::mem::size_of::<dsk_device_props>());
        assert_eq!(dsk_backend_info_init(std::ptr::null_mut()), DSK_ERR_INVALID_ARGUMENT);
    }
}

#[test]
fn versions_agree_with_headers() {
    unsafe {
        assert_eq!(dsk_abi_version(), DSK_ABI_VERSION);
        assert_eq!(dsk_version_number(), DSK_VERSION_NUMBER);
        assert_eq!(CStr::from_ptr(dsk_version_string()).to_str().unwrap(), DSK_VERSION_STRING);
    }
}

#[test]
fn rope_config_init_and_struct_size() {
    unsafe {
        let mut cfg: dsk_rope_config = std::mem::zeroed();
        assert_eq!(dsk_rope_config_init(&mut cfg), DSK_OK);
        assert_eq!(cfg.struct_size as usize, std::mem::size_of::<dsk_rope_config>());
        assert_eq!((cfg.dim, cfg.theta, cfg.factor, cfg.original_seq_len), (64, 10000.0, 40.0, 4096));
        assert_eq!(dsk_rope_config_init(std::ptr::null_mut()), DSK_ERR_INVALID_ARGUMENT);

        // A struct_size smaller than any released dsk_rope_config is refused.
        let mut opts: dsk_context_options = std::mem::zeroed();
        assert_eq!(dsk_context_options_init(&mut opts), DSK_OK);
        opts.backend = DSK_BACKEND_CPU;
        let mut ctx = std::ptr::null_mut();
        assert_eq!(dsk_context_create(&opts, &mut ctx), DSK_OK);
        let mut table = [0f32; 64];
        let mut shape = [2i64, 32];
        let dl = DLTensor {
            data: table.as_mut_ptr().cast(),
            device: DLDevice { device_type: kDLCPU, device_id: 0 },
            ndim: 2,
            dtype: DLDataType { code: kDLFloat, bits: 32, lanes: 1 },
            shape: shape.as_mut_ptr(),
            strides: std::ptr::null_mut(),
            byte_offset: 0,
        };
        let mut table2 = [0f32; 64];
        let dl2 = DLTensor { data: table2.as_mut_ptr().cast(), ..dl };
        assert_eq!(dsk_rope_table(ctx, &cfg, &dl, &dl2), DSK_OK);
        assert_eq!(table[0], 1.0);
        cfg.struct_size = 4;
        assert_eq!(dsk_rope_table(ctx, &cfg, &dl, &dl2), DSK_ERR_VERSION_MISMATCH);
        assert!(last_error().contains("struct_size"), "message: {}", last_error());
        assert_eq!(dsk_rope_table(ctx, std::ptr::null(), &dl, &dl2), DSK_ERR_INVALID_ARGUMENT);
        dsk_context_destroy(ctx);
    }
}

#[test]
fn moe_init_functions_set_struct_size() {
    unsafe {
        let mut cfg: dsk_moe_gate_config = std::mem::zeroed();
        assert_eq!(dsk_moe_gate_config_init(&mut cfg), DSK_OK);
        assert_eq!(cfg.struct_size as usize, std::mem::size_of::<dsk_moe_gate_config>());
        assert_eq!((cfg.num_experts, cfg.top_k, cfg.n_group, cfg.topk_group), (256, 8, 8, 4));
        assert_eq!((cfg.score_func, cfg.group_rule, cfg.renormalize), (DSK_MOE_SCORE_SIGMOID, DSK_MOE_GROUP_AUTO, 1));
        assert_eq!((cfg.routed_scaling_factor, cfg.score_dtype), (2.5, DSK_DTYPE_F32));
        assert_eq!(dsk_moe_gate_config_init(std::ptr::null_mut()), DSK_ERR_INVALID_ARGUMENT);

        let mut w: dsk_moe_expert_weights = std::mem::zeroed();
        w.w1 = 1usize as *const DLTensor;
        assert_eq!(dsk_moe_expert_weights_init(&mut w), DSK_OK);
        assert_eq!(w.struct_size as usize, std::mem::size_of::<dsk_moe_expert_weights>());
        assert!(w.w1.is_null() && w.w2_scales.is_null());
        assert_eq!(dsk_moe_expert_weights_init(std::ptr::null_mut()), DSK_ERR_INVALID_ARGUMENT);

        // A struct_size smaller than any released dsk_moe_gate_config is refused.
        let mut opts: dsk_context_options = std::mem::zeroed();
        assert_eq!(dsk_context_options_init(&mut opts), DSK_OK);
        opts.backend = DSK_BACKEND_CPU;
        let mut ctx = std::ptr::null_mut();
        assert_eq!(dsk_context_create(&opts, &mut ctx), DSK_OK);
        let mut logits = [0f32; 256];
        let mut ids = [0i32; 8];
        let mut weights = [0f32; 8];
        let (mut s_logits, mut s_out) = ([1i64, 256], [1i64, 8]);
        let f32_ = DLDataType { code: kDLFloat, bits: 32, lanes: 1 };
        let mk = |data: *mut core::ffi::c_void, dtype: DLDataType, shape: *mut i64| DLTensor {
            data,
            device: DLDevice { device_type: kDLCPU, device_id: 0 },
            ndim: 2,
            dtype,
            shape,
            strides: std::ptr::null_mut(),
            byte_offset: 0,
        };
        let dl_logits = mk(logits.as_mut_ptr().cast(), f32_, s_logits.as_mut_ptr());
        let dl_ids = mk(ids.as_mut_ptr().cast(), DLDataType { code: kDLInt, bits: 32, lanes: 1 }, s_out.as_mut_ptr());
        let dl_w = mk(weights.as_mut_ptr().cast(), f32_, s_out.as_mut_ptr());
        let null = std::ptr::null();
        assert_eq!(dsk_moe_gate(ctx, &cfg, &dl_logits, null, &dl_ids, &dl_w, null), DSK_OK);
        assert_eq!(ids, [0, 1, 2, 3, 4, 5, 6, 7]); // all scores equal: ties go to the lower index
        cfg.struct_size = 4;
        assert_eq!(dsk_moe_gate(ctx, &cfg, &dl_logits, null, &dl_ids, &dl_w, null), DSK_ERR_VERSION_MISMATCH);
        assert!(last_error().contains("struct_size"), "message: {}", last_error());
        assert_eq!(dsk_moe_gate(ctx, std::ptr::null(), &dl_logits, null, &dl_ids, &dl_w, null),
                   DSK_ERR_INVALID_ARGUMENT);
        dsk_context_destroy(ctx);
    }
}

#[test]
fn sampling_init_functions_set_struct_size() {
    unsafe {
        let mut p: dsk_sampling_params = std::mem::zeroed();
        p.top_ps = 1usize as *const DLTensor;
        assert_eq!(dsk_sampling_params_init(&mut p), DSK_OK);
        assert_eq!(p.struct_size as usize, std::mem::size_of::<dsk_sampling_params>());
        assert_eq!((p.temperature, p.top_k, p.top_p, p.min_p), (1.0, 0, 1.0, 0.0));
        assert_eq!((p.repetition_penalty, p.frequency_penalty, p.presence_penalty), (1.0, 0.0, 0.0));
        assert_eq!((p.seed, p.offset), (0, 0));
        assert!(p.top_ps.is_null() && p.allowed_mask.is_null() && p.output_ids.is_null());
        assert_eq!(dsk_sampling_params_init(std::ptr::null_mut()), DSK_ERR_INVALID_ARGUMENT);

        let mut o: dsk_sampling_outputs = std::mem::zeroed();
        o.top_source = 7;
        assert_eq!(dsk_sampling_outputs_init(&mut o), DSK_OK);
        assert_eq!(o.struct_size as usize, std::mem::size_of::<dsk_sampling_outputs>());
        assert_eq!(o.top_source, DSK_LOGPROBS_PROCESSED);
        assert!(o.ids.is_null() && o.status.is_null());
        assert_eq!(dsk_sampling_outputs_init(std::ptr::null_mut()), DSK_ERR_INVALID_ARGUMENT);

        let mut v: dsk_verify_params = std::mem::zeroed();
        v.mode = 5;
        assert_eq!(dsk_verify_params_init(&mut v), DSK_OK);
        assert_eq!(v.struct_size as usize, std::mem::size_of::<dsk_verify_params>());
        assert_eq!((v.mode, v.seed, v.offset), (DSK_VERIFY_SAMPLE, 0, 0));
        assert!(v.seeds.is_null() && v.offsets.is_null());
        assert_eq!(dsk_verify_params_init(std::ptr::null_mut()), DSK_ERR_INVALID_ARGUMENT);

        // Greedy on one row through the raw layer; a too-small struct_size is refused.
        let mut opts: dsk_context_options = std::mem::zeroed();
        assert_eq!(dsk_context_options_init(&mut opts), DSK_OK);
        opts.backend = DSK_BACKEND_CPU;
        let mut ctx = std::ptr::null_mut();
        assert_eq!(dsk_context_create(&opts, &mut ctx), DSK_OK);
        let mut logits = [0.5f32, 2.0, -1.0, 2.0];
        let mut ids = [-1i32; 1];
        let (mut s_logits, mut s_ids) = ([1i64, 4], [1i64]);
        let dl_logits = DLTensor {
            data: logits.as_mut_ptr().cast(),
            device: DLDevice { device_type: kDLCPU, device_id: 0 },
            ndim: 2,
            dtype: DLDataType { code: kDLFloat, bits: 32, lanes: 1 },
            shape: s_logits.as_mut_ptr(),
            strides: std::ptr::null_mut(),
            byte_offset: 0,
        };
        let dl_ids = DLTensor {
            data: ids.as_mut_ptr().cast(),
            device: DLDevice { device_type: kDLCPU, device_id: 0 },
            ndim: 1,
            dtype: DLDataType { code: kDLInt, bits: 32, lanes: 1 },
            shape: s_ids.as_mut_ptr(),
            strides: std::ptr::null_mut(),
            byte_offset: 0,
        };
        p.temperature = 0.0;
        o.ids = &dl_ids;
        assert_eq!(dsk_sample(ctx, &p, &dl_logits, &o), DSK_OK, "{}", last_error());
        assert_eq!(ids, [1]); // the tie between ids 1 and 3 goes to the lower one
        p.struct_size = 4;
        assert_eq!(dsk_sample(ctx, &p, &dl_logits, &o), DSK_ERR_VERSION_MISMATCH);
        assert!(last_error().contains("struct_size"), "message: {}", last_error());
        dsk_context_destroy(ctx);
    }
}
