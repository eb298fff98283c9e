"""Token sampling (dsk_sampling.h) through dsk.sample, sampling_logits, sampling_probs and
speculative_verify on the CPU backend: facts that follow from the header's definitions by hand
(greedy = argmax with ties to the lower id, top-k 1 = argmax, a seed reproduces its tokens in any
batch, penalties / bias / mask move a close argmax, logprobs are log_softmax over the kept set, the
greedy verification chain), the conveniences of the Python layer (scalars or per-row values, CSR
built from lists, boolean masks packed, outputs allocated or written in place), and errors that
name the argument."""

import ctypes
import math

import numpy as np
import pytest

import dsk
from dsk import _ffi

from conftest import requires_cuda

# Two rows of 6 logits: row 0 ties for the maximum at ids 1 and 4; row 1's maximum is id 5.
LOGITS = np.array([[0.5, 2.0, -1.0, 1.0, 2.0, 0.0],
                   [-3.0, 0.25, 1.5, 0.75, -0.5, 1.75]], dtype=np.float32)


def _log_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    m = x.max()
    return x - m - math.log(np.exp(x - m).sum())


def _rand_logits(b, v, seed=0):
    return np.random.default_rng(seed).normal(0, 2, (b, v)).astype(np.float32)


# --- the structs


def test_init_functions_fill_the_library_defaults():
    p = _ffi.dsk_sampling_params()
    assert _ffi.lib.dsk_sampling_params_init(ctypes.byref(p)) == 0
    assert p.struct_size == ctypes.sizeof(_ffi.dsk_sampling_params)
    assert (p.temperature, p.top_k, p.top_p, p.min_p) == (1.0, 0, 1.0, 0.0)
    assert (p.repetition_penalty, p.frequency_penalty, p.presence_penalty) == (1.0, 0.0, 0.0)
    assert (p.seed, p.offset) == (0, 0)
    assert not p.temperatures and not p.seeds and not p.allowed_mask and not p.bias_values
    o = _ffi.dsk_sampling_outputs()
    assert _ffi.lib.dsk_sampling_outputs_init(ctypes.byref(o)) == 0
    assert o.struct_size == ctypes.sizeof(_ffi.dsk_sampling_outputs)
    assert o.top_source == dsk.LOGPROBS_PROCESSED and not o.ids and not o.status
    v = _ffi.dsk_verify_params()
    assert _ffi.lib.dsk_verify_params_init(ctypes.byref(v)) == 0
    assert v.struct_size == ctypes.sizeof(_ffi.dsk_verify_params)
    assert (v.mode, v.seed, v.offset) == (dsk.VERIFY_SAMPLE, 0, 0)
    assert not v.seeds and not v.offsets
    for init in ("dsk_sampling_params_init", "dsk_sampling_outputs_init", "dsk_verify_params_init"):
        assert getattr(_ffi.lib, init)(None) == _ffi.DSK_ERR_INVALID_ARGUMENT
    assert dsk.SAMPLE_MAX_TOP_LOGPROBS == 64
    assert (dsk.SAMPLE_OK, dsk.SAMPLE_ALL_MASKED, dsk.SAMPLE_NONFINITE, dsk.SAMPLE_INVALID) == (
        0, 1, 2, 3)


# --- dsk.sample


def test_greedy_is_argmax_with_ties_to_the_lower_id(ctx):
    ids = dsk.sample(ctx, LOGITS, temperature=0)
    assert isinstance(ids, dsk.Tensor) and ids.dtype == "int32" and ids.shape == (2,)
    assert ids.numpy().tolist() == [1, 5]
    x = _rand_logits(8, 1000)
    assert dsk.sample(ctx, x, temperature=0.0).numpy().tolist() == np.argmax(x, 1).tolist()
    # f16 logits: the argmax of the f16 values.
    h = x.astype(np.float16)
    assert dsk.sample(ctx, h, temperature=0).numpy().tolist() == np.argmax(h, 1).tolist()


def test_top_k_one_is_argmax_for_any_seed(ctx):
    for seed in range(5):
        ids = dsk.sample(ctx, LOGITS, temperature=1.5, top_k=1, seed=seed, offset=seed * 7)
        assert ids.numpy().tolist() == [1, 5]


def test_seeds_reproduce_and_rows_do_not_depend_on_the_batch(ctx):
    x = _rand_logits(16, 300, seed=1)
    a = dsk.sample(ctx, x, seed=1234, offset=5).numpy()
    b = dsk.sample(ctx, x, seed=1234, offset=5).numpy()
    assert a.tolist() == b.tolist()
    assert ((a >= 0) & (a < 300)).all()
    # Other seeds or offsets give other tokens somewhere in 16 rows of a flat-ish distribution.
    assert dsk.sample(ctx, x, seed=1235, offset=5).numpy().tolist() != a.tolist()
    assert dsk.sample(ctx, x, seed=1234, offset=6).numpy().tolist() != a.tolist()
    # Per-row seeds (one above 2**63) and offsets: row r samples as a batch of one would.
    seeds = [2**64 - 1 - r * 977 if r % 2 else 1000 + r for r in range(16)]
    offsets = [r % 3 for r in range(16)]
    batch = dsk.sample(ctx, x, seed=seeds, offset=offsets).numpy()
    for r in range(16):
        one = dsk.sample(ctx, x[r:r + 1], seed=seeds[r], offset=offsets[r]).numpy()
        assert one[0] == batch[r], r
    # The same seeds as a NumPy uint64 array, and as a dsk tensor of int64 bit patterns.
    useeds = np.array(seeds, dtype=np.uint64)
    assert dsk.sample(ctx, x, seed=useeds, offset=offsets).numpy().tolist() == batch.tolist()
    tseeds = dsk.asarray(useeds.view(np.int64))
    toffs = dsk.asarray(np.array(offsets, dtype=np.int64))
    assert dsk.sample(ctx, x, seed=tseeds, offset=toffs).numpy().tolist() == batch.tolist()


def test_sampling_follows_the_softmax(ctx):
    # p(token 1) = 3 / 4 for logits [0, log 3]; 4000 rows with their own seeds.
    n = 4000
    x = np.tile(np.array([[0.0, math.log(3.0)]], dtype=np.float32), (n, 1))
    ids = dsk.sample(ctx, x, seed=np.arange(n, dtype=np.uint64)).numpy()
    assert abs(ids.mean() - 0.75) < 0.03
    # Temperature 1/2 squares the odds: p(1) = 9 / 10.
    ids = dsk.sample(ctx, x, temperature=0.5, seed=np.arange(n, dtype=np.uint64)).numpy()
    assert abs(ids.mean() - 0.9) < 0.025


def test_per_row_parameters(ctx):
    x = np.tile(_rand_logits(1, 50, seed=3), (4, 1))
    top = int(np.argmax(x[0]))
    # Row 0 greedy, row 1 top-k 1, row 2 top-p tiny (keeps the argmax), row 3 min-p 1 (the max).
    ids = dsk.sample(ctx, x, temperature=[0.0, 1.0, 1.0, 1.0], top_k=[0, 1, 0, 0],
                     top_p=np.array([1.0, 1.0, 1e-6, 1.0], dtype=np.float32),
                     min_p=[0.0, 0.0, 0.0, 1.0], seed=11)
    assert ids.numpy().tolist() == [top] * 4


def test_penalties_with_token_lists(ctx):
    # x_0 = 1.0 is the argmax, x_1 = 0.9 the runner-up; token 0 generated twice in each row.
    x = np.full((3, 40), -1.0, dtype=np.float32)
    x[:, 0], x[:, 1] = 1.0, 0.9
    assert dsk.sample(ctx, x, temperature=0).numpy().tolist() == [0, 0, 0]
    out = [[0, 0], [0, 0], [0, 0]]
    # Repetition 2 (1.0 -> 0.5), presence 0.2 (-> 0.8), frequency 0.1 per occurrence (-> 0.8).
    ids = dsk.sample(ctx, x, temperature=0, output_ids=out, repetition_penalty=[2.0, 1.0, 1.0],
                     presence_penalty=[0.0, 0.2, 0.0], frequency_penalty=[0.0, 0.0, 0.1])
    assert ids.numpy().tolist() == [1, 1, 1]
    # The same lists as CSR tensors (int32 offsets, int64 ids).
    offs = np.array([0, 2, 4, 6], dtype=np.int32)
    flat = np.zeros(6, dtype=np.int64)
    ids2 = dsk.sample(ctx, x, temperature=0, output_ids=flat, output_offsets=offs,
                      repetition_penalty=[2.0, 1.0, 1.0], presence_penalty=[0.0, 0.2, 0.0],
                      frequency_penalty=[0.0, 0.0, 0.1])
    assert ids2.numpy().tolist() == [1, 1, 1]
    # The prompt counts for the repetition penalty only; None rows are empty.
    ids = dsk.sample(ctx, x, temperature=0, prompt_ids=[[0], None, [0]],
                     repetition_penalty=[2.0, 2.0, 1.0], presence_penalty=0.5)
    assert ids.numpy().tolist() == [1, 0, 0]


def test_logit_bias_and_allowed_mask(ctx):
    x = np.full((2, 40), -1.0, dtype=np.float32)
    x[:, 0] = 1.0
    # One mapping for every row, or one entry per row (a mapping or (token, bias) pairs).
    assert dsk.sample(ctx, x, temperature=0, logit_bias={7: 3.0}).numpy().tolist() == [7, 7]
    ids = dsk.sample(ctx, x, temperature=0, logit_bias=[{7: 3.0}, [(9, 1.5), (9, 1.5)]])
    assert ids.numpy().tolist() == [7, 9]
    ids = dsk.sample(ctx, x, temperature=0, bias_offsets=[0, 1, 1], bias_ids=[5],
                     bias_values=[10.0])
    assert ids.numpy().tolist() == [5, 0]
    # Only token 33 allowed in row 0, tokens 2 and 39 in row 1 (39 has the larger bias).
    mask = np.zeros((2, 40), dtype=bool)
    mask[0, 33] = True
    mask[1, [2, 39]] = True
    bias = {39: 0.5}
    assert dsk.sample(ctx, x, temperature=0, allowed_mask=mask,
                      logit_bias=bias).numpy().tolist() == [33, 39]
    words = np.array([[0, 1 << 1], [1 << 2, 1 << 7]], dtype=np.uint32)
    assert dsk.sample(ctx, x, temperature=0, allowed_mask=words,
                      logit_bias=bias).numpy().tolist() == [33, 39]
    assert dsk.sample(ctx, x, temperature=0, allowed_mask=dsk.asarray(words.view(np.int32)),
                      logit_bias=bias).numpy().tolist() == [33, 39]
    # A boolean dsk tensor is packed like a NumPy one.
    assert dsk.sample(ctx, x, temperature=0, allowed_mask=dsk.asarray(mask),
                      logit_bias=bias).numpy().tolist() == [33, 39]
    # A [V] boolean mask applies to every row.
    one = np.zeros(40, dtype=bool)
    one[12] = True
    assert dsk.sample(ctx, x, temperature=0, allowed_mask=one).numpy().tolist() == [12, 12]


def test_logprobs_top_lists_and_status(ctx):
    x = np.stack([LOGITS[1], np.full(6, -np.inf, dtype=np.float32),
                  np.array([0, 1, np.nan, 0, 0, 0], dtype=np.float32)])
    r = dsk.sample(ctx, x, temperature=0, top_k=3, logprobs=True, top_logprobs=4,
                   raw_logprobs=True, status=True)
    assert isinstance(r, dsk.SampleResult)
    ids, lp = r.ids.numpy(), r.logprobs.numpy()
    top_ids, top_lp = r.top_ids.numpy(), r.top_logprobs.numpy()
    assert ids.tolist() == [5, 0, 0]
    assert r.status.numpy().tolist() == [dsk.SAMPLE_OK, dsk.SAMPLE_ALL_MASKED, dsk.SAMPLE_NONFINITE]
    kept = _log_softmax(x[0, [5, 2, 3]])
    assert top_ids[0].tolist() == [5, 2, 3, -1]
    np.testing.assert_allclose(top_lp[0, :3], kept, atol=1e-5)
    assert top_lp[0, 3] == -np.inf
    assert abs(lp[0] - kept[0]) < 1e-5
    assert abs(r.raw_logprobs.numpy()[0] - _log_softmax(x[0])[5]) < 1e-5
    for row in (1, 2):
        assert math.isnan(lp[row]) and math.isnan(r.raw_logprobs.numpy()[row])
        assert top_ids[row].tolist() == [-1] * 4 and np.isnan(top_lp[row]).all()
    # The raw distribution's top list ignores the filters; only some outputs asked for.
    r = dsk.sample(ctx, x[:1], temperature=0, top_k=3, top_logprobs=4, top_source="raw")
    assert r.logprobs is None and r.raw_logprobs is None and r.status is None
    assert r.top_ids.numpy()[0].tolist() == [5, 2, 3, 1]
    np.testing.assert_allclose(r.top_logprobs.numpy()[0], _log_softmax(x[0])[[5, 2, 3, 1]],
                               atol=1e-5)


def test_outputs_written_in_place(ctx):
    ids = np.full(2, -7, dtype=np.int32)
    lp = np.zeros(2, dtype=np.float32)
    tid = np.zeros((2, 2), dtype=np.int32)
    tlp = np.zeros((2, 2), dtype=np.float32)
    st = np.full(2, 9, dtype=np.uint8)
    r = dsk.sample(ctx, LOGITS, temperature=0, ids=ids, logprobs=lp, top_logprobs=(tid, tlp),
                   status=st)
    assert ids.tolist() == [1, 5] and st.tolist() == [0, 0]
    assert tid.tolist() == [[1, 4], [5, 2]]
    assert abs(lp[1] - _log_softmax(LOGITS[1])[5]) < 1e-5
    assert r.ids is not None
    # B = 0.
    assert dsk.sample(ctx, np.zeros((0, 6), dtype=np.float32)).shape == (0,)


# --- processed logits and probabilities


def test_sampling_logits_and_probs(ctx):
    z = dsk.sampling_logits(ctx, LOGITS, temperature=2.0, top_k=2).numpy()
    kept = np.full(LOGITS.shape, False)
    kept[0, [1, 4]] = kept[1, [5, 2]] = True
    assert (z[kept] == LOGITS[kept] / np.float32(2.0)).all()
    assert (z[~kept] == -np.inf).all()
    z16, st = dsk.sampling_logits(ctx, LOGITS, dtype="f16", status=True, top_k=2)
    assert z16.dtype == "f16" and st.numpy().tolist() == [0, 0]

    p = dsk.sampling_probs(ctx, LOGITS, temperature=2.0, top_k=2).numpy()
    assert p[0, 1] == pytest.approx(0.5, abs=1e-6) and p[0, 4] == pytest.approx(0.5, abs=1e-6)
    e = math.exp((1.75 - 1.5) / 2.0)
    assert p[1, 5] == pytest.approx(e / (1 + e), abs=1e-6)
    assert (p[~kept] == 0).all()
    # No filters: the softmax of x / T.
    x = _rand_logits(3, 100, seed=4)
    p, st = dsk.sampling_probs(ctx, x, temperature=0.7, status=True)
    ref = np.exp(x / 0.7 - (x / 0.7).max(1, keepdims=True))
    np.testing.assert_allclose(p.numpy(), ref / ref.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)
    assert st.numpy().tolist() == [0, 0, 0]
    # Written into a given tensor; a masked row is all NaN.
    out = np.zeros((2, 6), dtype=np.float32)
    masked = LOGITS.copy()
    masked[1] = -np.inf
    dsk.sampling_probs(ctx, masked, out)
    assert abs(out[0].sum() - 1) < 1e-6 and np.isnan(out[1]).all()


# --- speculative verification


def _onehot_target():
    # B 3, n 3, V 5; target row i's argmax: row 0: 2, 4, 1, 3; row 1: all 0; row 2: all 1.
    argmax = [[2, 4, 1, 3], [0, 0, 0, 0], [1, 1, 1, 1]]
    t = np.zeros((3, 4, 5), dtype=np.float32)
    for b in range(3):
        for i in range(4):
            t[b, i, argmax[b][i]] = 1.0
    return t


DRAFTS = [[2, 4, 0], [0, 0, 0], [1, -1, 3]]


def test_verify_greedy_chain(ctx):
    r = dsk.speculative_verify(ctx, DRAFTS, _onehot_target(), mode="greedy", emitted=True)
    assert isinstance(r, dsk.VerifyResult)
    assert r.out_ids.numpy().tolist() == [[2, 4, 1, -1], [0, 0, 0, 0], [1, 1, -1, -1]]
    assert r.accepted.numpy().tolist() == [2, 3, 1]
    assert r.emitted.numpy().tolist() == [3, 4, 2]
    # Logits work for greedy mode; drafts as an int32 array.
    logits = _onehot_target() * 5 - 2
    r2 = dsk.speculative_verify(ctx, np.array(DRAFTS, dtype=np.int32), logits,
                                mode=dsk.VERIFY_GREEDY)
    assert r2.out_ids.numpy().tolist() == r.out_ids.numpy().tolist()
    assert r2.emitted is None


def test_verify_sample_mode(ctx):
    # One-hot targets and a deterministic draft: p(t) = 1 is accepted, p(t) = 0 rejected and
    # replaced by the one-hot token; any seed.
    for seed in (0, 9, [1, 2, 3]):
        r = dsk.speculative_verify(ctx, DRAFTS, _onehot_target(), seed=seed, offset=2)
        assert r.out_ids.numpy().tolist() == [[2, 4, 1, -1], [0, 0, 0, 0], [1, 1, -1, -1]]
        assert r.accepted.numpy().tolist() == [2, 3, 1]
    # With the draft's own probabilities equal to the target's, every draft is accepted.
    target = np.full((2, 3, 8), 1 / 8, dtype=np.float32)
    drafts = np.array([[3, 5], [0, 7]], dtype=np.int64)
    r = dsk.speculative_verify(ctx, drafts, target, target[:, :2].copy(), seed=5)
    assert r.accepted.numpy().tolist() == [2, 2]
    assert r.out_ids.numpy()[:, :2].tolist() == drafts.tolist()
    assert ((r.out_ids.numpy()[:, 2] >= 0) & (r.out_ids.numpy()[:, 2] < 8)).all()
    # Reproducible, and written into given outputs.
    out_ids = np.zeros((2, 3), dtype=np.int32)
    acc = np.zeros(2, dtype=np.int32)
    dsk.speculative_verify(ctx, drafts, target, target[:, :2].copy(), seed=5, out_ids=out_ids,
                           accepted=acc)
    assert out_ids.tolist() == r.out_ids.numpy().tolist() and acc.tolist() == [2, 2]


# --- errors


def test_errors_name_the_argument(ctx):
    with pytest.raises(dsk.InvalidArgumentError, match="top_p"):
        dsk.sample(ctx, LOGITS, top_p=1.5)
    with pytest.raises(dsk.InvalidArgumentError, match="temperature"):
        dsk.sample(ctx, LOGITS, temperature=-1.0)
    with pytest.raises(dsk.InvalidArgumentError, match=r"top_ps\[1\]"):
        dsk.sample(ctx, LOGITS, top_p=[0.5, 1.5])
    with pytest.raises(dsk.InvalidArgumentError, match="output_ids"):
        dsk.sample(ctx, LOGITS, output_ids=[[0], [99]])
    with pytest.raises(dsk.InvalidArgumentError, match="ids"):
        dsk.sample(ctx, LOGITS, ids=np.zeros(3, dtype=np.int32))
    with pytest.raises(dsk.InvalidArgumentError, match="top_ids"):
        dsk.sample(ctx, LOGITS, top_logprobs=dsk.SAMPLE_MAX_TOP_LOGPROBS + 1)
    with pytest.raises(dsk.InvalidArgumentError, match="out"):
        dsk.sampling_logits(ctx, LOGITS, np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(dsk.InvalidArgumentError, match="probs"):
        dsk.sampling_probs(ctx, LOGITS, np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(dsk.InvalidArgumentError, match="draft_ids"):
        dsk.speculative_verify(ctx, [[9]], np.zeros((1, 2, 6), dtype=np.float32))
    # Caught by the Python layer.
    with pytest.raises(dsk.InvalidArgumentError, match="output_ids has 1 rows"):
        dsk.sample(ctx, LOGITS, output_ids=[[0]])
    with pytest.raises(dsk.InvalidArgumentError, match="logit_bias has 3 rows"):
        dsk.sample(ctx, LOGITS, logit_bias=[{}, {}, {}])
    with pytest.raises(dsk.InvalidArgumentError, match="prompt_offsets is given without"):
        dsk.sample(ctx, LOGITS, prompt_offsets=[0, 0, 0])
    with pytest.raises(dsk.InvalidArgumentError, match="go together"):
        dsk.sample(ctx, LOGITS, bias_ids=[1], bias_values=[1.0])
    with pytest.raises(dsk.InvalidArgumentError, match="top_source"):
        dsk.sample(ctx, LOGITS, top_logprobs=2, top_source="final")
    with pytest.raises(dsk.InvalidArgumentError, match="mode"):
        dsk.speculative_verify(ctx, [[0]], np.zeros((1, 2, 6), dtype=np.float32), mode="argmax")
    with pytest.raises(dsk.InvalidArgumentError, match="boolean mask"):
        dsk.sample(ctx, LOGITS, allowed_mask=np.ones((2, 5), dtype=bool))
    with pytest.raises(TypeError):
        dsk.sampling_probs(ctx, LOGITS, seeds=[1, 2])


# --- CUDA: the same ids as the CPU reference


@requires_cuda
def test_cuda_matches_the_cpu():
    x = _rand_logits(8, 5000, seed=9)
    kw = dict(temperature=[0.0, 0.7, 1.0, 1.2, 0.9, 1.0, 0.5, 1.0],
              top_k=[0, 40, 0, 0, 10, 0, 0, 1], top_p=0.9, min_p=[0, 0, 0.05, 0, 0, 0, 0, 0],
              seed=list(range(8)), offset=3, output_ids=[[1, 2]] * 8, repetition_penalty=1.1,
              logit_bias={7: 2.0})
    cpu = dsk.sample(None, x, **kw, logprobs=True, top_logprobs=5, status=True)
    with dsk.Context("cuda") as c:
        # Parameters from lists and NumPy arrays are copied to the device by the wrapper.
        r = dsk.sample(c, dsk.clone(c, x), **kw, logprobs=True, top_logprobs=5, status=True)
        assert r.ids.device == c.device
        c.synchronize()
        assert r.ids.numpy(c).tolist() == cpu.ids.numpy().tolist()
        assert r.status.numpy(c).tolist() == cpu.status.numpy().tolist()
        assert r.top_ids.numpy(c).tolist() == cpu.top_ids.numpy().tolist()
        np.testing.assert_allclose(r.logprobs.numpy(c), cpu.logprobs.numpy(), atol=1e-5)
        target = _onehot_target()
        v = dsk.speculative_verify(c, DRAFTS, dsk.clone(c, target), mode="greedy")
        assert v.out_ids.numpy(c).tolist() == [[2, 4, 1, -1], [0, 0, 0, 0], [1, 1, -1, -1]]
