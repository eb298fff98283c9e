"""The core ops on CUDA against the CPU reference, same inputs (skipped without a CUDA device).

Tolerances: index results (argmax, top-k, embedding) and data movement (rope_table is computed
on the host and copied, quantization scales) are exact; float results within a few f32 ulps of
the row scale, bf16 GEMM within f32 accumulation-order differences, and the FP8 linear layer
within bf16 rounding of its dequantized operands (what DSK_FP8_KERNEL_DEQUANT_GEMM runs).
"""

import numpy as np
import pytest

import dsk

from conftest import requires_cuda

pytestmark = requires_cuda


@pytest.fixture
def cuda():
    with dsk.Context("cuda") as c:
        yield c


def on(ctx, a, dtype=None):
    return dsk.clone(ctx, a, dtype)


def test_gemm_and_linear_cuda(cuda, ctx):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 33, 70)).astype(np.float32)
    b = rng.standard_normal((70, 17)).astype(np.float32)
    outs = {}
    for c in (ctx, cuda):
        d = dsk.empty((3, 33, 17), "f32", c)
        dsk.gemm(c, on(c, a, "bf16"), on(c, b, "bf16"), d, alpha=0.5)
        outs[c.backend] = d.numpy()
    np.testing.assert_allclose(outs["cuda"], outs["cpu"], rtol=1e-4, atol=1e-4)
    w = rng.standard_normal((9, 70)).astype(np.float32)
    bias = rng.standard_normal(9).astype(np.float32)
    for c in (ctx, cuda):
        y = dsk.empty((3, 33, 9), "bf16", c)
        dsk.linear(c, on(c, a, "bf16"), on(c, w, "bf16"), y, bias=on(c, bias))
        outs[c.backend] = dsk.clone(c, y, "f32").numpy()
    np.testing.assert_allclose(outs["cuda"], outs["cpu"], rtol=2.0**-7, atol=1e-2)


def test_fp8_cuda(cuda, ctx):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((5, 300)) * 3).astype(np.float32)
    w = rng.standard_normal((200, 300)).astype(np.float32)
    res = {}
    for c in (ctx, cuda):
        q = dsk.empty((5, 300), "fp8_e4m3fn", c)
        s = dsk.empty((5, 3), "f32", c)
        dsk.quant_fp8_act(c, on(c, x), q, s, scale_pow2=True)
        wq = dsk.empty((200, 300), "fp8_e4m3fn", c)
        ws = dsk.empty((2, 3), "f32", c)
        dsk.quant_fp8_weight(c, on(c, w), wq, ws)
        xd = dsk.empty((5, 300), "f32", c)
        dsk.dequant_fp8_act(c, q, s, xd)
        wd = dsk.empty((200, 300), "f32", c)
        dsk.dequant_fp8_weight(c, wq, ws, wd)
        y = dsk.empty((5, 200), "f32", c)
        dsk.linear_fp8(c, on(c, x, "bf16"), wq, ws, y)
        res[c.backend] = (q.numpy(), s.numpy(), wq.numpy(), ws.numpy(), xd.numpy(), wd.numpy(),
                          y.numpy())
    for got, want in zip(res["cuda"][:6], res["cpu"][:6]):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(res["cuda"][6], res["cpu"][6], rtol=2e-2, atol=0.5)
    assert dsk.linear_fp8_kernel(cuda) in (dsk.FP8_KERNEL_BLOCK_SCALED,
                                           dsk.FP8_KERNEL_DEQUANT_GEMM)


def test_norms_and_activations_cuda(cuda, ctx):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 7, 96)).astype(np.float32)
    r = rng.standard_normal((4, 7, 96)).astype(np.float32)
    wt = rng.uniform(0.5, 1.5, 96).astype(np.float32)
    gu = (rng.standard_normal((4, 7, 192)) * 3).astype(np.float32)
    res = {}
    for c in (ctx, cuda):
        y = dsk.empty(x.shape, "f32", c)
        dsk.rmsnorm(c, on(c, x), on(c, wt), y)
        y2 = dsk.empty(x.shape, "f32", c)
        ro = dsk.empty(x.shape, "bf16", c)
        dsk.add_rmsnorm(c, on(c, x), on(c, r, "bf16"), on(c, wt), y2, ro)
        s = dsk.empty((4, 7, 96), "f32", c)
        dsk.swiglu_fused(c, on(c, gu), s)
        s2 = dsk.empty((4, 7, 96), "f32", c)
        dsk.swiglu(c, on(c, gu[..., :96]), on(c, gu[..., 96:]), s2)
        res[c.backend] = (y.numpy(), y2.numpy(), dsk.clone(c, ro, "f32").numpy(), s.numpy(),
                          s2.numpy())
    for got, want in zip(res["cuda"], res["cpu"]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_rope_cuda(cuda, ctx):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 4, 64)).astype(np.float32)
    pos = np.array([0, 5, 4095, 4096, 9000, 1], np.int64)
    res = {}
    for c in (ctx, cuda):
        cos = dsk.empty((10000, 32), "f32", c)
        sin = dsk.empty((10000, 32), "f32", c)
        dsk.rope_table(c, dsk.RopeConfig(), cos, sin)
        y = dsk.empty(x.shape, "bf16", c)
        dsk.rope_apply(c, on(c, x, "bf16"), on(c, pos), cos, sin, y, layout="half_split")
        res[c.backend] = (cos.numpy(), sin.numpy(), dsk.clone(c, y, "f32").numpy())
    np.testing.assert_array_equal(res["cuda"][0], res["cpu"][0])
    np.testing.assert_array_equal(res["cuda"][1], res["cpu"][1])
    np.testing.assert_allclose(res["cuda"][2], res["cpu"][2], rtol=2.0**-8, atol=1e-6)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bpositions\b"):
        c = cuda
        cos = dsk.empty((4, 32), "f32", c)
        dsk.rope_apply(c, on(c, x), on(c, pos), cos, cos, dsk.empty(x.shape, "f32", c))


def test_softmax_topk_embedding_cuda(cuda, ctx):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((3, 5, 1000)) * 4).astype(np.float32)
    x[0, 0, 10:20] = x[0, 0].max()  # ties
    table = rng.standard_normal((50, 24)).astype(np.float32)
    ids = rng.integers(0, 50, (3, 5)).astype(np.int32)
    res = {}
    for c in (ctx, cuda):
        p = dsk.empty(x.shape, "f32", c)
        dsk.softmax(c, on(c, x), p, temperature=0.8)
        lp = dsk.empty(x.shape, "f32", c)
        dsk.log_softmax(c, on(c, x), lp)
        am = dsk.empty((3, 5), "int64", c)
        dsk.argmax(c, on(c, x), am)
        ti = dsk.empty((3, 5, 8), "int32", c)
        tv = dsk.empty((3, 5, 8), "f32", c)
        dsk.topk(c, on(c, x), 8, ti, values=tv)
        e = dsk.empty((3, 5, 24), "bf16", c)
        dsk.embedding(c, on(c, table), on(c, ids), e)
        res[c.backend] = (p.numpy(), lp.numpy(), am.numpy(), ti.numpy(), tv.numpy(), e.numpy())
    got, want = res["cuda"], res["cpu"]
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-5)
    for g, w in zip(got[2:], want[2:]):
        np.testing.assert_array_equal(g, w)
