//! Tensor round trips on the CPU backend.

use dsk::{convert_host, Bf16, Context, DType, Device, Fp8E4M3, Fp8E5M2, RandomParams, Tensor, TensorMut, TensorRef};

fn cpu() -> Context {
    Context::cpu().expect("CPU context")
}

#[test]
fn create_and_fill() {
    let ctx = cpu();
    assert_eq!(ctx.backend().unwrap(), dsk::Backend::Cpu);
    assert_eq!(ctx.device().unwrap(), Device::CPU);
    let t = ctx.full(&[2, 3, 4], DType::F32, 1.5).unwrap();
    assert_eq!(t.shape(), &[2, 3, 4]);
    assert_eq!(t.strides(), &[12, 4, 1]);
    assert_eq!(t.ndim(), 3);
    assert_eq!(t.dtype(), DType::F32);
    assert_eq!(t.numel(), 24);
    assert_eq!(t.nbytes(), 96);
    assert!(t.is_contiguous());
    assert!(!t.is_read_only());
    assert_eq!(t.data_ptr() as usize % 64, 0, "CPU storage is 64-byte aligned");
    assert_eq!(t.to_vec::<f32>().unwrap(), vec![1.5; 24]);
    // The dtype check of host access.
    let err = t.to_vec::<i32>().unwrap_err();
    assert_eq!(err.kind(), dsk::ErrorKind::InvalidArgument);
    assert!(err.message().contains("f32"), "{err}");

    let scalar = ctx.zeros(&[], DType::I64).unwrap();
    assert_eq!(scalar.numel(), 1);
    assert_eq!(scalar.to_vec::<i64>().unwrap(), vec![0]);
    let empty = ctx.zeros(&[0, 5], DType::U8).unwrap();
    assert_eq!(empty.to_vec::<u8>().unwrap(), Vec::<u8>::new());
}

#[test]
fn fill_random_is_deterministic() {
    let ctx = cpu();
    let a = ctx.empty(&[1000], DType::F32).unwrap();
    let b = ctx.empty(&[1000], DType::F32).unwrap();
    let c = ctx.empty(&[1000], DType::F32).unwrap();
    let p = RandomParams::uniform(7, -2.0, 3.0);
    ctx.fill_random(&a, &p).unwrap();
    ctx.fill_random(&b, &p).unwrap();
    ctx.fill_random(&c, &p.with_offset(1)).unwrap();
    let (va, vb, vc) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap(), c.to_vec::<f32>().unwrap());
    assert_eq!(va, vb);
    assert_ne!(va, vc);
    assert!(va.iter().all(|&x| (-2.0..=3.0).contains(&x)));

    // Element i gets the same value whatever the destination's strides: fill a transposed view
    // and read it back in row-major order of that view.
    let base = ctx.empty(&[8, 4], DType::F32).unwrap();
    let t = base.transpose(0, 1).unwrap();
    ctx.fill_random(&t, &RandomParams::normal(9, 0.0, 1.0)).unwrap();
    let dense = ctx.clone_tensor(&t, DType::F32).unwrap();
    let flat = ctx.empty(&[32], DType::F32).unwrap();
    ctx.fill_random(&flat, &RandomParams::normal(9, 0.0, 1.0)).unwrap();
    assert_eq!(dense.to_vec::<f32>().unwrap(), flat.to_vec::<f32>().unwrap());
}

#[test]
fn views_and_transposes() {
    let ctx = cpu();
    let data: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let src = TensorRef::new(&data, &[3, 4]).unwrap();
    let t = ctx.clone_tensor(&src, DType::F32).unwrap();

    let tt = t.transpose(0, 1).unwrap();
    assert_eq!(tt.shape(), &[4, 3]);
    assert_eq!(tt.strides(), &[1, 4]);
    assert!(!tt.is_contiguous());
    assert!(tt.to_vec::<f32>().is_err(), "host access needs contiguous tensors");
    let dense = ctx.clone_tensor(&tt, DType::F32).unwrap();
    assert_eq!(dense.to_vec::<f32>().unwrap(), vec![0., 4., 8., 1., 5., 9., 2., 6., 10., 3., 7., 11.]);

    // Row 1, as a view with an element offset, shares storage with t.
    let row = t.view(&[4], None, 4).unwrap();
    assert_eq!(row.to_vec::<f32>().unwrap(), vec![4., 5., 6., 7.]);
    ctx.fill(&row, -1.0).unwrap();
    assert_eq!(&t.to_vec::<f32>().unwrap()[3..9], &[3., -1., -1., -1., -1., 8.]);
    // Column 2 via strides.
    let col = t.view(&[3], Some(&[4]), 2).unwrap();
    assert_eq!(ctx.clone_tensor(&col, DType::F32).unwrap().to_vec::<f32>().unwrap(), vec![2., -1., 10.]);
    // A view outlives the handle it was made from: it keeps the storage alive.
    drop(t);
    assert_eq!(row.to_vec::<f32>().unwrap(), vec![-1.; 4]);
    // Bounds are those of the shared storage (12 elements), not of the view: from element 4,
    // 8 more fit and 9 do not.
    row.view(&[8], None, 0).unwrap();
    assert_eq!(row.view(&[9], None, 0).unwrap_err().kind(), dsk::ErrorKind::InvalidArgument);
}

#[test]
fn copy_with_dtype_conversion() {
    let ctx = cpu();
    let values = [1.0f32, -2.0, 0.5, 1000.0, 3.140625];
    let src = TensorRef::new(&values, &[5]).unwrap();

    let bf16 = ctx.empty(&[5], DType::BF16).unwrap();
    ctx.copy(&src, &bf16).unwrap();
    let bits: Vec<u16> = bf16.to_vec::<Bf16>().unwrap().iter().map(|b| b.0).collect();
    assert_eq!(bits, vec![0x3F80, 0xC000, 0x3F00, 0x447A, 0x4049]);

    let e4m3 = ctx.clone_tensor(&src, DType::FP8_E4M3FN).unwrap();
    let bytes: Vec<u8> = e4m3.to_vec::<Fp8E4M3>().unwrap().iter().map(|b| b.0).collect();
    // 1000 saturates to 448 (0x7E); 3.140625 rounds to 3.25 (0x45), the nearer of 3 and 3.25.
    assert_eq!(bytes, vec![0x38, 0xC0, 0x30, 0x7E, 0x45]);

    let e5m2 = ctx.clone_tensor(&src, DType::FP8_E5M2).unwrap();
    assert_eq!(e5m2.to_vec::<Fp8E5M2>().unwrap()[0], Fp8E5M2(0x3C));

    // Back to f32 into caller memory.
    let mut out = [0f32; 5];
    ctx.copy(&bf16, &TensorMut::new(&mut out, &[5]).unwrap()).unwrap();
    assert_eq!(out, [1.0, -2.0, 0.5, 1000.0, 3.140625]);

    // The same conversions on plain slices.
    let mut host = [Bf16(0); 5];
    convert_host(&values, &mut host).unwrap();
    assert_eq!(host.iter().map(|b| b.0).collect::<Vec<_>>(), bits);
    let mut ints = [0i32; 5];
    convert_host(&values, &mut ints).unwrap();
    assert_eq!(ints, [1, -2, 0, 1000, 3]);
    assert!(convert_host(&values, &mut [0i32; 4]).is_err());
}

#[test]
fn clone_shares_storage_and_clone_tensor_copies() {
    let ctx = cpu();
    let a = ctx.full(&[4], DType::I32, 3.0).unwrap();
    let shared = a.clone();
    assert_eq!(shared.data_ptr(), a.data_ptr());
    let copy = ctx.clone_tensor(&a, a.dtype()).unwrap();
    assert_ne!(copy.data_ptr(), a.data_ptr());
    ctx.fill(&a, 5.0).unwrap();
    assert_eq!(shared.to_vec::<i32>().unwrap(), vec![5; 4]);
    assert_eq!(copy.to_vec::<i32>().unwrap(), vec![3; 4]);
    // Handles move across threads.
    let h = std::thread::spawn(move || shared.to_vec::<i32>().unwrap());
    assert_eq!(h.join().unwrap(), vec![5; 4]);
}

#[test]
fn dlpack_round_trip_keeps_the_pointer() {
    let ctx = cpu();
    let t = ctx.full(&[2, 3], DType::F32, 2.0).unwrap();
    let managed = t.to_dlpack().unwrap();
    assert_eq!(managed.version(), (1, 1));
    assert_eq!(managed.flags() & dsk::sys::DLPACK_FLAG_BITMASK_READ_ONLY, 0);
    assert_eq!(managed.dl_tensor().data, t.data_ptr());
    let back = Tensor::from_managed(managed).unwrap();
    assert_eq!(back.data_ptr(), t.data_ptr());
    assert_eq!(back.shape(), &[2, 3]);
    drop(t);
    assert_eq!(back.to_vec::<f32>().unwrap(), vec![2.0; 6]);

    // Through a raw pointer, as another framework would hand it over.
    let raw = back.to_dlpack().unwrap().into_raw();
    let again = unsafe { Tensor::from_dlpack(raw) }.unwrap();
    assert_eq!(again.data_ptr(), back.data_ptr());

    // Legacy form.
    let legacy = again.to_dlpack_legacy().unwrap();
    assert_eq!(legacy.dl_tensor().data, again.data_ptr());
    let old = legacy.into_tensor().unwrap();
    assert_eq!(old.data_ptr(), again.data_ptr());

    // Dropping an export without importing runs its deleter (ASan builds check for the leak).
    drop(old.to_dlpack().unwrap());
}

#[test]
fn dlpack_import_refuses_a_bad_version() {
    let ctx = cpu();
    let t = ctx.zeros(&[3], DType::F32).unwrap();
    let managed = t.to_dlpack().unwrap();
    unsafe { (*managed.as_ptr()).version.major = 2 };
    let err = Tensor::from_managed(managed).unwrap_err(); // deleted on failure: no leak
    assert_eq!(err.kind(), dsk::ErrorKind::VersionMismatch);
}

#[test]
fn borrowed_slices() {
    let ctx = cpu();
    let data = [1u8, 2, 3, 4, 5, 6];
    // Strided read of a caller slice: every other element.
    let src = TensorRef::with_strides(&data, &[3], Some(&[2])).unwrap();
    dsk::validate(&src, "src").unwrap();
    let t = ctx.clone_tensor(&src, DType::U8).unwrap();
    assert_eq!(t.to_vec::<u8>().unwrap(), vec![1, 3, 5]);
    // Shapes that would read past the slice are refused before reaching C.
    assert!(TensorRef::new(&data, &[7]).is_err());
    assert!(TensorRef::with_strides(&data, &[3], Some(&[3])).is_err());

    let mut out = vec![0f32; 6];
    {
        let dst = TensorMut::new(&mut out, &[2, 3]).unwrap();
        ctx.fill(&dst, 4.0).unwrap();
    }
    assert_eq!(out, vec![4.0; 6]);

    let t = ctx.zeros(&[2], DType::F32).unwrap();
    unsafe { t.as_mut_slice::<f32>() }.unwrap().copy_from_slice(&[1.0, 2.0]);
    assert_eq!(unsafe { t.as_slice::<f32>() }.unwrap(), &[1.0, 2.0]);
}

#[test]
fn dtype_helpers() {
    let all = DType::all();
    assert_eq!(all.len(), 9);
    assert_eq!(DType::BF16.name(), "bf16");
    assert_eq!(DType::BF16.size(), 2);
    assert_eq!(DType::BF16.id().unwrap(), dsk::sys::DSK_DTYPE_BF16);
    assert_eq!(DType::from_id(dsk::sys::DSK_DTYPE_FP8_E4M3FN).unwrap(), DType::FP8_E4M3FN);
    assert_eq!(DType::from_id(0).unwrap_err().kind(), dsk::ErrorKind::InvalidArgument);
    let complex = DType::new(dsk::sys::kDLComplex, 64);
    assert!(!complex.is_supported());
    assert_eq!(complex.name(), "unsupported");
    assert!(complex.id().is_err());
}

#[test]
fn versions_backends_and_workspace() {
    assert_eq!(dsk::version_number(), dsk::sys::DSK_VERSION_NUMBER);
    assert_eq!(dsk::version_string(), dsk::sys::DSK_VERSION_STRING);
    assert_eq!(dsk::abi_version(), dsk::sys::DSK_ABI_VERSION);
    dsk::check_abi().unwrap();

    let backends = dsk::backends().unwrap();
    let cpu_info = backends.iter().find(|b| b.backend == dsk::Backend::Cpu).unwrap();
    assert!(cpu_info.available);
    assert_eq!(cpu_info.name, "cpu");
    assert!(dsk::Backend::Cpu.device_count() >= 1);
    let props = dsk::device_props(dsk::Backend::Cpu, 0).unwrap();
    assert!(props.multiprocessor_count >= 1);
    assert!(!dsk::devices().unwrap().is_empty());
    let _ = dsk::Backend::default_backend();

    let mut ctx = cpu();
    assert!(ctx.stream().unwrap().is_null());
    unsafe { ctx.set_stream(std::ptr::null_mut()) }.unwrap();
    ctx.reserve_workspace(1 << 16).unwrap();
    assert!(ctx.workspace_size().unwrap() >= 1 << 16);
    ctx.reset_workspace().unwrap();
    ctx.synchronize().unwrap();
    assert_eq!(dsk::status_string(0), "ok");
}

#[test]
fn contexts_move_between_threads() {
    let ctx = cpu();
    let t = std::thread::spawn(move || ctx.full(&[2], DType::F32, 1.0).unwrap()).join().unwrap();
    assert_eq!(t.to_vec::<f32>().unwrap(), vec![1.0, 1.0]);
}
