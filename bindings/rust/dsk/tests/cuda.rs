//! CUDA round trips; skipped (early return) when no CUDA device is usable. ctest also runs the
//! whole suite against tests/fake_cuda (host memory posing as a device), where these run.

use dsk::{Backend, Context, DType, Device, RandomParams};

fn cuda() -> Option<Context> {
    if Backend::Cuda.device_count() == 0 {
        eprintln!("note: no CUDA device; skipping");
        return None;
    }
    Some(Context::cuda(0).expect("CUDA context"))
}

#[test]
fn cuda_round_trip() {
    let Some(mut ctx) = cuda() else { return };
    assert_eq!(ctx.backend().unwrap(), Backend::Cuda);
    let props = dsk::device_props(Backend::Cuda, 0).unwrap();
    assert!(!props.name.is_empty());

    let host: Vec<f32> = (0..64).map(|i| i as f32 * 0.25).collect();
    let src = dsk::TensorRef::new(&host, &[8, 8]).unwrap();
    let dev = ctx.clone_tensor(&src, DType::BF16).unwrap();
    assert_eq!(dev.device(), Device::cuda(0));
    assert!(dev.to_vec::<dsk::Bf16>().is_err(), "device memory is not host-readable");
    let t = dev.transpose(0, 1).unwrap();

    let cpu = Context::cpu().unwrap();
    let mut out = vec![0f32; 64];
    ctx.copy(&t, &dsk::TensorMut::new(&mut out, &[8, 8]).unwrap()).unwrap();
    ctx.synchronize().unwrap();
    for i in 0..8 {
        for j in 0..8 {
            assert_eq!(out[i * 8 + j], host[j * 8 + i]);
        }
    }

    // Same seed, same numbers on both backends.
    let a = ctx.empty(&[257], DType::F32).unwrap();
    ctx.fill_random(&a, &RandomParams::normal(3, 1.0, 2.0)).unwrap();
    let b = cpu.empty(&[257], DType::F32).unwrap();
    cpu.fill_random(&b, &RandomParams::normal(3, 1.0, 2.0)).unwrap();
    let a_host = ctx.empty(&[257], DType::F32).and_then(|_| {
        let mut v = vec![0f32; 257];
        ctx.copy(&a, &dsk::TensorMut::new(&mut v, &[257])?)?;
        Ok(v)
    }).unwrap();
    assert_eq!(a_host, b.to_vec::<f32>().unwrap());

    // DLPack keeps the device pointer.
    let m = dev.to_dlpack().unwrap();
    assert_eq!(m.dl_tensor().device.device_type, dsk::sys::kDLCUDA);
    let back = dsk::Tensor::from_managed(m).unwrap();
    assert_eq!(back.data_ptr(), dev.data_ptr());
}

#[test]
fn cpu_context_refuses_cuda_tensor() {
    let Some(ctx) = cuda() else { return };
    let dev = ctx.zeros(&[4], DType::F32).unwrap();
    let cpu = Context::cpu().unwrap();
    let err = cpu.clone_tensor(&dev, DType::F32).unwrap_err();
    assert_eq!(err.kind(), dsk::ErrorKind::InvalidArgument, "{err}");
}

/// The core ops on CUDA against the CPU reference with the same inputs. Against the fake CUDA
/// module (host memory posing as a device, no op kernels) libdsk must answer Unsupported instead.
#[test]
fn ops_match_the_cpu_reference() {
    let Some(ctx) = cuda() else { return };
    let fake = dsk::device_props(Backend::Cuda, 0).map(|p| p.name.contains("fake")).unwrap_or(false);
    let cpu = Context::cpu().unwrap();
    let host: Vec<f32> = (0..4 * 96).map(|i| ((i * 37 % 101) as f32 - 50.0) / 16.0).collect();
    let w: Vec<f32> = (0..96).map(|i| 0.5 + (i % 7) as f32 / 8.0).collect();
    let xs = dsk::TensorRef::new(&host, &[4, 96]).unwrap();
    let ws = dsk::TensorRef::new(&w, &[96]).unwrap();
    let xd = ctx.clone_tensor(&xs, DType::F32).unwrap();
    let wd = ctx.clone_tensor(&ws, DType::F32).unwrap();
    let yd = ctx.empty(&[4, 96], DType::F32).unwrap();
    if fake {
        let err = ctx.rmsnorm(&xd, &wd, &yd, 1e-6).unwrap_err();
        assert_eq!(err.kind(), dsk::ErrorKind::Unsupported, "{err}");
        let err = ctx.gemm(&xd, &xd.transpose(0, 1).unwrap(), None, &ctx.empty(&[4, 4], DType::F32).unwrap(),
                           &dsk::GemmOptions::default()).unwrap_err();
        assert_eq!(err.kind(), dsk::ErrorKind::Unsupported, "{err}");
        return;
    }
    let to_host = |t: &dsk::Tensor| -> Vec<f32> {
        let mut v = vec![0f32; t.numel() as usize];
        ctx.copy(t, &dsk::TensorMut::new(&mut v, t.shape()).unwrap()).unwrap();
        v
    };
    let close = |a: &[f32], b: &[f32], rtol: f32, atol: f32| {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= atol + rtol * y.abs(), "element {i}: cuda {x}, cpu {y}");
        }
    };

    // RMSNorm
    ctx.rmsnorm(&xd, &wd, &yd, 1e-6).unwrap();
    let yc = cpu.empty(&[4, 96], DType::F32).unwrap();
    cpu.rmsnorm(&xs, &ws, &yc, 1e-6).unwrap();
    close(&to_host(&yd), &yc.to_vec::<f32>().unwrap(), 1e-5, 1e-6);

    // bf16 GEMM, f32 output: x @ x^T
    let xb = ctx.clone_tensor(&xs, DType::BF16).unwrap();
    let xbc = cpu.clone_tensor(&xs, DType::BF16).unwrap();
    let dd = ctx.empty(&[4, 4], DType::F32).unwrap();
    ctx.gemm(&xb, &xb, None, &dd, &dsk::GemmOptions::default().trans_b(true)).unwrap();
    let dc = cpu.empty(&[4, 4], DType::F32).unwrap();
    cpu.gemm(&xbc, &xbc, None, &dc, &dsk::GemmOptions::default().trans_b(true)).unwrap();
    close(&to_host(&dd), &dc.to_vec::<f32>().unwrap(), 1e-4, 1e-3);

    // Quantization is exact on both; top-k indices are exact.
    let qd = ctx.empty(&[4, 96], DType::FP8_E4M3FN).unwrap();
    let sd = ctx.empty(&[4, 1], DType::F32).unwrap();
    ctx.quant_fp8_act(&xd, &qd, &sd, false).unwrap();
    let qc = cpu.empty(&[4, 96], DType::FP8_E4M3FN).unwrap();
    let sc = cpu.empty(&[4, 1], DType::F32).unwrap();
    cpu.quant_fp8_act(&xs, &qc, &sc, false).unwrap();
    assert_eq!(to_host(&sd), sc.to_vec::<f32>().unwrap());
    let qdh = ctx.clone_tensor(&qd, DType::F32).unwrap();
    assert_eq!(to_host(&qdh), cpu.clone_tensor(&qc, DType::F32).unwrap().to_vec::<f32>().unwrap());
    let id = ctx.empty(&[4, 5], DType::I64).unwrap();
    ctx.topk(&xd, 5, None, &id).unwrap();
    let ic = cpu.empty(&[4, 5], DType::I64).unwrap();
    cpu.topk(&xs, 5, None, &ic).unwrap();
    let mut ih = vec![0i64; 20];
    ctx.copy(&id, &dsk::TensorMut::new(&mut ih, &[4, 5]).unwrap()).unwrap();
    assert_eq!(ih, ic.to_vec::<i64>().unwrap());
    let kernel = ctx.linear_fp8_kernel().unwrap();
    assert!(matches!(kernel, dsk::Fp8Kernel::BlockScaled | dsk::Fp8Kernel::DequantGemm), "{kernel:?}");
}
