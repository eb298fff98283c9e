"""Softmax, log-softmax, argmax, top-k and embedding against NumPy (dsk_ops.h)."""

import numpy as np
import pytest

import dsk


def softmax_ref(x, t=1.0):
    z = x.astype(np.float64) / t
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def log_softmax_ref(x, t=1.0):
    z = x.astype(np.float64) / t
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_softmax_matches_numpy(ctx):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, 3, 50)) * 10).astype(np.float32)
    y = np.zeros_like(x)
    dsk.softmax(ctx, x, y)
    np.testing.assert_allclose(y, softmax_ref(x), rtol=1e-5, atol=1e-7)
    dsk.softmax(ctx, x, y, temperature=0.7)
    np.testing.assert_allclose(y, softmax_ref(x, 0.7), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-5)
    # Large values do not overflow (the row maximum is subtracted); in place.
    big = np.array([[1000.0, 1000.0, -1000.0]], np.float32)
    dsk.softmax(ctx, big, big)
    np.testing.assert_allclose(big, [[0.5, 0.5, 0.0]], atol=1e-7)


def test_log_softmax_matches_numpy(ctx):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((4, 33)) * 5).astype(np.float32)
    y = np.zeros_like(x)
    dsk.log_softmax(ctx, x, y, temperature=2.0)
    np.testing.assert_allclose(y, log_softmax_ref(x, 2.0), rtol=1e-5, atol=1e-5)


def test_softmax_bf16_and_strided(ctx):
    rng = np.random.default_rng(2)
    base = rng.standard_normal((6, 20)).astype(np.float32)
    x = base[::2, :16]  # strided rows
    yb = dsk.empty((3, 16), "bf16", ctx)
    dsk.softmax(ctx, x, yb)
    np.testing.assert_allclose(dsk.clone(ctx, yb, "f32").numpy(), softmax_ref(x),
                               rtol=2.0**-8, atol=1e-7)


def test_softmax_of_minus_inf_row_is_nan(ctx):
    x = np.array([[-np.inf, -np.inf], [0.0, -np.inf]], np.float32)
    y = np.zeros_like(x)
    dsk.softmax(ctx, x, y)
    assert np.isnan(y[0]).all()
    np.testing.assert_array_equal(y[1], [1.0, 0.0])


def test_argmax_ties_and_nan(ctx):
    x = np.array([[1.0, 3.0, 3.0, 2.0],
                  [5.0, 5.0, 5.0, 5.0],
                  [0.0, np.nan, 9.0, np.nan],
                  [-1.0, -2.0, -3.0, -0.5]], np.float32)
    for dt in (np.int32, np.int64):
        idx = np.full(4, -1, dt)
        dsk.argmax(ctx, x, idx)
        assert idx.tolist() == [1, 0, 1, 3]
    idx2 = np.zeros((2, 2), np.int64)
    dsk.argmax(ctx, x.reshape(2, 2, 4), idx2)
    assert idx2.tolist() == [[1, 0], [1, 3]]


def test_topk_matches_numpy_with_ties(ctx):
    x = np.array([[1.0, 4.0, 4.0, 2.0, 4.0, 0.0],
                  [0.5, -1.0, 3.0, 3.0, 9.0, 3.0]], np.float32)
    idx = np.zeros((2, 4), np.int64)
    vals = np.zeros((2, 4), np.float32)
    dsk.topk(ctx, x, 4, idx, values=vals)
    assert idx.tolist() == [[1, 2, 4, 3], [4, 2, 3, 5]]
    assert vals.tolist() == [[4.0, 4.0, 4.0, 2.0], [9.0, 3.0, 3.0, 3.0]]
    # Against a stable descending sort (ties to the lower index) on random rows.
    rng = np.random.default_rng(3)
    r = rng.integers(0, 6, (5, 40)).astype(np.float32)  # many ties
    i32 = np.zeros((5, 7), np.int32)
    dsk.topk(ctx, r, 7, i32)  # values omitted
    ref = np.argsort(-r, axis=-1, kind="stable")[:, :7]
    np.testing.assert_array_equal(i32, ref)
    # NaN counts as the largest value; k == N.
    n = np.array([[1.0, np.nan, 2.0]], np.float32)
    i3 = np.zeros((1, 3), np.int32)
    v3 = dsk.empty((1, 3), "bf16", ctx)
    dsk.topk(ctx, n, 3, i3, values=v3)
    assert i3.tolist() == [[1, 2, 0]]
    v = dsk.clone(ctx, v3, "f32").numpy()
    assert np.isnan(v[0, 0]) and v[0, 1:].tolist() == [2.0, 1.0]


def test_embedding_gathers_rows(ctx):
    table = np.arange(5 * 4, dtype=np.float32).reshape(5, 4)
    ids = np.array([[4, 0], [2, 2]], np.int64)
    out = np.zeros((2, 2, 4), np.float32)
    dsk.embedding(ctx, table, ids, out)
    np.testing.assert_array_equal(out, table[ids])
    outb = dsk.empty((3, 4), "bf16", ctx)
    dsk.embedding(ctx, dsk.clone(ctx, table, "bf16"), np.array([1, 3, 1], np.int32), outb)
    np.testing.assert_array_equal(dsk.clone(ctx, outb, "f32").numpy(), table[[1, 3, 1]])


def test_softmax_family_errors_name_the_argument(ctx):
    x = np.ones((2, 5), np.float32)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\by\b"):
        dsk.softmax(ctx, x, np.zeros((2, 4), np.float32))
    with pytest.raises(dsk.InvalidArgumentError, match=r"\btemperature\b"):
        dsk.log_softmax(ctx, x, np.zeros_like(x), temperature=0.0)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bindices\b"):
        dsk.argmax(ctx, x, np.zeros(2, np.float32))
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bk\b"):
        dsk.topk(ctx, x, 6, np.zeros((2, 6), np.int32))
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bids\b"):
        dsk.embedding(ctx, np.ones((3, 2), np.float32), np.array([0, 3], np.int32),
                      np.zeros((2, 2), np.float32))
