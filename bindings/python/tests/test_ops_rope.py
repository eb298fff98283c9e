"""RoPE with YaRN: the table against a float64 transcription of DeepSeek-V3's
precompute_freqs_cis, and rope_apply against a direct complex multiplication."""

import math

import numpy as np
import pytest

import dsk


def table_ref(cfg, positions):
    """cos/sin [P, dim/2] in float64 (dsk_ops.h formula; the reference's steps, without f32)."""
    dim, theta = cfg.dim, cfg.theta
    freqs = 1.0 / theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    attn = 1.0
    if cfg.factor > 1:
        def cd(r):
            return dim * math.log(cfg.original_seq_len / (r * 2 * math.pi)) / (2 * math.log(theta))

        low = max(math.floor(cd(cfg.beta_fast)), 0)
        high = min(math.ceil(cd(cfg.beta_slow)), dim - 1)
        if low == high:
            high += 0.001
        ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - low) / (high - low), 0, 1)
        smooth = 1 - ramp
        freqs = freqs / cfg.factor * (1 - smooth) + freqs * smooth

        def m(s):
            return 1.0 if s == 0 else 0.1 * s * math.log(cfg.factor) + 1.0

        attn = m(cfg.mscale) / m(cfg.mscale_all_dim)
    ang = np.outer(np.asarray(positions, np.float64), freqs)
    return np.cos(ang) * attn, np.sin(ang) * attn


def test_config_defaults_are_deepseek_v3():
    c = dsk.RopeConfig()
    assert c == dsk.RopeConfig.deepseek_v3()
    assert (c.dim, c.theta, c.factor, c.original_seq_len) == (64, 10000.0, 40.0, 4096)
    assert (c.beta_fast, c.beta_slow, c.mscale, c.mscale_all_dim) == (32.0, 1.0, 1.0, 1.0)


@pytest.mark.parametrize("cfg", [
    dsk.RopeConfig(),
    dsk.RopeConfig(factor=1.0),  # no YaRN
    dsk.RopeConfig(dim=32, theta=50000.0, factor=8.0, original_seq_len=512, mscale=0.707,
                   mscale_all_dim=1.0),
])
def test_rope_table_matches_reference(ctx, cfg):
    p = 40
    cos = np.zeros((p, cfg.dim // 2), np.float32)
    sin = np.zeros((p, cfg.dim // 2), np.float32)
    dsk.rope_table(ctx, cfg, cos, sin)
    rc, rs = table_ref(cfg, range(p))
    # f32 frequencies and angles: |angle error| <= a few ulp of p * freq.
    np.testing.assert_allclose(cos, rc, rtol=0, atol=2e-5)
    np.testing.assert_allclose(sin, rs, rtol=0, atol=2e-5)
    assert cos[0, 0] == pytest.approx(rc[0, 0]) and sin[0, 0] == 0


def test_rope_table_default_config(ctx):
    cos = np.zeros((4, 32), np.float32)
    sin = np.zeros((4, 32), np.float32)
    dsk.rope_table(None, None, cos, sin)
    rc, rs = table_ref(dsk.RopeConfig(), range(4))
    np.testing.assert_allclose(cos, rc, atol=2e-6)
    np.testing.assert_allclose(sin, rs, atol=2e-6)


def rotate_ref(x, positions, cos, sin, layout):
    x = x.astype(np.float64)
    d = x.shape[-1]
    if layout == "interleaved":
        a, b = x[..., 0::2], x[..., 1::2]
    else:
        a, b = x[..., : d // 2], x[..., d // 2:]
    c = cos[positions].astype(np.float64)
    s = sin[positions].astype(np.float64)
    if x.ndim == 3:
        c, s = c[:, None, :], s[:, None, :]
    z = (a + 1j * b) * (c + 1j * s)
    out = np.empty_like(x)
    if layout == "interleaved":
        out[..., 0::2], out[..., 1::2] = z.real, z.imag
    else:
        out[..., : d // 2], out[..., d // 2:] = z.real, z.imag
    return out


@pytest.mark.parametrize("layout", ["interleaved", "half_split"])
@pytest.mark.parametrize("pos_dtype", [np.int32, np.int64])
def test_rope_apply_is_a_complex_multiplication(ctx, layout, pos_dtype):
    rng = np.random.default_rng(0)
    cfg = dsk.RopeConfig(dim=16)
    cos = np.zeros((50, 8), np.float32)
    sin = np.zeros((50, 8), np.float32)
    dsk.rope_table(ctx, cfg, cos, sin)
    positions = np.array([0, 7, 49, 3, 3], pos_dtype)
    x = rng.standard_normal((5, 3, 16)).astype(np.float32)
    y = np.zeros_like(x)
    dsk.rope_apply(ctx, x, positions, cos, sin, y, layout=layout)
    np.testing.assert_allclose(y, rotate_ref(x, positions, cos, sin, layout), rtol=1e-5,
                               atol=1e-6)
    # [T, D], in place
    x2 = x[:, 0, :].copy()
    ref2 = rotate_ref(x2, positions, cos, sin, layout)
    dsk.rope_apply(ctx, x2, positions, cos, sin, x2, layout=layout)
    np.testing.assert_allclose(x2, ref2, rtol=1e-5, atol=1e-6)
    # Position 0 is the identity.
    z = np.zeros_like(x)
    dsk.rope_apply(ctx, x, np.zeros(5, pos_dtype), cos, sin, z, layout=layout)
    np.testing.assert_array_equal(z, x)


def test_rope_layout_constants(ctx):
    assert dsk.ROPE_INTERLEAVED == 0 and dsk.ROPE_HALF_SPLIT == 1
    cos = np.ones((2, 2), np.float32)
    sin = np.zeros((2, 2), np.float32)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    y = np.zeros_like(x)
    dsk.rope_apply(ctx, x, np.array([0, 1], np.int32), cos, sin, y, layout=dsk.ROPE_HALF_SPLIT)
    np.testing.assert_array_equal(y, x)
    with pytest.raises(dsk.InvalidArgumentError, match="layout"):
        dsk.rope_apply(ctx, x, np.array([0, 1], np.int32), cos, sin, y, layout="sideways")


def test_rope_errors_name_the_argument(ctx):
    cos = np.ones((4, 8), np.float32)
    sin = np.zeros((4, 8), np.float32)
    x = np.ones((2, 16), np.float32)
    y = np.zeros_like(x)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bpositions\b"):
        dsk.rope_apply(ctx, x, np.array([0, 4], np.int32), cos, sin, y)  # 4 is outside [0, 4)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bpositions\b"):
        dsk.rope_apply(ctx, x, np.array([0, 1], np.float32), cos, sin, y)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\blayout\b"):
        dsk.rope_apply(ctx, x, np.array([0, 1], np.int32), cos, sin, y, layout=7)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bdim\b"):
        dsk.rope_table(ctx, dsk.RopeConfig(dim=15), np.zeros((4, 7), np.float32),
                       np.zeros((4, 7), np.float32))
