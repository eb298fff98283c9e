"""dsk.gemm and dsk.linear against NumPy (dsk_ops.h, GEMM)."""

import numpy as np
import pytest

import dsk


def _rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _bf16(ctx, a):
    """a rounded to bf16 and back (the values a bf16 operand holds)."""
    return dsk.clone(ctx, dsk.clone(ctx, a, "bf16"), "f32").numpy()


def test_gemm_matches_numpy(ctx):
    rng = np.random.default_rng(0)
    a, b = _rand(rng, 5, 7), _rand(rng, 7, 3)
    d = np.zeros((5, 3), np.float32)
    dsk.gemm(ctx, a, b, d)
    np.testing.assert_allclose(d, a @ b, rtol=1e-5, atol=1e-5)


def test_gemm_transposes_alpha_beta(ctx):
    rng = np.random.default_rng(1)
    at, bt = _rand(rng, 7, 5), _rand(rng, 3, 7)  # stored transposed
    c = _rand(rng, 5, 3)
    d = np.zeros((5, 3), np.float32)
    dsk.gemm(ctx, at, bt, d, c=c, trans_a=True, trans_b=True, alpha=0.5, beta=2.0)
    np.testing.assert_allclose(d, 0.5 * (at.T @ bt.T) + 2.0 * c, rtol=1e-5, atol=1e-5)
    # A transposed view works as well as the flag.
    d2 = np.zeros((5, 3), np.float32)
    dsk.gemm(ctx, at.T, bt.T, d2, c=c, alpha=0.5, beta=2.0)
    np.testing.assert_allclose(d2, d, rtol=1e-6, atol=1e-6)


def test_gemm_accumulates_in_place_and_strided_output(ctx):
    rng = np.random.default_rng(2)
    a, b = _rand(rng, 4, 6), _rand(rng, 6, 5)
    d0 = _rand(rng, 4, 5)
    d = d0.copy()
    dsk.gemm(ctx, a, b, d, c=d, beta=1.0)  # D += A @ B
    np.testing.assert_allclose(d, d0 + a @ b, rtol=1e-5, atol=1e-5)
    big = np.zeros((4, 10), np.float32)
    out = big[:, ::2]  # a strided output view
    dsk.gemm(ctx, a, b, out)
    np.testing.assert_allclose(big[:, ::2], a @ b, rtol=1e-5, atol=1e-5)
    assert (big[:, 1::2] == 0).all()


def test_gemm_batched_and_broadcast(ctx):
    rng = np.random.default_rng(3)
    a, b = _rand(rng, 3, 4, 6), _rand(rng, 3, 6, 2)
    d = np.zeros((3, 4, 2), np.float32)
    dsk.gemm(ctx, a, b, d)
    np.testing.assert_allclose(d, np.matmul(a, b), rtol=1e-5, atol=1e-5)
    w = _rand(rng, 6, 2)  # 2-D B used for every batch
    dsk.gemm(ctx, a, w, d)
    np.testing.assert_allclose(d, np.matmul(a, w), rtol=1e-5, atol=1e-5)


def test_gemm_k_zero_gives_beta_c(ctx):
    c = np.arange(6, dtype=np.float32).reshape(2, 3)
    d = np.full((2, 3), 7.0, np.float32)
    dsk.gemm(ctx, np.zeros((2, 0), np.float32), np.zeros((0, 3), np.float32), d, c=c, beta=3.0)
    np.testing.assert_array_equal(d, 3.0 * c)


def test_gemm_bf16_inputs_and_output(ctx):
    rng = np.random.default_rng(4)
    a, b = _rand(rng, 8, 16), _rand(rng, 16, 4)
    ab, bb = dsk.clone(ctx, a, "bf16"), dsk.clone(ctx, b, "bf16")
    ref = _bf16(ctx, a).astype(np.float64) @ _bf16(ctx, b).astype(np.float64)
    d = np.zeros((8, 4), np.float32)
    dsk.gemm(ctx, ab, bb, d)
    np.testing.assert_allclose(d, ref, rtol=1e-5, atol=1e-4)  # f32 accumulation
    db = dsk.empty((8, 4), "bf16", ctx)
    dsk.gemm(ctx, ab, bb, db)
    # Rounded once from the f32 result: within half a bf16 step of it.
    np.testing.assert_allclose(dsk.clone(ctx, db, "f32").numpy(), d, rtol=2.0**-8, atol=0)


def test_gemm_error_names_argument(ctx):
    a = np.zeros((2, 3), np.float32)
    b = np.zeros((4, 5), np.float32)  # K mismatch
    d = np.zeros((2, 5), np.float32)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bb\b"):
        dsk.gemm(ctx, a, b, d)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bb\b"):
        dsk.gemm(ctx, a, np.zeros((3, 5), np.int32), d)


def test_linear_matches_numpy(ctx):
    rng = np.random.default_rng(5)
    x, w, bias = _rand(rng, 2, 3, 8), _rand(rng, 5, 8), _rand(rng, 5)
    y = np.zeros((2, 3, 5), np.float32)
    dsk.linear(ctx, x, w, y, bias=bias)
    np.testing.assert_allclose(y, x @ w.T + bias, rtol=1e-5, atol=1e-5)
    y2 = np.zeros((2, 3, 5), np.float32)
    dsk.linear(None, x, w, y2)  # default CPU context, no bias
    np.testing.assert_allclose(y2, x @ w.T, rtol=1e-5, atol=1e-5)


def test_linear_error_names_argument(ctx):
    x = np.zeros((2, 8), np.float32)
    w = np.zeros((5, 7), np.float32)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bw\b"):
        dsk.linear(ctx, x, w, np.zeros((2, 5), np.float32))
