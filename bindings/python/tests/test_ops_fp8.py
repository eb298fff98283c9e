"""FP8 block quantization and the FP8 linear layer against NumPy (dsk_ops.h, FP8)."""

import numpy as np
import pytest

import dsk


def e4m3(v):
    """Round f32 values to the nearest fp8 e4m3fn value (ties to even, saturating at +-448)."""
    v = np.asarray(v, np.float64)
    a = np.abs(v)
    # Exponent of each value, at least -6 (the subnormal range has the step of 2^-6's binade).
    e = np.floor(np.log2(np.where(a > 0, a, 1.0)))
    e = np.maximum(e, -6)
    step = 2.0 ** (e - 3)
    q = np.round(a / step) * step  # np.round rounds half to even
    q = np.minimum(q, 448.0)
    return (np.sign(v) * q).astype(np.float32)


def values(ctx, t):
    return dsk.clone(ctx, t, "f32").numpy()


def ref_act(x, pow2=False):
    """Reference per-tile quantization of x [M, K] (f32 steps as dsk_ops.h states)."""
    m, k = x.shape
    tiles = -(-k // 128)
    scales = np.zeros((m, tiles), np.float32)
    q = np.zeros_like(x)
    for i in range(m):
        for t in range(tiles):
            tile = x[i, t * 128:(t + 1) * 128]
            amax = np.float32(np.abs(tile).max())
            s = np.float32(amax / np.float32(448.0))
            if pow2 and s > 0:
                s = np.float32(2.0 ** np.ceil(np.log2(np.float64(s))))
            scales[i, t] = s
            if s > 0:
                q[i, t * 128:(t + 1) * 128] = e4m3(tile / s)
    return q, scales


def test_e4m3_reference_sanity():
    assert e4m3([448.0, 500.0, -1000.0, 1.0625, 1.1875, 2.0 ** -9, 2.0 ** -10]).tolist() == [
        448.0, 448.0, -448.0, 1.0, 1.25, 2.0 ** -9, 0.0]


def test_act_round_trip_of_representable_values_is_exact(ctx):
    # Tiles whose amax is 448 get scale 1, so e4m3-representable values survive unchanged; a
    # second row with amax 224 gets scale 0.5, which is exact too.
    rng = np.random.default_rng(0)
    row = e4m3(rng.uniform(-400, 400, 200).astype(np.float32))
    row[0], row[150] = 448.0, -448.0
    x = np.stack([row, row / 2]).astype(np.float32)
    q = dsk.empty((2, 200), "fp8_e4m3fn", ctx)
    scales = np.zeros((2, 2), np.float32)
    dsk.quant_fp8_act(ctx, x, q, scales)
    np.testing.assert_array_equal(scales, [[1.0, 1.0], [0.5, 0.5]])
    np.testing.assert_array_equal(values(ctx, q), np.stack([row, row]))
    back = np.zeros_like(x)
    dsk.dequant_fp8_act(ctx, q, scales, back)
    np.testing.assert_array_equal(back, x)


def test_act_quant_matches_reference(ctx):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((3, 300)) * 5).astype(np.float32)  # ragged last tile (44)
    x[2, 128:256] = 0.0  # a zero tile: scale 0, q 0
    for pow2 in (False, True):
        q = dsk.empty((3, 300), "fp8_e4m3fn", ctx)
        scales = np.full((3, 3), -1.0, np.float32)
        dsk.quant_fp8_act(ctx, x, q, scales, scale_pow2=pow2)
        rq, rs = ref_act(x, pow2)
        np.testing.assert_array_equal(scales, rs)
        np.testing.assert_array_equal(values(ctx, q), rq)
        assert scales[2, 1] == 0
        back = np.zeros_like(x)
        dsk.dequant_fp8_act(ctx, q, scales, back)
        # Error bounded by half an e4m3 step (2^-4 relative) of the scaled value.
        tile_scale = np.repeat(rs, 128, axis=1)[:, :300]
        assert (np.abs(back - x) <= np.abs(x) * 2.0 ** -4 + tile_scale * 2.0 ** -9).all()


def test_act_scales_may_be_column_major(ctx):
    # DeepGEMM wants the activation scales as a column-major [M, tiles] view.
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 256)).astype(np.float32)
    q = dsk.empty((6, 256), "fp8_e4m3fn", ctx)
    storage = np.zeros((2, 6), np.float32)
    dsk.quant_fp8_act(ctx, x, q, storage.T)
    rq, rs = ref_act(x)
    np.testing.assert_array_equal(storage.T, rs)
    back = np.zeros_like(x)
    dsk.dequant_fp8_act(ctx, q, storage.T, back)
    s_full = np.repeat(rs, 128, axis=1)
    np.testing.assert_array_equal(back, (rq * s_full).astype(np.float32))


def test_weight_round_trip_and_block_scales(ctx):
    rng = np.random.default_rng(2)
    w = (rng.standard_normal((130, 260))).astype(np.float32)  # ragged in both dimensions
    q = dsk.empty((130, 260), "fp8_e4m3fn", ctx)
    scales = np.zeros((2, 3), np.float32)
    dsk.quant_fp8_weight(ctx, w, q, scales)
    for bi in range(2):
        for bj in range(3):
            block = w[bi * 128:(bi + 1) * 128, bj * 128:(bj + 1) * 128]
            s = np.float32(np.float32(np.abs(block).max()) / np.float32(448.0))
            assert scales[bi, bj] == s
            np.testing.assert_array_equal(
                values(ctx, q)[bi * 128:(bi + 1) * 128, bj * 128:(bj + 1) * 128], e4m3(block / s))
    back = np.zeros_like(w)
    dsk.dequant_fp8_weight(ctx, q, scales, back)
    s_full = np.repeat(np.repeat(scales, 128, 0), 128, 1)[:130, :260]
    np.testing.assert_array_equal(back, (values(ctx, q) * s_full).astype(np.float32))
    pow2 = np.zeros((2, 3), np.float32)
    dsk.quant_fp8_weight(ctx, w, q, pow2, scale_pow2=True)
    assert (np.log2(pow2) == np.round(np.log2(pow2))).all() and (pow2 >= scales).all()


def test_linear_fp8_equals_dequantize_then_gemm(ctx):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 256)).astype(np.float32)
    w = rng.standard_normal((136, 256)).astype(np.float32)
    wq = dsk.empty((136, 256), "fp8_e4m3fn", ctx)
    ws = np.zeros((2, 2), np.float32)
    dsk.quant_fp8_weight(ctx, w, wq, ws)
    xq = dsk.empty((4, 256), "fp8_e4m3fn", ctx)
    xs = np.zeros((4, 2), np.float32)
    dsk.quant_fp8_act(ctx, x, xq, xs)
    wd, xd = np.zeros_like(w), np.zeros_like(x)
    dsk.dequant_fp8_weight(ctx, wq, ws, wd)
    dsk.dequant_fp8_act(ctx, xq, xs, xd)
    ref = xd.astype(np.float64) @ wd.T.astype(np.float64)
    # x already quantized
    y = np.zeros((4, 136), np.float32)
    dsk.linear_fp8(ctx, xq, wq, ws, y, x_scales=xs)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-3)
    # x quantized on the fly: the same tiles, so the same result
    y2 = np.zeros((4, 136), np.float32)
    dsk.linear_fp8(ctx, x, wq, ws, y2)
    np.testing.assert_allclose(y2, y, rtol=1e-5, atol=1e-5)
    # bf16 x, f32 and bf16 outputs: the bf16 output is the f32 one rounded once.
    xb = dsk.clone(ctx, x, "bf16")
    y3 = np.zeros((4, 136), np.float32)
    dsk.linear_fp8(ctx, xb, wq, ws, y3)
    yb = dsk.empty((4, 136), "bf16", ctx)
    dsk.linear_fp8(ctx, xb, wq, ws, yb)
    np.testing.assert_allclose(values(ctx, yb), y3, rtol=2.0**-8, atol=0)
    assert dsk.linear_fp8_kernel(ctx) == dsk.FP8_KERNEL_CPU_REFERENCE


def test_fp8_errors_name_the_argument(ctx):
    x = np.ones((2, 256), np.float32)
    q = dsk.empty((2, 256), "fp8_e4m3fn", ctx)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bscales\b"):
        dsk.quant_fp8_act(ctx, x, q, np.zeros((2, 3), np.float32))  # expected [2, 2]
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bq\b"):
        dsk.quant_fp8_act(ctx, x, np.zeros((2, 256), np.float32), np.zeros((2, 2), np.float32))
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bscales\b"):
        dsk.dequant_fp8_act(ctx, q, np.zeros((2, 2), np.float16), x)
    w = np.ones((130, 256), np.float32)
    wq = dsk.empty((130, 256), "fp8_e4m3fn", ctx)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bscales\b"):
        dsk.quant_fp8_weight(ctx, w, wq, np.zeros((1, 2), np.float32))  # expected [2, 2]
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bscales\b"):
        dsk.dequant_fp8_weight(ctx, wq, np.zeros((2, 3), np.float32), w)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bw_scales\b"):
        dsk.linear_fp8(ctx, x, wq, np.zeros((3, 2), np.float32), np.zeros((2, 130), np.float32))
    with pytest.raises(dsk.InvalidArgumentError):  # NaN in a tile is refused on the CPU
        dsk.quant_fp8_act(ctx, np.full((1, 4), np.nan, np.float32),
                          dsk.empty((1, 4), "fp8_e4m3fn", ctx), np.zeros((1, 1), np.float32))
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bflags\b"):  # flags with fp8 x
        dsk.linear_fp8(ctx, q, wq, np.zeros((2, 2), np.float32), np.zeros((2, 130), np.float32),
                       x_scales=np.zeros((2, 2), np.float32), scale_pow2=True)
