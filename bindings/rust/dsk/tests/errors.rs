//! Error paths: the right kind, and libdsk's message carried through.

use dsk::{Context, DType, Device, ErrorKind, LogLevel, TensorRef};
use std::sync::{Arc, Mutex};

#[test]
fn bad_shape() {
    let ctx = Context::cpu().unwrap();
    let err = ctx.empty(&[2, -3], DType::F32).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(err.status(), dsk::sys::DSK_ERR_INVALID_ARGUMENT);
    assert!(err.message().contains("dsk_tensor_create"), "{err}");
    assert!(err.to_string().contains("invalid argument"), "{err}");
}

#[test]
fn ndim_nine() {
    let ctx = Context::cpu().unwrap();
    let err = ctx.empty(&[1; 9], DType::F32).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("ndim"), "{err}");
}

#[test]
fn unsupported_dtype() {
    let ctx = Context::cpu().unwrap();
    let err = ctx.empty(&[4], DType::new(dsk::sys::kDLComplex, 64)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("dtype"), "{err}");
    // fill_random refuses integer tensors.
    let ints = ctx.zeros(&[4], DType::I32).unwrap();
    let err = ctx.fill_random(&ints, &dsk::RandomParams::uniform(1, 0.0, 1.0)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn cuda_tensor_on_a_cpu_context() {
    let ctx = Context::cpu().unwrap();
    // A CUDA-device DLTensor: dsk must refuse it from the descriptor alone, never touching the
    // (bogus, but aligned) address.
    let fake = 0x1000usize as *const std::ffi::c_void;
    let src = unsafe { TensorRef::from_raw_parts(fake, Device::cuda(0), DType::F32, &[4], None) }.unwrap();
    let err = ctx.clone_tensor(&src, DType::F32).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::InvalidArgument | ErrorKind::BackendUnavailable), "{err:?}");
    assert!(err.message().to_lowercase().contains("device") || err.message().contains("cuda"), "{err}");
    let dst = ctx.zeros(&[4], DType::F32).unwrap();
    assert!(ctx.copy(&src, &dst).is_err());
}

#[test]
fn bad_backend_and_random_params() {
    let err = Context::builder().backend(dsk::Backend::Cpu).device_id(5).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let ctx = Context::cpu().unwrap();
    let t = ctx.empty(&[4], DType::F32).unwrap();
    let err = ctx.fill_random(&t, &dsk::RandomParams::normal(1, 0.0, -1.0)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let mut unsafe_stream_ctx = Context::cpu().unwrap();
    let err = unsafe { unsafe_stream_ctx.set_stream(8usize as *mut _) }.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn log_callback_sees_messages_or_nothing() {
    // libdsk logs only a few events; the point is that installing and removing is sound.
    let seen = Arc::new(Mutex::new(Vec::<(LogLevel, String)>::new()));
    let sink = seen.clone();
    dsk::set_log_callback(Some(Box::new(move |level, msg| sink.lock().unwrap().push((level, msg.to_string())))), LogLevel::Debug);
    let _ = dsk::backends();
    let _ = Context::cpu().unwrap().empty(&[-1], DType::F32);
    dsk::set_log_callback(None, LogLevel::Error);
    for (_, msg) in seen.lock().unwrap().iter() {
        assert!(!msg.is_empty());
    }
}
