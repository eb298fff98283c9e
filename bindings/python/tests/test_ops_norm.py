"""RMSNorm, fused add + RMSNorm and SwiGLU against NumPy (dsk_ops.h, normalization/activations)."""

import numpy as np
import pytest

import dsk


def rms_ref(x, w, eps):
    x64 = x.astype(np.float64)
    return x64 / np.sqrt((x64 * x64).mean(-1, keepdims=True) + eps) * w.astype(np.float64)


def silu_mul_ref(g, u):
    g64 = g.astype(np.float64)
    return g64 / (1.0 + np.exp(-g64)) * u.astype(np.float64)


def test_rmsnorm_formula(ctx):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 64)).astype(np.float32)
    w = rng.uniform(0.5, 1.5, 64).astype(np.float32)
    y = np.zeros_like(x)
    dsk.rmsnorm(ctx, x, w, y, eps=1e-5)
    np.testing.assert_allclose(y, rms_ref(x, w, 1e-5), rtol=1e-5, atol=1e-6)
    # Worked numbers: [3, 4] -> mean square 12.5
    y2 = np.zeros(2, np.float32)
    dsk.rmsnorm(ctx, np.array([3.0, 4.0], np.float32), np.array([1.0, 2.0], np.float32), y2,
                eps=0.0)
    np.testing.assert_allclose(y2, [3 / np.sqrt(12.5), 8 / np.sqrt(12.5)], rtol=1e-6)


def test_rmsnorm_in_place_strided_and_bf16(ctx):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((4, 40)).astype(np.float32)
    x = base[:, :32]  # rows with a stride of 40
    w = np.ones(32, np.float32)
    ref = rms_ref(x, w, 1e-6)
    dsk.rmsnorm(ctx, x, w, x)  # in place, into the strided view
    np.testing.assert_allclose(base[:, :32], ref, rtol=1e-5, atol=1e-6)
    xb = dsk.clone(ctx, rng.standard_normal((3, 16)).astype(np.float32), "bf16")
    yb = dsk.empty((3, 16), "bf16", ctx)
    dsk.rmsnorm(ctx, xb, w[:16], yb)
    xf = dsk.clone(ctx, xb, "f32").numpy()
    np.testing.assert_allclose(dsk.clone(ctx, yb, "f32").numpy(), rms_ref(xf, w[:16], 1e-6),
                               rtol=2.0**-8, atol=1e-6)


def test_add_rmsnorm(ctx):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 48)).astype(np.float32)
    res = rng.standard_normal((5, 48)).astype(np.float32)
    w = rng.uniform(0.5, 1.5, 48).astype(np.float32)
    y = np.zeros_like(x)
    res_out = np.zeros_like(x)
    dsk.add_rmsnorm(ctx, x, res, w, y, res_out, eps=1e-6)
    h = x + res
    np.testing.assert_array_equal(res_out, h)
    np.testing.assert_allclose(y, rms_ref(h, w, 1e-6), rtol=1e-5, atol=1e-6)
    # In place: residual_out = residual, y = x.
    x2, r2 = x.copy(), res.copy()
    dsk.add_rmsnorm(ctx, x2, r2, w, x2, r2, eps=1e-6)
    np.testing.assert_array_equal(r2, h)
    np.testing.assert_allclose(x2, y, rtol=1e-6, atol=1e-7)


def test_add_rmsnorm_rounds_the_residual_to_its_dtype(ctx):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 32)).astype(np.float32)
    res = dsk.clone(ctx, rng.standard_normal((2, 32)).astype(np.float32), "bf16")
    res_out = dsk.empty((2, 32), "bf16", ctx)
    y = np.zeros((2, 32), np.float32)
    w = np.ones(32, np.float32)
    dsk.add_rmsnorm(ctx, x, res, w, y, res_out)
    h = dsk.clone(ctx, res_out, "f32").numpy()
    expect_h = dsk.clone(ctx, dsk.clone(ctx, x + dsk.clone(ctx, res, "f32").numpy(), "bf16"),
                         "f32").numpy()
    np.testing.assert_array_equal(h, expect_h)
    np.testing.assert_allclose(y, rms_ref(h, w, 1e-6), rtol=1e-5, atol=1e-6)


def test_swiglu_and_fused(ctx):
    rng = np.random.default_rng(4)
    g = rng.standard_normal((3, 24)).astype(np.float32) * 4
    u = rng.standard_normal((3, 24)).astype(np.float32)
    y = np.zeros_like(g)
    dsk.swiglu(ctx, g, u, y)
    np.testing.assert_allclose(y, silu_mul_ref(g, u), rtol=1e-5, atol=1e-6)
    gu = np.concatenate([g, u], axis=-1)
    y2 = np.zeros_like(g)
    dsk.swiglu_fused(ctx, gu, y2)
    np.testing.assert_allclose(y2, y, rtol=1e-6, atol=1e-7)
    # Worked numbers: silu(0) = 0, silu(1) * 2 = 2 / (1 + e^-1)
    y3 = np.zeros(2, np.float32)
    dsk.swiglu(ctx, np.array([0.0, 1.0], np.float32), np.array([5.0, 2.0], np.float32), y3)
    np.testing.assert_allclose(y3, [0.0, 2.0 / (1.0 + np.exp(-1.0))], rtol=1e-6)


def test_norm_errors_name_the_argument(ctx):
    x = np.ones((2, 8), np.float32)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bweight\b"):
        dsk.rmsnorm(ctx, x, np.ones(7, np.float32), np.zeros_like(x))
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bresidual\b"):
        dsk.add_rmsnorm(ctx, x, np.ones((2, 9), np.float32), np.ones(8, np.float32),
                        np.zeros_like(x), np.zeros_like(x))
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bup\b"):
        dsk.swiglu(ctx, x, np.ones((2, 8), np.int32), np.zeros_like(x))
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bgate_up\b"):
        dsk.swiglu_fused(ctx, np.ones((2, 7), np.float32), np.zeros((2, 3), np.float32))
