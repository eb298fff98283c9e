import ctypes
import gc
import struct

import numpy as np
import pytest

import dsk
from dsk import _api


def test_backends_and_devices():
    infos = {b.backend: b for b in dsk.backends()}
    assert infos["cpu"].available and infos["cpu"].device_count == 1 and infos["cpu"].reason == ""
    if not infos["cuda"].available:
        assert infos["cuda"].reason
    cpu = dsk.devices("cpu")
    assert len(cpu) == 1 and cpu[0].backend == "cpu" and cpu[0].total_memory_bytes > 0
    assert dsk.default_backend() in ("cpu", "cuda")


def test_context_properties(ctx):
    assert ctx.backend == "cpu"
    assert ctx.device == (1, 0)
    assert ctx.stream == 0
    ctx.reserve_workspace(1 << 16)
    assert ctx.workspace_size >= 1 << 16
    ctx.synchronize()
    ctx.close()
    ctx.close()
    with pytest.raises(ValueError, match="closed"):
        ctx.synchronize()


def test_context_errors():
    with pytest.raises(dsk.InvalidArgumentError, match="backend"):
        dsk.Context("tpu")
    with pytest.raises(dsk.InvalidArgumentError) as e:
        dsk.Context("cpu", device_id=5)
    assert e.value.status == 1 and "device" in e.value.message
    with dsk.Context("cpu") as c, pytest.raises(dsk.InvalidArgumentError):
        c.stream = 0x1234
    if dsk.device_count("cuda") == 0:
        with pytest.raises(dsk.BackendUnavailableError) as e2:
            dsk.Context("cuda")
        assert e2.value.status == 4 and e2.value.message


def test_empty_properties(ctx):
    t = dsk.empty((2, 3, 4), "f16", ctx)
    assert t.shape == (2, 3, 4) and t.strides == (12, 4, 1) and t.ndim == 3
    assert t.dtype == "f16" and t.device == (1, 0)
    assert t.numel == 24 and t.nbytes == 48
    assert t.is_contiguous and not t.is_read_only
    s = dsk.empty((), "int64")
    assert s.shape == () and s.numel == 1


def test_retain_and_close(ctx):
    t = dsk.empty((4,), "f32", ctx)
    dsk.fill(ctx, t, 3.0)
    r = t.retain()
    t.close()
    t.close()
    with pytest.raises(ValueError):
        t.shape
    assert r.numpy().tolist() == [3.0] * 4


def test_view(ctx):
    t = dsk.empty((3, 4), "f32", ctx)
    t.numpy()[...] = np.arange(12, dtype=np.float32).reshape(3, 4)
    v = t.view((4, 3), strides=(1, 4))
    assert not v.is_contiguous
    np.testing.assert_array_equal(v.numpy(), np.arange(12).reshape(3, 4).T)
    o = t.view((2,), offset=5)
    assert o.numpy().tolist() == [5.0, 6.0]
    del t
    gc.collect()
    assert o.numpy().tolist() == [5.0, 6.0]  # the view keeps the storage alive
    with pytest.raises(dsk.InvalidArgumentError, match="dsk_tensor_view"):
        o.view((10,))
    with pytest.raises(dsk.InvalidArgumentError):
        o.view((2,), strides=(1, 1))


def test_numpy_to_dsk_is_zero_copy(ctx):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = dsk.from_dlpack(a)
    assert t.data_ptr == a.ctypes.data
    assert t.shape == (2, 3) and t.dtype == "f32"
    dsk.fill(ctx, t, 7.0)
    assert (a == 7).all()
    t2 = dsk.asarray(a)
    assert t2.data_ptr == a.ctypes.data


def test_dsk_to_numpy_is_zero_copy(ctx):
    t = dsk.empty((5,), "int32", ctx)
    dsk.fill(ctx, t, 2)
    n = t.numpy()
    assert n.ctypes.data == t.data_ptr and n.dtype == np.int32
    m = np.from_dlpack(t)
    assert m.ctypes.data == t.data_ptr
    del t
    gc.collect()
    assert n.tolist() == [2] * 5  # the export keeps the storage alive


def test_round_trip_numpy_dsk_numpy():
    a = np.linspace(0, 1, 10, dtype=np.float32)[::2]  # strided
    t = dsk.from_dlpack(a)
    assert t.strides == (2,) and not t.is_contiguous
    b = np.from_dlpack(t)
    assert b.ctypes.data == a.ctypes.data and b.strides == a.strides
    np.testing.assert_array_equal(a, b)


def test_read_only_import():
    a = np.arange(4, dtype=np.float32)
    a.flags.writeable = False
    t = dsk.from_dlpack(a)
    assert t.is_read_only
    with pytest.raises(dsk.UnsupportedError, match="read-only"):
        t.__dlpack__()  # legacy capsule cannot carry the read-only mark
    n = t.numpy()
    assert not n.flags.writeable and n.tolist() == [0, 1, 2, 3]
    assert t.view((2,)).is_read_only


def test_capsules():
    t = dsk.empty((3,), "f32")
    cap = t.__dlpack__(max_version=(1, 1))
    assert "dltensor_versioned" in repr(cap)
    legacy = t.__dlpack__()
    assert '"dltensor"' in repr(legacy)
    old = t.__dlpack__(max_version=(0, 8))
    assert '"dltensor"' in repr(old)
    # Unconsumed capsules free their export when collected.
    del cap, legacy, old
    gc.collect()
    imported = dsk.from_dlpack(_api._CapsuleProducer(t.__dlpack__(max_version=(1, 0)), (1, 0)))
    assert imported.data_ptr == t.data_ptr
    assert t.__dlpack_device__() == (1, 0)
    with pytest.raises(BufferError):
        t.__dlpack__(dl_device=(2, 0))
    c = np.from_dlpack(t, copy=True)
    assert c.ctypes.data != t.data_ptr


def test_consumed_capsule_cannot_be_reused():
    t = dsk.empty((3,), "f32")
    cap = t.__dlpack__(max_version=(1, 1))
    producer = _api._CapsuleProducer(cap, (1, 0))
    dsk.from_dlpack(producer)
    assert "used_dltensor_versioned" in repr(cap)
    with pytest.raises(dsk.InvalidArgumentError, match="capsule"):
        dsk.from_dlpack(producer)


def test_failed_import_leaves_capsule_to_its_owner():
    # A complex dtype is refused by dsk: the capsule must stay unconsumed (NumPy frees it).
    a = np.zeros(3, np.complex64)
    cap = a.__dlpack__(max_version=(1, 1))
    with pytest.raises(dsk.InvalidArgumentError):
        dsk.from_dlpack(_api._CapsuleProducer(cap, (1, 0)))
    assert "used" not in repr(cap)
    with pytest.raises(dsk.InvalidArgumentError):
        dsk.from_dlpack(np.zeros(2, np.float64))


def test_legacy_producer_fallback():
    class Legacy:
        def __init__(self, arr):
            self.arr = arr

        def __dlpack__(self, stream=None):
            return self.arr.__dlpack__()

        def __dlpack_device__(self):
            return self.arr.__dlpack_device__()

    a = np.arange(3, dtype=np.int64)
    t = dsk.from_dlpack(Legacy(a))
    assert t.data_ptr == a.ctypes.data and t.dtype == "int64"


def test_not_a_tensor():
    with pytest.raises(TypeError, match="DLPack"):
        dsk.fill(None, [1, 2, 3], 1.0)


@pytest.mark.parametrize("name,np_dtype", [
    ("f32", np.float32), ("f16", np.float16), ("int32", np.int32), ("int64", np.int64),
    ("uint8", np.uint8), ("bool", np.bool_),
])
def test_dtypes_numpy(ctx, name, np_dtype):
    t = dsk.empty((4,), name, ctx)
    dsk.fill(ctx, t, 1)
    n = t.numpy()
    assert n.dtype == np_dtype and n.tolist() == [1] * 4
    assert dsk.dtype_size(name) == n.itemsize
    assert dsk.dtype_name(name) == name
    assert dsk.dtype_from_id(dsk.dtype_id(name)) == name


@pytest.mark.parametrize("name,raw", [("bf16", np.uint16), ("fp8_e4m3fn", np.uint8),
                                      ("fp8_e5m2", np.uint8)])
def test_narrow_floats_as_raw_bits(ctx, name, raw):
    t = dsk.empty((3,), name, ctx)
    dsk.fill(ctx, t, 1.0)
    bits = t.numpy()
    assert bits.dtype == raw and bits.ctypes.data == t.data_ptr
    expected = {"bf16": 0x3F80, "fp8_e4m3fn": 0x38, "fp8_e5m2": 0x3C}[name]
    assert bits.tolist() == [expected] * 3
    back = dsk.clone(ctx, t, "f32").numpy()
    assert back.tolist() == [1.0] * 3


def test_convert_host_bytes():
    f32 = struct.pack("<4f", 1.0, -2.5, 1e30, float("nan"))
    bf16 = dsk.convert_host_bytes(f32, "f32", "bf16")
    assert struct.unpack("<4H", bf16)[:3] == (0x3F80, 0xC020, 0x714A)  # 1e30 = 0x7149F2CA rounds up
    e4m3 = dsk.convert_host_bytes(f32, "f32", "fp8_e4m3fn")
    assert e4m3[:3] == bytes([0x38, 0xC2, 0x7E])  # 1e30 saturates to 448
    e5m2 = dsk.convert_host_bytes(f32, "f32", "fp8_e5m2")
    assert e5m2[:3] == bytes([0x3C, 0xC1, 0x7B])  # saturates to 57344
    back = struct.unpack("<4f", dsk.convert_host_bytes(e4m3, "fp8_e4m3fn", "f32"))
    assert back[:3] == (1.0, -2.5, 448.0)
    with pytest.raises(dsk.InvalidArgumentError, match="whole number"):
        dsk.convert_host_bytes(b"\0\0\0", "f32", "f16")
    with pytest.raises(dsk.InvalidArgumentError):
        dsk.convert_host_bytes(b"\0" * 8, (5, 64, 1), "f32")  # complex128


def test_convert_host_tensors():
    src = np.array([1.0, 0.5, -3.0], np.float32)
    dst = np.zeros(3, np.int32)
    dsk.convert_host(src, dst)
    assert dst.tolist() == [1, 0, -3]
    with pytest.raises(dsk.InvalidArgumentError, match="elements"):
        dsk.convert_host(src, np.zeros(2, np.int32))
    with pytest.raises(dsk.InvalidArgumentError, match="contiguous"):
        dsk.convert_host(src[::2], np.zeros(2, np.int32))


def test_dtype_errors():
    with pytest.raises(dsk.InvalidArgumentError, match="unknown dtype"):
        dsk.empty((2,), "f64")
    with pytest.raises(dsk.InvalidArgumentError) as e:
        dsk.dtype_id((2, 64, 1))
    assert "dsk_dtype_to_id" in e.value.message
    with pytest.raises(dsk.InvalidArgumentError, match="dsk_dtype_from_id"):
        dsk.dtype_from_id(0)
    assert dsk.dtype_size((2, 64, 1)) == 0 and dsk.dtype_name((2, 64, 1)) == "unsupported"


def test_copy_clone_fill(ctx):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.zeros((2, 3), np.float16)
    dsk.copy(ctx, a, b)
    np.testing.assert_array_equal(a, b)
    c = dsk.clone(ctx, a)
    assert c.dtype == "f32" and c.data_ptr != a.ctypes.data
    np.testing.assert_array_equal(c.numpy(), a)
    with pytest.raises(dsk.InvalidArgumentError, match="shape"):
        dsk.copy(ctx, a, np.zeros((3, 2), np.float32))
    with pytest.raises(dsk.InvalidArgumentError):
        dsk.copy(ctx, a, a)  # overlapping src and dst


def test_fill_random(ctx):
    t = dsk.empty((1000,), "f32", ctx)
    dsk.fill_random(ctx, t, seed=42)
    u = t.numpy().copy()
    assert 0 <= u.min() and u.max() <= 1 and 0.4 < u.mean() < 0.6
    dsk.fill_random(ctx, t, seed=42)
    np.testing.assert_array_equal(t.numpy(), u)
    dsk.fill_random(ctx, t, seed=42, offset=1)
    assert not np.array_equal(t.numpy(), u)
    dsk.fill_random(ctx, t, seed=1, distribution="normal", a=5.0, b=0.1)
    assert 4.9 < t.numpy().mean() < 5.1
    dsk.fill_random(ctx, t, seed=1, a=-2.0, b=-1.0)
    assert t.numpy().max() <= -1.0
    with pytest.raises(dsk.InvalidArgumentError, match="distribution"):
        dsk.fill_random(ctx, t, seed=1, distribution="cauchy")
    with pytest.raises(dsk.InvalidArgumentError, match="dsk_fill_random"):
        dsk.fill_random(ctx, t, seed=1, distribution="normal", b=-1.0)
    with pytest.raises(dsk.InvalidArgumentError, match="floating"):
        dsk.fill_random(ctx, np.zeros(3, np.int32), seed=1)


def test_validate():
    dsk.validate(np.zeros((2, 2), np.float32))
    t = dsk.empty((9,) * 1, "f32")
    dsk.validate(t, "weights")


def test_errors_are_typed():
    assert issubclass(dsk.OutOfMemoryError, MemoryError)
    assert issubclass(dsk.InvalidArgumentError, dsk.Error)
    for cls in (dsk.UnsupportedError, dsk.BackendUnavailableError, dsk.DeviceError,
                dsk.VersionMismatchError, dsk.InternalError):
        assert issubclass(cls, dsk.Error)
    with pytest.raises(dsk.OutOfMemoryError) as e:
        dsk.empty((1 << 40, 1 << 20), "uint8")
    assert e.value.status == 3 and e.value.message
    assert dsk.last_error_message() == e.value.message
    with pytest.raises(dsk.InvalidArgumentError, match="ndim"):
        dsk.empty((1,) * 9, "f32")
    with pytest.raises(dsk.InvalidArgumentError):
        dsk.empty((-1,), "f32")


def test_struct_version_mismatch():
    # Reachable only through the raw table: the wrappers always set struct_size.
    info = dsk._ffi.dsk_backend_info()
    info.struct_size = 4
    status = dsk._ffi.lib.dsk_backend_get_info(1, ctypes.byref(info))
    assert status == dsk._ffi.DSK_ERR_VERSION_MISMATCH
    with pytest.raises(dsk.VersionMismatchError, match="struct_size"):
        _api._check(status)


def test_log_handler():
    seen = []
    dsk.set_log_handler(lambda level, msg: seen.append((level, msg)), max_level=4)
    try:
        with dsk.Context("cpu"):
            pass
        with pytest.raises(dsk.InvalidArgumentError):
            dsk.empty((-1,), "f32")
    finally:
        dsk.set_log_handler(None)
    assert all(isinstance(m, str) for _, m in seen)


def test_cuda_device_mismatch_from_cpu_context():
    # A CPU context cannot write CUDA memory; with no CUDA device we fake the device field.
    class FakeCuda:
        def __init__(self):
            self.arr = np.zeros(4, np.float32)

        def __dlpack__(self, stream=None, max_version=None, dl_device=None, copy=None):
            cap = self.arr.__dlpack__(max_version=(1, 1))
            ptr = ctypes.pythonapi.PyCapsule_GetPointer(ctypes.py_object(cap), b"dltensor_versioned")
            m = ctypes.cast(ptr, ctypes.POINTER(dsk._ffi.DLManagedTensorVersioned))
            m.contents.dl_tensor.device.device_type = dsk._ffi.kDLCUDA
            return cap

        def __dlpack_device__(self):
            return (2, 0)

    ctypes.pythonapi.PyCapsule_GetPointer.restype = ctypes.c_void_p
    with dsk.Context("cpu") as c, pytest.raises(dsk.InvalidArgumentError) as e:
        dsk.fill(c, FakeCuda(), 1.0)
    assert "device" in e.value.message
