"""Mixture of Experts (dsk_moe.h) against NumPy: the gate (worked example checked by hand, then the
DeepSeek configs against a float64 reference), dispatch, permute/combine, the expert FFN, the whole
layer with and without a plan, load statistics and the bias update, and the expert-parallel
layout; each wrapper's errors name the argument."""

import ctypes
import gc
import re

import numpy as np
import pytest

import dsk
from dsk import _ffi


def _rand(rng, *shape, dtype=np.float32):
    return rng.uniform(-1, 1, shape).astype(dtype)


def _f32(ctx, t):
    return dsk.clone(ctx, t, "f32").numpy()


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def gate_ref(logits, bias, cfg):
    """dsk_moe.h's gate in float64 for f32 scores: ids [T, k], weights [T, k]."""
    e, k, g, tg = cfg.num_experts, cfg.top_k, cfg.n_group, cfg.topk_group
    ids = np.zeros((len(logits), k), np.int64)
    weights = np.zeros((len(logits), k))
    for t, row in enumerate(logits.astype(np.float64)):
        row = np.where(np.isfinite(row), row, -np.inf)
        if cfg.score_func == "softmax":
            m = row.max()
            p = np.exp(row - m) if np.isfinite(m) else np.zeros_like(row)
            s = p / p.sum() if p.sum() > 0 else p
        elif cfg.score_func == "sigmoid":
            s = _sigmoid(row)
        else:
            s = row
        sb = s + (bias.astype(np.float64) if bias is not None else 0.0)
        sb = np.where(np.isfinite(sb), sb, -np.inf)
        if g > 1:
            groups = sb.reshape(g, e // g)
            rule = cfg.group_rule
            if rule == "auto":
                rule = "top2sum" if bias is not None else "max"
            if rule == "max":
                gs = groups.max(1)
            else:
                top2 = -np.sort(-groups, 1)[:, :2]
                gs = top2.sum(1)
            keep = np.argsort(-gs, kind="stable")[:tg]
            mask = np.full(g, True)
            mask[keep] = False
            groups = groups.copy()
            groups[mask] = -np.inf
            sb = groups.reshape(e)
        pick = np.argsort(-sb, kind="stable")[:k]
        w = np.where(np.isfinite(sb[pick]), s[pick], 0.0)
        if cfg.renormalize:
            w = w / (w.sum() + 1e-20)
        ids[t] = pick
        weights[t] = w * cfg.routed_scaling_factor
    return ids, weights


def swiglu_ref(x, w1, w3, w2):
    """(silu(x @ w1.T) * (x @ w3.T)) @ w2.T in float64."""
    x, w1, w3, w2 = (a.astype(np.float64) for a in (x, w1, w3, w2))
    g = x @ w1.T
    return (g * _sigmoid(g) * (x @ w3.T)) @ w2.T


# --- the gate

# The worked example of dsk.hpp's test: E 8 in 4 groups of 2, k 2, 2 groups kept, sigmoid,
# renormalized, scale 2.5. Sigmoid scores of ROW0:
#   0.5, 0.7311, 0.2689, 0.8808, 0.6225, 0.1192, 0.9526, 0.0474
# s' = s + BIAS: 0.6, 0.7311, 0.2689, 0.8808, 0.9225, 0.4192, 0.3526, 0.0474
#   top2sum (auto with a bias): groups 1.3311, 1.1497, 1.3417, 0.4 -> groups 2, 0 -> ids 4, 1
#   max: groups 0.7311, 0.8808, 0.9225, 0.3526 -> groups 2, 1 -> ids 4, 3
#   no bias (auto = max of s): 0.7311, 0.8808, 0.6225, 0.9526 -> groups 3, 1 -> ids 6, 3
ROW0 = np.array([0, 1, -1, 2, 0.5, -2, 3, -3], np.float32)
BIAS = np.array([0.1, 0, 0, 0, 0.3, 0.3, -0.6, 0], np.float32)


def small_gate(**kw):
    return dsk.MoeGateConfig(**{"num_experts": 8, "top_k": 2, "n_group": 4, "topk_group": 2, **kw})


def _renorm(a, b, scale=2.5):
    sa, sb = _sigmoid(float(ROW0[a])), _sigmoid(float(ROW0[b]))
    return [scale * sa / (sa + sb), scale * sb / (sa + sb)]


def test_gate_config_presets():
    v3 = dsk.MoeGateConfig.deepseek_v3()
    assert v3 == dsk.MoeGateConfig()  # the dataclass defaults are the library's
    assert (v3.num_experts, v3.top_k, v3.n_group, v3.topk_group) == (256, 8, 8, 4)
    assert (v3.score_func, v3.group_rule, v3.renormalize) == ("sigmoid", "auto", True)
    assert v3.routed_scaling_factor == 2.5 and v3.score_dtype == "f32"
    v2 = dsk.MoeGateConfig.deepseek_v2()
    assert (v2.num_experts, v2.top_k, v2.n_group, v2.topk_group) == (160, 6, 8, 3)
    assert (v2.score_func, v2.renormalize, v2.routed_scaling_factor) == ("softmax", False, 16.0)
    lite = dsk.MoeGateConfig.deepseek_v2_lite()
    assert (lite.num_experts, lite.top_k, lite.n_group, lite.topk_group) == (64, 6, 1, 1)
    assert (lite.score_func, lite.renormalize, lite.routed_scaling_factor) == ("softmax", False, 1.0)
    raw = dsk.MoeGateConfig(score_func=dsk.MOE_SCORE_NONE, group_rule="top2sum",
                            score_dtype="bf16")._raw()
    assert raw.struct_size == ctypes.sizeof(_ffi.dsk_moe_gate_config)
    assert (raw.score_func, raw.group_rule) == (_ffi.DSK_MOE_SCORE_NONE, _ffi.DSK_MOE_GROUP_TOP2SUM)
    assert raw.score_dtype == _ffi.DSK_DTYPE_BF16
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bscore_func\b"):
        dsk.MoeGateConfig(score_func="relu")._raw()
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bgroup_rule\b"):
        dsk.MoeGateConfig(group_rule="min")._raw()


def test_gate_worked_example(ctx):
    logits = np.stack([ROW0, np.array([3, 3, 0, 0, 0, 0, 0, 0], np.float32)])
    ids = np.zeros((2, 2), np.int32)
    weights = np.zeros((2, 2), np.float32)
    flags = np.full(2, 9, np.uint8)
    dsk.moe_gate(ctx, small_gate(), logits, ids, weights, bias=BIAS, row_flags=flags)
    np.testing.assert_array_equal(ids, [[4, 1], [0, 1]])
    np.testing.assert_allclose(weights, [_renorm(4, 1), [1.25, 1.25]], rtol=1e-6)
    np.testing.assert_array_equal(flags, [0, 0])

    ids64 = np.zeros((2, 2), np.int64)
    dsk.moe_gate(ctx, small_gate(group_rule="max"), logits, ids64, weights, bias=BIAS)
    np.testing.assert_array_equal(ids64[0], [4, 3])
    np.testing.assert_allclose(weights[0], _renorm(4, 3), rtol=1e-6)

    dsk.moe_gate(ctx, small_gate(), logits, ids, weights)  # no bias: auto = max
    np.testing.assert_array_equal(ids[0], [6, 3])
    np.testing.assert_allclose(weights[0], _renorm(6, 3), rtol=1e-6)

    dsk.moe_gate(ctx, small_gate(renormalize=False, routed_scaling_factor=1.0), logits, ids,
                 weights, bias=BIAS)
    np.testing.assert_allclose(weights[0], _sigmoid(np.array([0.5, 1.0])), rtol=1e-6)

    # dsk tensors and bf16 logits (ROW0 is exact in bf16).
    lb = dsk.clone(ctx, logits, "bf16")
    ids_t = dsk.empty((2, 2), "int32", ctx)
    w_t = dsk.empty((2, 2), "f32", ctx)
    dsk.moe_gate(ctx, small_gate(), lb, ids_t, w_t, bias=BIAS)
    np.testing.assert_array_equal(ids_t.numpy(), [[4, 1], [0, 1]])


@pytest.mark.parametrize("name", ["v2_lite", "v2", "v3", "stress"])
def test_gate_matches_numpy(ctx, name):
    rng = np.random.default_rng({"v2_lite": 1, "v2": 2, "v3": 3, "stress": 4}[name])
    if name == "stress":
        cfg = dsk.MoeGateConfig(num_experts=256, top_k=16, n_group=16, topk_group=4,
                                score_func="sigmoid", routed_scaling_factor=1.0)
    else:
        cfg = getattr(dsk.MoeGateConfig, "deepseek_" + name)()
    t, e = 9, cfg.num_experts
    logits = (rng.standard_normal((t, e)) * 2).astype(np.float32)
    bias = (rng.standard_normal(e) * 0.1).astype(np.float32) if cfg.score_func == "sigmoid" \
        else None
    ids = np.zeros((t, cfg.top_k), np.int64)
    weights = np.zeros((t, cfg.top_k), np.float32)
    flags = np.zeros(t, np.uint8)
    dsk.moe_gate(ctx, cfg, logits, ids, weights, bias=bias, row_flags=flags)
    want_ids, want_w = gate_ref(logits, bias, cfg)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(weights, want_w, rtol=2e-6, atol=1e-7)
    assert (flags == 0).all()
    for row in ids:
        assert len(set(row)) == cfg.top_k


def test_gate_rows_without_finite_scores(ctx):
    cfg = dsk.MoeGateConfig(num_experts=8, top_k=2, n_group=1, topk_group=1, score_func="none",
                            renormalize=False, routed_scaling_factor=1.0)
    logits = np.full((3, 8), np.nan, np.float32)
    logits[1, 1] = 5.0  # one finite candidate
    logits[2] = np.arange(8)
    logits[2, 7] = np.inf  # counts as -inf
    ids = np.zeros((3, 2), np.int32)
    weights = np.zeros((3, 2), np.float32)
    flags = np.zeros(3, np.uint8)
    dsk.moe_gate(ctx, cfg, logits, ids, weights, row_flags=flags)
    np.testing.assert_array_equal(ids, [[0, 1], [1, 0], [6, 5]])
    np.testing.assert_array_equal(weights, [[0, 0], [5, 0], [6, 5]])
    assert flags[0] & dsk.MOE_ROW_NO_FINITE
    assert flags[1] == dsk.MOE_ROW_SHORT
    assert flags[2] == 0
    # T = 0.
    dsk.moe_gate(ctx, cfg, np.zeros((0, 8), np.float32), np.zeros((0, 2), np.int32),
                 np.zeros((0, 2), np.float32))


def test_gate_router(ctx):
    # w = I: the logits are x, the worked example.
    ids = np.zeros((1, 2), np.int32)
    weights = np.zeros((1, 2), np.float32)
    flags = np.zeros(1, np.uint8)
    dsk.moe_gate_router(ctx, small_gate(), ROW0[None], np.eye(8, dtype=np.float32), ids, weights,
                        bias=BIAS, row_flags=flags)
    np.testing.assert_array_equal(ids, [[4, 1]])
    np.testing.assert_allclose(weights, [_renorm(4, 1)], rtol=1e-6)
    # Random x and w against the float64 reference of x @ w.T.
    rng = np.random.default_rng(3)
    cfg = dsk.MoeGateConfig.deepseek_v2()
    x, w = _rand(rng, 6, 32), _rand(rng, 160, 32)
    ids = np.zeros((6, 6), np.int32)
    weights = np.zeros((6, 6), np.float32)
    dsk.moe_gate_router(ctx, cfg, x, w, ids, weights)
    want_ids, want_w = gate_ref(x.astype(np.float64) @ w.T.astype(np.float64), None, cfg)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(weights, want_w, rtol=1e-5)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bw\b"):
        dsk.moe_gate_router(ctx, cfg, x, w[:, :16], ids, weights)


def test_gate_errors_name_the_argument(ctx):
    logits = np.zeros((2, 8), np.float32)
    ids = np.zeros((2, 2), np.int32)
    weights = np.zeros((2, 2), np.float32)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\btop_k\b"):
        dsk.moe_gate(ctx, small_gate(topk_group=1, top_k=3), logits, np.zeros((2, 3), np.int32),
                     np.zeros((2, 3), np.float32))
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bn_group\b"):
        dsk.moe_gate(ctx, dsk.MoeGateConfig(num_experts=8, top_k=2, n_group=3, topk_group=1),
                     logits, ids, weights)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bids\b"):
        dsk.moe_gate(ctx, small_gate(), logits, np.zeros((2, 2), np.float32), weights)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bbias\b"):
        dsk.moe_gate(ctx, small_gate(), logits, ids, weights, bias=np.zeros(7, np.float32))


# --- dispatch, permute, combine

# Assignments a = t * k + j of IDS: a0 -> 4, a1 -> 1, a2 -> 1, a3 -> 6, a4 -> 6, a5 -> 4.
IDS = np.array([[4, 1], [1, 6], [6, 4]], np.int32)


def _dispatch(ctx, ids, e, cap, **kw):
    counts = np.full(e, -7, np.int32)
    offsets = np.full(e + 1, -7, np.int32)
    rows = np.full(cap, -7, np.int32)
    dsk.moe_dispatch(ctx, ids, e, counts, offsets, rows, **kw)
    return counts, offsets, rows


def test_dispatch_capacity():
    assert dsk.moe_dispatch_capacity(3, 2, 8) == 6
    assert dsk.moe_dispatch_capacity(3, 2, 8, block_size=4) == 6 + 6 * 3
    assert dsk.moe_dispatch_capacity(3, 2, 4, 4) == 6 + 4 * 3
    assert dsk.moe_dispatch_capacity(65536, 8, 256, 128) == 65536 * 8 + 256 * 127
    assert dsk.moe_dispatch_capacity(0, 8, 256, 128) == 0
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bnum_tokens\b"):
        dsk.moe_dispatch_capacity(-1, 2, 8)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bblock_size\b"):
        dsk.moe_dispatch_capacity(3, 2, 8, 0)
    with pytest.raises(dsk.InvalidArgumentError):
        dsk.moe_dispatch_capacity(2**62, 8, 256, 128)  # overflow


def test_dispatch_worked_example(ctx):
    dest = np.zeros((3, 2), np.int32)
    counts, offsets, rows = _dispatch(ctx, IDS, 8, 6, dest=dest)
    np.testing.assert_array_equal(counts, [0, 2, 0, 0, 2, 0, 2, 0])
    np.testing.assert_array_equal(offsets, [0, 0, 2, 2, 2, 4, 4, 6, 6])
    np.testing.assert_array_equal(rows, [1, 2, 0, 5, 3, 4])
    np.testing.assert_array_equal(dest, [[2, 0], [1, 4], [5, 3]])

    # Blocks of 4, int64 ids: each segment padded with the sentinel T * k = 6.
    cap = dsk.moe_dispatch_capacity(3, 2, 8, 4)
    blocks = np.zeros(cap // 4, np.int32)
    counts, offsets, rows = _dispatch(ctx, IDS.astype(np.int64), 8, cap, block_size=4,
                                      block_experts=blocks, dest=dest)
    np.testing.assert_array_equal(counts, [0, 2, 0, 0, 2, 0, 2, 0])
    np.testing.assert_array_equal(offsets, [0, 0, 4, 4, 4, 8, 8, 12, 12])
    want = np.full(cap, 6)
    want[:10] = [1, 2, 6, 6, 0, 5, 6, 6, 3, 4]
    np.testing.assert_array_equal(rows, want)
    np.testing.assert_array_equal(blocks, [1, 4, 6, -1, -1, -1])
    np.testing.assert_array_equal(dest, [[4, 0], [1, 8], [9, 5]])

    # This device owns experts 4 .. 7.
    counts, offsets, rows = _dispatch(ctx, IDS, 4, 6, expert_begin=4, dest=dest)
    np.testing.assert_array_equal(counts, [2, 0, 2, 0])
    np.testing.assert_array_equal(offsets, [0, 2, 2, 4, 4])
    np.testing.assert_array_equal(rows, [0, 5, 3, 4, 6, 6])
    np.testing.assert_array_equal(dest, [[0, -1], [-1, 2], [3, 1]])

    with pytest.raises(dsk.InvalidArgumentError, match=r"\bsorted_rows\b"):
        _dispatch(ctx, IDS, 8, 6, block_size=4)  # shorter than the capacity


@pytest.mark.parametrize("block_size,begin,local", [(1, 0, 12), (16, 0, 12), (4, 3, 5)])
def test_dispatch_matches_numpy(ctx, block_size, begin, local):
    rng = np.random.default_rng(block_size + begin)
    t, k = 11, 3
    ids = np.stack([rng.choice(12, k, replace=False) for _ in range(t)]).astype(np.int32)
    ids[2, 1] = -1  # dropped
    cap = dsk.moe_dispatch_capacity(t, k, local, block_size)
    blocks = np.zeros(-(-cap // block_size), np.int32)
    dest = np.zeros((t, k), np.int32)
    counts, offsets, rows = _dispatch(ctx, ids, local, cap, expert_begin=begin,
                                      block_size=block_size, block_experts=blocks, dest=dest)
    flat = ids.reshape(-1) - begin
    want_rows = np.full(cap, t * k)
    want_dest = np.full(t * k, -1)
    want_blocks = np.full(len(blocks), -1)
    at = 0
    for e in range(local):
        mine = np.nonzero(flat == e)[0]  # ascending assignment numbers: stable
        assert counts[e] == len(mine) and offsets[e] == at
        want_rows[at:at + len(mine)] = mine
        want_dest[mine] = at + np.arange(len(mine))
        size = -(-len(mine) // block_size) * block_size
        want_blocks[at // block_size:(at + size) // block_size] = e
        at += size
    assert offsets[local] == at
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_array_equal(dest.reshape(-1), want_dest)
    np.testing.assert_array_equal(blocks, want_blocks)


def test_permute_combine_round_trip(ctx):
    """x -> permute -> expert e scales its rows by e + 1 -> combine == sum_j w (id + 1) x."""
    rng = np.random.default_rng(4)
    t, k, e, d = 7, 3, 5, 130  # D crosses a 128 tile
    ids = np.stack([rng.choice(e, k, replace=False) for _ in range(t)]).astype(np.int32)
    w = _rand(rng, t, k)
    x = _rand(rng, t, d)
    cap = dsk.moe_dispatch_capacity(t, k, e, 4)
    dest = np.zeros((t, k), np.int32)
    counts, offsets, rows = _dispatch(ctx, ids, e, cap, block_size=4, dest=dest)
    y = np.full((cap, d), 9, np.float32)
    dsk.moe_permute(ctx, x, rows, k, y)
    pad = rows == t * k
    np.testing.assert_array_equal(y[~pad], x[rows[~pad] // k])
    assert (y[pad] == 0).all()
    for ex in range(e):
        y[offsets[ex]:offsets[ex + 1]] *= ex + 1
    out = np.zeros((t, d), np.float32)
    dsk.moe_combine(ctx, y, dest, w, out)
    want = (w * (ids + 1)).sum(1, dtype=np.float64)[:, None] * x
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    # With shared rows added, then in place on shared, into bf16.
    shared = _rand(rng, t, d)
    dsk.moe_combine(ctx, y, dest, w, out, shared=shared)
    np.testing.assert_allclose(out, want + shared, rtol=1e-5, atol=1e-6)
    ob = dsk.empty((t, d), "bf16", ctx)
    dsk.moe_combine(ctx, y, dest, w, ob, shared=shared)
    np.testing.assert_allclose(_f32(ctx, ob), want + shared, rtol=1 / 128, atol=1e-2)
    dsk.moe_combine(ctx, y, dest, w, shared, shared=shared)
    np.testing.assert_allclose(shared, out, rtol=1e-6, atol=1e-7)

    # fp8 out: every row quantized as quant_fp8_act does; padding rows q = 0, scale 0.
    q = dsk.empty((cap, d), "fp8_e4m3fn", ctx)
    scales = np.full((cap, 2), 5, np.float32)
    dsk.moe_permute(ctx, x, rows, k, q, out_scales=scales)
    gathered = np.where(pad[:, None], 0, x[np.minimum(rows, t * k - 1) // k]).astype(np.float32)
    q_ref = dsk.empty((cap, d), "fp8_e4m3fn", ctx)
    s_ref = np.zeros((cap, 2), np.float32)
    dsk.quant_fp8_act(ctx, gathered, q_ref, s_ref)
    np.testing.assert_array_equal(q.numpy(), q_ref.numpy())
    np.testing.assert_array_equal(scales, s_ref)
    assert (scales[pad] == 0).all() and (q.numpy()[pad] == 0).all()
    dsk.moe_permute(ctx, x, rows, k, q, out_scales=scales, scale_pow2=True)
    nz = scales[~pad]
    np.testing.assert_array_equal(nz, 2.0 ** np.round(np.log2(nz)))


def test_permute_combine_errors(ctx):
    x = np.ones((3, 4), np.float32)
    rows = np.array([1, 2, 0, 5, 3, 4], np.int32)
    y = np.full((6, 4), 7, np.float32)
    bad = rows.copy()
    bad[3] = 7  # > T * k
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bsorted_rows\b"):
        dsk.moe_permute(ctx, x, bad, 2, y)
    assert (y == 7).all()  # nothing written
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bout_scales\b"):
        dsk.moe_permute(ctx, x, rows, 2, y, out_scales=np.zeros((6, 1), np.float32))
    dest = np.array([[2, 0], [1, 4], [5, 3]], np.int32)
    w = np.ones((3, 2), np.float32)
    out = np.full((3, 4), 7, np.float32)
    bad_dest = dest.copy()
    bad_dest[1, 1] = 6  # >= R
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bdest\b"):
        dsk.moe_combine(ctx, y, bad_dest, w, out)
    bad_dest[1, 1] = -2
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bdest\b"):
        dsk.moe_combine(ctx, y, bad_dest, w, out)
    assert (out == 7).all()
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bweights\b"):
        dsk.moe_combine(ctx, y, dest, w.astype(np.float16), out)


# --- experts


def _experts_problem(rng, e=3, i=5, d=6):
    return _rand(rng, e, i, d), _rand(rng, e, i, d), _rand(rng, e, d, i)


def test_experts_float(ctx):
    rng = np.random.default_rng(5)
    w1, w3, w2 = _experts_problem(rng)
    r = 9
    x = _rand(rng, r, 6)
    offsets = np.array([0, 4, 4, 7], np.int32)  # expert 1 has no rows; rows 7, 8 are past the end
    y = np.full((r, 6), 7, np.float32)
    dsk.moe_experts(ctx, dsk.MoeExpertWeights(w1, w3, w2), x, offsets, y)
    want = np.full((r, 6), 7.0)
    for ex in range(3):
        sl = slice(offsets[ex], offsets[ex + 1])
        want[sl] = swiglu_ref(x[sl], w1[ex], w3[ex], w2[ex])
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)

    # A (w1, w3, w2) tuple; bf16 weights, x and y (gate/up/product rounded to bf16).
    wb = tuple(dsk.clone(ctx, a, "bf16") for a in (w1, w3, w2))
    xb = dsk.clone(ctx, x, "bf16")
    yb = dsk.empty((r, 6), "bf16", ctx)
    dsk.moe_experts(ctx, wb, xb, offsets, yb)
    vals = [_f32(ctx, a) for a in wb]
    xv = _f32(ctx, xb)
    for ex in range(3):
        sl = slice(offsets[ex], offsets[ex + 1])
        np.testing.assert_allclose(_f32(ctx, yb)[sl], swiglu_ref(xv[sl], *(v[ex] for v in vals)),
                                   rtol=3e-2, atol=2e-2)

    with pytest.raises(dsk.InvalidArgumentError, match=r"\bw2\b"):
        dsk.moe_experts(ctx, (w1, w3, w1), x, offsets, y)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\boffsets\b"):
        dsk.moe_experts(ctx, (w1, w3, w2), x, offsets[:3], y)
    with pytest.raises(TypeError):
        dsk.moe_experts(ctx, (w1, w3), x, offsets, y)


def _quant_experts(ctx, w):
    """fp8 copies of w [E, N, K] with their block scales [E, ceil(N/128), ceil(K/128)], and the
    dequantized values."""
    e, n, kk = w.shape
    q = dsk.empty(w.shape, "fp8_e4m3fn", ctx)
    s = np.zeros((e, -(-n // 128), -(-kk // 128)), np.float32)
    deq = np.zeros_like(w)
    for ex in range(e):
        qe = q.view((n, kk), offset=ex * n * kk)
        dsk.quant_fp8_weight(ctx, w[ex], qe, s[ex])
        dsk.dequant_fp8_weight(ctx, qe, s[ex], deq[ex])
    return q, s, deq


def _fp8_round_trip(ctx, a):
    """a quantized per 1 x 128 tile and back (the rounding the fp8 paths apply to activations)."""
    q = dsk.empty(a.shape, "fp8_e4m3fn", ctx)
    s = np.zeros(a.shape[:-1] + (-(-a.shape[-1] // 128),), np.float32)
    dsk.quant_fp8_act(ctx, np.ascontiguousarray(a, np.float32), q, s)
    out = np.zeros(a.shape, np.float32)
    dsk.dequant_fp8_act(ctx, q, s, out)
    return out


def test_experts_fp8(ctx):
    rng = np.random.default_rng(6)
    e, i, d, r = 2, 136, 130, 5  # two scale blocks along each dimension
    w1, w3, w2 = (a * 0.1 for a in _experts_problem(rng, e, i, d))
    (q1, s1, d1), (q3, s3, d3), (q2, s2, d2) = (_quant_experts(ctx, a) for a in (w1, w3, w2))
    x = _rand(rng, r, d)
    offsets = np.array([0, 2, 5], np.int32)
    weights = dsk.MoeExpertWeights(q1, q3, q2, w1_scales=s1, w3_scales=s3, w2_scales=s2)

    def reference(xq):
        want = np.zeros((r, d))
        for ex in range(e):
            sl = slice(offsets[ex], offsets[ex + 1])
            g = xq[sl].astype(np.float64) @ d1[ex].T
            h = (g * _sigmoid(g) * (xq[sl].astype(np.float64) @ d3[ex].T)).astype(np.float32)
            want[sl] = _fp8_round_trip(ctx, h).astype(np.float64) @ d2[ex].T
        return want

    # A float x, quantized on the fly.
    y = np.zeros((r, d), np.float32)
    dsk.moe_experts(ctx, weights, x, offsets, y)
    want = reference(_fp8_round_trip(ctx, x))
    np.testing.assert_allclose(y, want, rtol=5e-2, atol=5e-3)
    # An fp8 x with its tile scales (moe_permute's fp8 output).
    xq = dsk.empty((r, d), "fp8_e4m3fn", ctx)
    xs = np.zeros((r, 2), np.float32)
    dsk.quant_fp8_act(ctx, x, xq, xs)
    y2 = np.zeros((r, d), np.float32)
    dsk.moe_experts(ctx, weights, xq, offsets, y2, x_scales=xs)
    np.testing.assert_allclose(y2, y, rtol=1e-5, atol=1e-6)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bw1_scales\b"):
        dsk.moe_experts(ctx, (q1, q3, q2, None, s3, s2), x, offsets, y)


# --- the whole layer


class Layer:
    """T 6, D 16, E 8 in 4 groups (2 kept), k 2, I 8, sigmoid + bias, renormalized, scale 2.5;
    a shared expert of width 12."""

    def __init__(self, rng, dtype=np.float32):
        t, d, e, i, si = 6, 16, 8, 8, 12
        self.cfg = dsk.MoeGateConfig(num_experts=e, top_k=2, n_group=4, topk_group=2)
        self.x = _rand(rng, t, d, dtype=dtype)
        self.router = _rand(rng, e, d, dtype=dtype)
        self.bias = (rng.standard_normal(e) * 0.1).astype(np.float32)
        self.w = tuple(_rand(rng, *s, dtype=dtype) for s in ((e, i, d), (e, i, d), (e, d, i)))
        self.s = tuple(_rand(rng, *s, dtype=dtype) for s in ((si, d), (si, d), (d, si)))
        self.experts = dsk.MoeExpertWeights(*self.w)
        self.shared = dsk.MoeExpertWeights(*self.s)

    def gate(self):
        return gate_ref(self.x.astype(np.float64) @ self.router.T.astype(np.float64), self.bias,
                        self.cfg)

    def reference(self, ids, weights, shared=True):
        out = swiglu_ref(self.x, *self.s) if shared else np.zeros(self.x.shape)
        for t in range(len(self.x)):
            for j, ex in enumerate(ids[t]):
                out[t] += weights[t, j] * swiglu_ref(self.x[t:t + 1], *(a[ex] for a in self.w))[0]
        return out


def test_forward_matches_dense_layer(ctx):
    lay = Layer(np.random.default_rng(7))
    want_ids, want_w = lay.gate()
    want = lay.reference(want_ids, want_w)
    out = np.zeros(lay.x.shape, np.float32)
    ids = np.zeros((6, 2), np.int32)
    weights = np.zeros((6, 2), np.float32)
    with dsk.MoePlan(ctx, lay.cfg, lay.x, lay.router, lay.experts, out, shared=lay.shared) as plan:
        assert plan.workspace_size > 0
        plan.run(ctx, lay.x, lay.router, lay.experts, out, bias=lay.bias, shared=lay.shared,
                 ids=ids, weights=weights)
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_allclose(weights, want_w, rtol=1e-5)
        np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)
        # The module-level run with the workspace reserved; tuples for the weights.
        ctx.reserve_workspace(plan.workspace_size)
        out2 = np.zeros_like(out)
        dsk.moe_forward_run(ctx, plan, lay.x, lay.router, lay.w, out2, bias=lay.bias,
                            shared=lay.s)
        np.testing.assert_array_equal(out2, out)
        with pytest.raises(dsk.InvalidArgumentError, match=r"\bshared\b"):
            plan.run(ctx, lay.x, lay.router, lay.experts, out2, bias=lay.bias)
    out3 = np.zeros_like(out)
    dsk.moe_forward(ctx, lay.cfg, lay.x, lay.router, lay.experts, out3, bias=lay.bias,
                    shared=lay.shared)
    np.testing.assert_array_equal(out3, out)

    # Without shared experts, and without a bias (then auto = max: another routing).
    ids_nb, w_nb = gate_ref(lay.x.astype(np.float64) @ lay.router.T.astype(np.float64), None,
                            lay.cfg)
    routed = dsk.moe_plan(ctx, lay.cfg, lay.x, lay.router, lay.experts, out)
    routed.run(ctx, lay.x, lay.router, lay.experts, out, ids=ids)
    np.testing.assert_array_equal(ids, ids_nb)
    np.testing.assert_allclose(out, lay.reference(ids_nb, w_nb, shared=False), rtol=1e-4,
                               atol=1e-5)
    dsk.moe_forward(ctx, lay.cfg, lay.x, lay.router, lay.experts, out3)
    np.testing.assert_array_equal(out3, out)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bshared\b"):
        routed.run(ctx, lay.x, lay.router, lay.experts, out, shared=lay.shared)
    routed.close()


def test_forward_bf16(ctx):
    rng = np.random.default_rng(8)
    lay = Layer(rng)
    b = {k: dsk.clone(ctx, v, "bf16") for k, v in
         (("x", lay.x), ("router", lay.router), ("w1", lay.w[0]), ("w3", lay.w[1]),
          ("w2", lay.w[2]), ("s1", lay.s[0]), ("s3", lay.s[1]), ("s2", lay.s[2]))}
    out = dsk.empty((6, 16), "bf16", ctx)
    ids = np.zeros((6, 2), np.int32)
    weights = np.zeros((6, 2), np.float32)
    with dsk.moe_plan(ctx, lay.cfg, b["x"], b["router"], (b["w1"], b["w3"], b["w2"]), out,
                      shared=(b["s1"], b["s3"], b["s2"])) as plan:
        plan.run(ctx, b["x"], b["router"], (b["w1"], b["w3"], b["w2"]), out, bias=lay.bias,
                 shared=(b["s1"], b["s3"], b["s2"]), ids=ids, weights=weights)
    # The reference of the bf16 values, with the routing the layer chose (bf16 logits may
    # legitimately flip a near-tie).
    lay.x, lay.router = _f32(ctx, b["x"]), _f32(ctx, b["router"])
    lay.w = tuple(_f32(ctx, b[k]) for k in ("w1", "w3", "w2"))
    lay.s = tuple(_f32(ctx, b[k]) for k in ("s1", "s3", "s2"))
    want = lay.reference(ids, weights.astype(np.float64))
    np.testing.assert_allclose(_f32(ctx, out), want, rtol=5e-2, atol=5e-2)


def test_plan_lifetime(ctx, monkeypatch):
    lay = Layer(np.random.default_rng(9))
    out = np.zeros(lay.x.shape, np.float32)
    released = []
    real = _ffi.lib.dsk_moe_plan_release

    def counting(h):
        released.append(h)
        real(h)

    monkeypatch.setattr(_ffi.lib, "dsk_moe_plan_release", counting)
    plan = dsk.MoePlan(ctx, lay.cfg, lay.x, lay.router, lay.experts, out)
    h = plan.handle
    assert "workspace_size" in repr(plan)
    plan.close()
    plan.close()  # idempotent
    assert released == [h]
    with pytest.raises(ValueError, match="closed"):
        plan.workspace_size
    with pytest.raises(ValueError, match="closed"):
        plan.run(ctx, lay.x, lay.router, lay.experts, out)
    assert "closed" in repr(plan)

    p2 = dsk.MoePlan(ctx, lay.cfg, lay.x, lay.router, lay.experts, out)
    h2 = p2.handle
    del p2
    gc.collect()
    assert released == [h, h2]

    # The plan needs no particular context, only one on its device.
    with dsk.Context("cpu") as other:
        p3 = dsk.MoePlan(other, lay.cfg, lay.x, lay.router, lay.experts, out)
    p3.run(ctx, lay.x, lay.router, lay.experts, out)
    p3.close()

    lib, invalid = _ffi.lib, _ffi.DSK_ERR_INVALID_ARGUMENT
    assert lib.dsk_moe_plan_workspace_size(None, ctypes.byref(ctypes.c_size_t())) == invalid
    assert re.search(r"\bplan\b", dsk.last_error_message())
    real(None)  # a no-op

    with pytest.raises(dsk.InvalidArgumentError, match=r"\btop_k\b"):
        dsk.MoePlan(ctx, dsk.MoeGateConfig(num_experts=8, top_k=5, n_group=4, topk_group=2),
                    lay.x, lay.router, lay.experts, out)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\brouter_w\b"):
        dsk.MoePlan(ctx, lay.cfg, lay.x, lay.router[:, :8], lay.experts, out)


# --- load statistics, bias update, expert-parallel layout


def test_load_accumulate(ctx):
    ids = np.array([[4, 1], [1, 6], [6, -1]], np.int32)
    load = np.zeros(8, np.int64)
    dsk.moe_load_accumulate(ctx, ids, load)
    np.testing.assert_array_equal(load, [0, 2, 0, 0, 1, 0, 2, 0])
    dsk.moe_load_accumulate(ctx, ids.astype(np.int64), load)  # accumulates
    np.testing.assert_array_equal(load, [0, 4, 0, 0, 2, 0, 4, 0])
    local = np.zeros(4, np.int64)
    dsk.moe_load_accumulate(ctx, np.array([[4, 1], [1, 6], [6, 7]], np.int32), local,
                            expert_begin=4)
    np.testing.assert_array_equal(local, [1, 0, 2, 1])
    # Random ids against bincount.
    rng = np.random.default_rng(10)
    many = rng.integers(-1, 64, (100, 6)).astype(np.int64)
    load = np.zeros(64, np.int64)
    dsk.moe_load_accumulate(ctx, many, load)
    np.testing.assert_array_equal(load, np.bincount(many[many >= 0], minlength=64))
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bload\b"):
        dsk.moe_load_accumulate(ctx, ids, np.zeros(8, np.int32))


def test_bias_update_sign_rule(ctx):
    # mean = 16 / 8 = 2: overloaded experts lose gamma, underloaded ones gain it, equal ones keep.
    load = np.array([3, 1, 2, 2, 0, 4, 2, 2], np.int64)
    bias = np.array([0, 0, 0, 0, 0.5, -0.5, 1, 0], np.float32)
    dsk.moe_bias_update(ctx, load, bias, gamma=0.125)
    np.testing.assert_array_equal(bias, [-0.125, 0.125, 0, 0, 0.625, -0.625, 1, 0])
    # f32 loads and DeepSeek's gamma 0.001 (the default).
    b2 = np.zeros(3, np.float32)
    dsk.moe_bias_update(ctx, np.array([1.0, 3.0, 2.0], np.float32), b2)
    np.testing.assert_array_equal(b2, np.array([0.001, -0.001, 0], np.float32))
    dsk.moe_bias_update(ctx, load, bias, gamma=0.0)  # gamma 0: no change
    np.testing.assert_array_equal(bias, [-0.125, 0.125, 0, 0, 0.625, -0.625, 1, 0])
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bgamma\b"):
        dsk.moe_bias_update(ctx, load, bias, gamma=-0.001)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bgamma\b"):
        dsk.moe_bias_update(ctx, load, bias, gamma=float("inf"))
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bbias\b"):
        dsk.moe_bias_update(ctx, load, np.zeros(7, np.float32))


def test_ep_layout(ctx):
    # E 8 on 4 ranks: token 0 -> experts 4, 1 (ranks 2, 0); token 1 -> 1, 6 (ranks 0, 3);
    # token 2 -> 6 and nothing.
    ids = np.array([[4, 1], [1, 6], [6, -1]], np.int32)
    per_rank = np.zeros(4, np.int32)
    per_expert = np.zeros(8, np.int32)
    in_rank = np.zeros((3, 4), np.bool_)
    dsk.moe_ep_layout(ctx, ids, 8, 4, per_rank, per_expert, in_rank)
    np.testing.assert_array_equal(per_rank, [2, 0, 1, 2])
    np.testing.assert_array_equal(per_expert, [0, 2, 0, 0, 1, 0, 2, 0])
    np.testing.assert_array_equal(in_rank, [[1, 0, 1, 0], [1, 0, 0, 1], [0, 0, 0, 1]])
    # Random int64 ids, uint8 flags, against NumPy.
    rng = np.random.default_rng(11)
    many = rng.integers(-1, 32, (50, 4)).astype(np.int64)
    per_rank = np.zeros(8, np.int32)
    per_expert = np.zeros(32, np.int32)
    in_rank8 = np.zeros((50, 8), np.uint8)
    dsk.moe_ep_layout(ctx, many, 32, 8, per_rank, per_expert, in_rank8)
    want_in = np.zeros((50, 8), np.uint8)
    for t, row in enumerate(many):
        for ex in row[row >= 0]:
            want_in[t, ex // 4] = 1
    np.testing.assert_array_equal(in_rank8, want_in)
    np.testing.assert_array_equal(per_rank, want_in.sum(0))
    np.testing.assert_array_equal(per_expert, np.bincount(many[many >= 0], minlength=32))

    bad = ids.copy()
    bad[1, 1] = 8
    per_rank[:] = 5
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bids\b"):
        dsk.moe_ep_layout(ctx, bad, 8, 4, per_rank[:4], per_expert[:8], in_rank)
    assert (per_rank == 5).all()  # nothing written
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bnum_ranks\b"):
        dsk.moe_ep_layout(ctx, ids, 8, 3, np.zeros(3, np.int32), np.zeros(8, np.int32),
                          np.zeros((3, 3), np.bool_))
