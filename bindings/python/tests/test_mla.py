"""MLA attention (dsk_mla.h) against NumPy: absorbed paged decode with and without a plan, cache
append, weight absorption, latent decompression and MHA-form prefill, each against a float64
formula, plus the identity that ties them together (absorbed decode == MHA over decompressed
keys and values)."""

import ctypes
import gc
import math
import re

import numpy as np
import pytest

import dsk
from dsk import _ffi

F16 = np.float16


def _rand(rng, *shape, dtype=np.float32):
    return rng.uniform(-1, 1, shape).astype(dtype)


def _f32(ctx, t):
    return dsk.clone(ctx, t, "f32").numpy()


def _attend(q, keys, vals, scale):
    """softmax(q . keys * scale) @ vals in float64, and the log-sum-exp; (0, -inf) for no keys."""
    if len(keys) == 0:
        return np.zeros(vals.shape[-1]), -np.inf
    s = keys.astype(np.float64) @ q.astype(np.float64) * scale
    m = s.max()
    p = np.exp(s - m)
    return p @ vals.astype(np.float64) / p.sum(), m + math.log(p.sum())


def decode_ref(q, cache, block_table, seqlens, dv, scale, causal):
    """dsk_mla.h's decode: q [B, S, Hq, D], cache [P, page, Hkv, D] -> out [B, S, Hq, Dv],
    lse [B, Hq, S]."""
    b_, s_, hq, _ = q.shape
    page, hkv = cache.shape[1], cache.shape[2]
    out = np.zeros((b_, s_, hq, dv))
    lse = np.zeros((b_, hq, s_))
    for b in range(b_):
        n = int(seqlens[b])
        rows = np.stack([cache[block_table[b, t // page], t % page] for t in range(n)]) if n else \
            np.zeros((0, hkv, cache.shape[3]), cache.dtype)
        for j in range(s_):
            length = max(0, n - s_ + j + 1) if causal else n
            for h in range(hq):
                k = rows[:length, h // (hq // hkv)]
                out[b, j, h], lse[b, h, j] = _attend(q[b, j, h], k, k[:, :dv], scale)
    return out, lse


def decode_problem(rng, b=2, s=1, hq=2, hkv=1, d=16, dv=8, page=16, seqlens=(5, 20),
                   block_table=((2, 0), (1, 0)), num_pages=3, dtype=F16):
    """A paged cache with NaN at every position no request owns."""
    q = _rand(rng, b, s, hq, d, dtype=dtype)
    cache = np.full((num_pages, page, hkv, d), np.nan, dtype)
    bt = np.array(block_table, np.int32)
    for i, n in enumerate(seqlens):
        for t in range(n):
            cache[bt[i, t // page], t % page] = _rand(rng, hkv, d, dtype=dtype)
    return q, cache, bt, np.array(seqlens, np.int32)


# --- softmax scale


def test_softmax_scale_deepseek_v3():
    m = 0.1 * 1.0 * math.log(40.0) + 1.0
    v3 = dsk.mla_softmax_scale(192, 40.0, 1.0, True)
    assert v3 == np.float32(m * m / math.sqrt(192))
    assert v3 == pytest.approx(0.1352338, rel=1e-6)
    assert dsk.mla_softmax_scale(192) == np.float32(1 / math.sqrt(192))
    assert dsk.mla_softmax_scale(192, 40.0, 1.0, use_yarn=False) == dsk.mla_softmax_scale(192)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bqk_head_dim\b"):
        dsk.mla_softmax_scale(0)


# --- decode


@pytest.mark.parametrize("s,hq,hkv,causal", [(1, 2, 1, False), (2, 4, 2, True), (3, 2, 1, True),
                                             (2, 2, 2, False)])
def test_decode_plan_run_matches_naive(ctx, s, hq, hkv, causal):
    rng = np.random.default_rng(s * 10 + hq)
    q, cache, bt, sl = decode_problem(rng, s=s, hq=hq, hkv=hkv)
    out = np.zeros((2, s, hq, 8), F16)
    lse = np.zeros((2, hq, s), np.float32)
    scale = 0.3
    want, want_lse = decode_ref(q, cache, bt, sl, 8, scale, causal)
    with dsk.MlaDecodePlan(ctx, q, cache, bt, sl, out) as plan:
        assert plan.num_splits >= 1
        assert plan.workspace_size >= 0
        plan.run(ctx, q, cache, bt, sl, scale, out, causal=causal, lse=lse)
        np.testing.assert_allclose(out, want, rtol=2 / 1024, atol=1e-3)
        np.testing.assert_allclose(lse, want_lse, rtol=1e-5, atol=1e-5)
        # The module-level run, with the plan's workspace reserved and no lse.
        ctx.reserve_workspace(plan.workspace_size)
        out2 = np.zeros_like(out)
        dsk.mla_decode_run(ctx, plan, q, cache, bt, sl, scale, out2, causal=causal)
        np.testing.assert_array_equal(out2, out)
    out3 = np.zeros_like(out)
    lse3 = np.zeros_like(lse)
    dsk.mla_decode(ctx, q, cache, bt, sl, scale, out3, causal=causal, lse=lse3)
    np.testing.assert_array_equal(out3, out)
    np.testing.assert_array_equal(lse3, lse)


def test_decode_bf16_dsk_tensors(ctx):
    rng = np.random.default_rng(5)
    q, cache, bt, sl = decode_problem(rng, dtype=np.float32)
    qb, cb = dsk.clone(ctx, q, "bf16"), dsk.clone(ctx, cache, "bf16")
    out = dsk.empty((2, 1, 2, 8), "bf16", ctx)
    want, _ = decode_ref(_f32(ctx, qb), _f32(ctx, cb), bt, sl, 8, 0.25, False)
    dsk.mla_decode(ctx, qb, cb, bt, sl, 0.25, out)
    np.testing.assert_allclose(_f32(ctx, out), want, rtol=1 / 128, atol=1e-3)


def test_plan_serves_other_seqlens_and_page_counts(ctx):
    rng = np.random.default_rng(6)
    q, cache, bt, sl = decode_problem(rng)
    out = np.zeros((2, 1, 2, 8), F16)
    plan = dsk.mla_decode_plan(ctx, q, cache, bt, sl, out)
    assert isinstance(plan, dsk.MlaDecodePlan)
    # Another step: other lengths (one empty request) and a larger cache, same plan.
    q2, cache2, _, sl2 = decode_problem(rng, seqlens=(0, 17), num_pages=5)
    lse = np.zeros((2, 2, 1), np.float32)
    plan.run(ctx, q2, cache2, bt, sl2, 0.5, out, lse=lse)
    want, want_lse = decode_ref(q2, cache2, bt, sl2, 8, 0.5, False)
    np.testing.assert_allclose(out, want, rtol=2 / 1024, atol=1e-3)
    np.testing.assert_allclose(lse, want_lse, rtol=1e-5, atol=1e-5)
    assert (out[0] == 0).all() and (lse[0] == -np.inf).all()  # nothing to attend to
    plan.close()


def test_plan_lifetime(ctx, monkeypatch):
    rng = np.random.default_rng(7)
    q, cache, bt, sl = decode_problem(rng)
    out = np.zeros((2, 1, 2, 8), F16)
    released = []
    real = _ffi.lib.dsk_mla_decode_plan_release

    def counting(h):
        released.append(h)
        real(h)

    monkeypatch.setattr(_ffi.lib, "dsk_mla_decode_plan_release", counting)
    plan = dsk.MlaDecodePlan(ctx, q, cache, bt, sl, out)
    h = plan.handle
    plan.close()
    plan.close()  # idempotent
    assert released == [h]
    with pytest.raises(ValueError, match="closed"):
        plan.workspace_size
    with pytest.raises(ValueError, match="closed"):
        plan.run(ctx, q, cache, bt, sl, 1.0, out)
    assert "closed" in repr(plan)

    with dsk.MlaDecodePlan(ctx, q, cache, bt, sl, out) as p2:
        h2 = p2.handle
        assert "num_splits" in repr(p2)
    assert released == [h, h2]

    p3 = dsk.MlaDecodePlan(ctx, q, cache, bt, sl, out)
    h3 = p3.handle
    del p3
    gc.collect()
    assert released == [h, h2, h3]

    # The plan needs no particular context, only one on its device.
    with dsk.Context("cpu") as other:
        p4 = dsk.MlaDecodePlan(other, q, cache, bt, sl, out)
    p4.run(ctx, q, cache, bt, sl, 1.0, out)
    p4.close()


def test_null_plan_is_the_library_error():
    lib, invalid = _ffi.lib, _ffi.DSK_ERR_INVALID_ARGUMENT
    assert lib.dsk_mla_decode_plan_workspace_size(None, ctypes.byref(ctypes.c_size_t())) == invalid
    assert re.search(r"\bplan\b", dsk.last_error_message())
    assert lib.dsk_mla_decode_plan_num_splits(None, ctypes.byref(ctypes.c_int32())) == invalid
    assert re.search(r"\bplan\b", dsk.last_error_message())
    lib.dsk_mla_decode_plan_release(None)  # a no-op


def test_decode_errors_name_the_argument(ctx):
    rng = np.random.default_rng(8)
    q, cache, bt, sl = decode_problem(rng)
    out = np.zeros((2, 1, 2, 8), F16)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bblock_table\b"):
        dsk.MlaDecodePlan(ctx, q, cache, bt.astype(np.float32), sl, out)
    with dsk.mla_decode_plan(ctx, q, cache, bt, sl, out) as plan:
        with pytest.raises(dsk.InvalidArgumentError, match=r"\bsoftmax_scale\b"):
            plan.run(ctx, q, cache, bt, sl, 0.0, out)
        with pytest.raises(dsk.InvalidArgumentError, match=r"\bsoftmax_scale\b"):
            dsk.mla_decode_run(ctx, plan, q, cache, bt, sl, float("nan"), out)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\blse\b"):
        dsk.mla_decode(ctx, q, cache, bt, sl, 1.0, out, lse=np.zeros((2, 2, 2), np.float32))
    # A page the request needs outside [0, num_pages): refused before anything is written.
    bad = bt.copy()
    bad[1, 1] = 3
    out[:] = 7
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bblock_table\b"):
        dsk.mla_decode(ctx, q, cache, bad, sl, 1.0, out)
    assert (out == 7).all()


# --- cache append


def test_cache_append_writes_the_slots(ctx):
    rng = np.random.default_rng(9)
    t, h, dv, dr, page, pages = 3, 2, 8, 8, 16, 2
    cache = np.zeros((pages, page, h, dv + dr), F16)
    c_kv, k_pe = _rand(rng, t, h, dv), _rand(rng, t, h, dr)
    slots = np.array([17, -1, 3], np.int64)  # token 1 is padding
    dsk.mla_cache_append(ctx, c_kv, k_pe, slots, cache)
    want = np.zeros_like(cache)
    for i, s in enumerate(slots):
        if s >= 0:
            want[s // page, s % page] = np.concatenate([c_kv[i], k_pe[i]], -1).astype(F16)
    np.testing.assert_array_equal(cache, want)

    # The 2-D forms ([T, Dv], [T, Dr]) for a single cached head, into a bf16 cache.
    cb = dsk.empty((pages, page, 1, dv + dr), "bf16", ctx)
    dsk.fill(ctx, cb, 0.0)
    dsk.mla_cache_append(ctx, c_kv[:, 0], k_pe[:, 0], np.array([0, 31, 5], np.int64), cb)
    got = _f32(ctx, cb)
    rounded = _f32(ctx, dsk.clone(ctx, np.concatenate([c_kv[:, 0], k_pe[:, 0]], -1), "bf16"))
    np.testing.assert_array_equal(got[0, 0, 0], rounded[0])
    np.testing.assert_array_equal(got[1, 15, 0], rounded[1])
    np.testing.assert_array_equal(got[0, 5, 0], rounded[2])
    assert np.count_nonzero(got) == np.count_nonzero(rounded)

    before = cache.copy()
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bslot_mapping\b"):
        dsk.mla_cache_append(ctx, c_kv, k_pe, np.array([0, 1, pages * page], np.int64), cache)
    np.testing.assert_array_equal(cache, before)


# --- weight absorption and decompression


def _heads(w, h, dn, dv):
    """W_UK [H, dn, Dc] and W_UV [H, dv, Dc] of wkv_b [H * (dn + dv), Dc]."""
    blocks = w.astype(np.float64).reshape(h, dn + dv, -1)
    return blocks[:, :dn], blocks[:, dn:]


def test_absorb_q_and_out(ctx):
    rng = np.random.default_rng(10)
    t, h, dn, dv, dc = 3, 2, 4, 3, 8
    w = _rand(rng, h * (dn + dv), dc)
    wuk, wuv = _heads(w, h, dn, dv)
    q_nope = _rand(rng, t, h, dn)
    q_latent = np.zeros((t, h, dc), np.float32)
    dsk.mla_absorb_q(ctx, q_nope, w, q_latent)
    np.testing.assert_allclose(q_latent, np.einsum("thi,hic->thc", q_nope, wuk), rtol=1e-5,
                               atol=1e-6)
    # Into the first Dc columns of a decode q buffer (a strided view), as dsk_mla.h suggests.
    qbuf = np.full((t, h, dc + 2), 5.0, np.float32)
    dsk.mla_absorb_q(ctx, q_nope, w, qbuf[..., :dc])
    np.testing.assert_allclose(qbuf[..., :dc], q_latent, rtol=1e-6, atol=1e-7)
    assert (qbuf[..., dc:] == 5).all()

    o_latent = _rand(rng, t, h, dc)
    o = np.zeros((t, h, dv), np.float32)
    dsk.mla_absorb_out(ctx, o_latent, w, o)
    np.testing.assert_allclose(o, np.einsum("thc,hjc->thj", o_latent, wuv), rtol=1e-5, atol=1e-6)

    # fp8 weights with their block scales give what the dequantized weights give.
    wq = dsk.empty(w.shape, "fp8_e4m3fn", ctx)
    ws = np.zeros((1, 1), np.float32)
    dsk.quant_fp8_weight(ctx, w, wq, ws)
    wd = np.zeros_like(w)
    dsk.dequant_fp8_weight(ctx, wq, ws, wd)
    got, ref = np.zeros_like(q_latent), np.zeros_like(q_latent)
    dsk.mla_absorb_q(ctx, q_nope, wq, got, wkv_b_scale=ws)
    dsk.mla_absorb_q(ctx, q_nope, wd, ref)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    got_o, ref_o = np.zeros_like(o), np.zeros_like(o)
    dsk.mla_absorb_out(ctx, o_latent, wq, got_o, wkv_b_scale=ws)
    dsk.mla_absorb_out(ctx, o_latent, wd, ref_o)
    np.testing.assert_allclose(got_o, ref_o, rtol=1e-5, atol=1e-6)

    with pytest.raises(dsk.InvalidArgumentError, match=r"\bwkv_b_scale\b"):
        dsk.mla_absorb_q(ctx, q_nope, w, q_latent, wkv_b_scale=ws)  # float weights take none
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bo\b"):
        dsk.mla_absorb_out(ctx, o_latent, w, np.zeros((t, h, dv), np.int32))


def test_decompress_kv(ctx):
    rng = np.random.default_rng(11)
    t, h, dn, dv, dc, dr = 4, 2, 4, 3, 8, 2
    w = _rand(rng, h * (dn + dv), dc)
    wuk, wuv = _heads(w, h, dn, dv)
    # c_kv and k_pe as column views of a contiguous latent cache [T, Dc + Dr].
    latent = _rand(rng, t, dc + dr)
    c_kv, k_pe = latent[:, :dc], latent[:, dc:]
    k = np.zeros((t, h, dn + dr), np.float32)
    v = np.zeros((t, h, dv), np.float32)
    dsk.mla_decompress_kv(ctx, c_kv, w, k, v, k_pe=k_pe)
    k_nope = np.einsum("tc,hic->thi", c_kv, wuk)
    np.testing.assert_allclose(k[..., :dn], k_nope, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(k[..., dn:], np.broadcast_to(k_pe[:, None], (t, h, dr)))
    np.testing.assert_allclose(v, np.einsum("tc,hjc->thj", c_kv, wuv), rtol=1e-5, atol=1e-6)
    # Without k_pe, k holds the dn decompressed values only.
    kn = np.zeros((t, h, dn), np.float32)
    dsk.mla_decompress_kv(ctx, c_kv, w, kn, v)
    np.testing.assert_allclose(kn, k_nope, rtol=1e-5, atol=1e-6)
    with pytest.raises(dsk.InvalidArgumentError, match=r"\bv\b"):
        dsk.mla_decompress_kv(ctx, c_kv, w, kn, np.zeros((t, h, dv), np.int32))


# --- prefill


def prefill_ref(q, k, v, cu_q, cu_k, scale, causal):
    tq, h, _ = q.shape
    hk = k.shape[1]
    out = np.zeros((tq, h, v.shape[2]))
    lse = np.zeros((h, tq))
    for b in range(len(cu_q) - 1):
        nq, nk = cu_q[b + 1] - cu_q[b], cu_k[b + 1] - cu_k[b]
        for j in range(nq):
            length = max(0, nk - nq + j + 1) if causal else nk
            row = cu_q[b] + j
            for hh in range(h):
                keys = k[cu_k[b]:cu_k[b] + length, hh // (h // hk)]
                vals = v[cu_k[b]:cu_k[b] + length, hh // (h // hk)]
                out[row, hh], lse[hh, row] = _attend(q[row, hh], keys, vals, scale)
    return out, lse


@pytest.mark.parametrize("causal", [False, True])
def test_prefill_matches_naive(ctx, causal):
    rng = np.random.default_rng(12)
    h, hk, dqk, dv = 4, 2, 8, 8
    cu_q = np.array([0, 2, 5, 6], np.int32)
    cu_k = np.array([0, 3, 6, 6], np.int32)  # request 2 has no keys: out 0, lse -inf
    q = _rand(rng, 6, h, dqk, dtype=F16)
    k = _rand(rng, 6, hk, dqk, dtype=F16)
    v = _rand(rng, 6, hk, dv, dtype=F16)
    out = np.zeros((6, h, dv), F16)
    lse = np.zeros((h, 6), np.float32)
    dsk.mla_prefill(ctx, q, k, v, cu_q, 0.4, out, causal=causal, cu_seqlens_k=cu_k, lse=lse)
    want, want_lse = prefill_ref(q, k, v, cu_q, cu_k, 0.4, causal)
    np.testing.assert_allclose(out, want, rtol=2 / 1024, atol=1e-3)
    np.testing.assert_allclose(lse, want_lse, rtol=1e-5, atol=1e-5)
    assert (out[5] == 0).all() and (lse[:, 5] == -np.inf).all()

    # cu_seqlens_k None means cu_seqlens_q (keys [Tq, ...]); lse optional.
    out2 = np.zeros_like(out)
    dsk.mla_prefill(ctx, q, k, v, cu_q, 0.4, out2, causal=causal)
    want2, _ = prefill_ref(q, k, v, cu_q, cu_q, 0.4, causal)
    np.testing.assert_allclose(out2, want2, rtol=2 / 1024, atol=1e-3)

    with pytest.raises(dsk.InvalidArgumentError, match=r"\bcu_seqlens_q\b"):
        dsk.mla_prefill(ctx, q, k, v, np.array([0, 4, 2, 6], np.int32), 0.4, out, causal=causal)


# --- everything together


@pytest.mark.parametrize("s,causal", [(1, False), (3, True)])
def test_absorbed_decode_equals_mha_over_decompressed_kv(ctx, s, causal):
    """Latent cache + absorb_q + decode + absorb_out == prefill over decompress_kv's k and v."""
    rng = np.random.default_rng(13 + s)
    h, dn, dvh, dc, dr, page, n = 4, 8, 8, 16, 8, 16, 21
    w = (_rand(rng, h * (dn + dvh), dc) * 0.5).astype(np.float32)
    c_kv, k_pe = _rand(rng, n, dc), _rand(rng, n, dr)
    q_nope, q_pe = _rand(rng, s, h, dn), _rand(rng, s, h, dr)
    scale = dsk.mla_softmax_scale(dn + dr)

    # Absorbed path: the tokens into pages 1 and 0 of a 2-page cache, f16 throughout.
    cache = np.full((2, page, 1, dc + dr), np.nan, F16)
    slots = np.array([(1 if t < page else 0) * page + t % page for t in range(n)], np.int64)
    dsk.mla_cache_append(ctx, c_kv, k_pe, slots, cache)
    q = np.zeros((1, s, h, dc + dr), np.float32)
    dsk.mla_absorb_q(ctx, q_nope, w, q[0, :, :, :dc])
    q[0, :, :, dc:] = q_pe
    o_latent = np.zeros((1, s, h, dc), F16)
    bt = np.array([[1, 0]], np.int32)
    sl = np.array([n], np.int32)
    dsk.mla_decode(ctx, q.astype(F16), cache, bt, sl, scale, o_latent, causal=causal)
    o = np.zeros((s, h, dvh), np.float32)
    dsk.mla_absorb_out(ctx, o_latent[0], w, o)

    # MHA path: per-head keys [k_nope | k_pe] and values from the latents.
    k = np.zeros((n, h, dn + dr), np.float32)
    v = np.zeros((n, h, dvh), np.float32)
    dsk.mla_decompress_kv(ctx, c_kv, w, k, v, k_pe=k_pe)
    qm = np.concatenate([q_nope, q_pe], -1).astype(F16)
    out = np.zeros((s, h, dvh), F16)
    dsk.mla_prefill(ctx, qm, k.astype(F16), v.astype(F16), np.array([0, s], np.int32), scale, out,
                    causal=causal, cu_seqlens_k=np.array([0, n], np.int32))
    np.testing.assert_allclose(o, out.astype(np.float32), rtol=2e-2, atol=1e-2)
