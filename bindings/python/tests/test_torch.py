import pytest

import dsk

torch = pytest.importorskip("torch")


def test_torch_to_dsk_zero_copy(ctx):
    x = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    t = dsk.from_dlpack(x)
    assert t.data_ptr == x.data_ptr() and t.shape == (2, 3)
    dsk.fill(ctx, x, 4.0)
    assert bool((x == 4).all())


def test_dsk_to_torch_zero_copy(ctx):
    t = dsk.empty((4,), "bf16", ctx)
    dsk.fill(ctx, t, 1.5)
    y = torch.from_dlpack(t)
    assert y.dtype == torch.bfloat16 and y.data_ptr() == t.data_ptr
    assert y.tolist() == [1.5] * 4


def test_torch_dtypes(ctx):
    for td, name in [(torch.float16, "f16"), (torch.bfloat16, "bf16"), (torch.int64, "int64"),
                     (torch.bool, "bool")]:
        t = dsk.from_dlpack(torch.zeros(3, dtype=td))
        assert t.dtype == name


@pytest.mark.skipif(dsk.device_count("cuda") == 0 or not torch.cuda.is_available(),
                    reason="no CUDA device")
def test_torch_cuda_round_trip():
    with dsk.Context("cuda") as c:
        x = torch.zeros(8, device="cuda")
        dsk.fill_random(c, x, seed=3)
        c.synchronize()
        t = dsk.clone(c, x, "bf16")
        y = torch.from_dlpack(t)
        assert y.device.type == "cuda" and y.data_ptr() == t.data_ptr
        torch.testing.assert_close(y.float(), x, atol=1e-2, rtol=1e-2)
