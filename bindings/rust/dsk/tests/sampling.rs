//! Token sampling (dsk_sampling.h) on the CPU backend: facts that follow from the header's
//! definitions by hand (greedy = argmax with ties to the lower id, top-k 1 = argmax, seeds
//! reproduce in any batch, penalties / bias / mask move a close argmax, logprobs over the kept
//! set, the greedy verification chain), the struct defaults, and errors naming the argument.

use dsk::{
    Context, ErrorKind, LogitBias, LogprobsSource, SamplingOutputs, SamplingParams, TensorMut, TensorRef, TokenLists,
    VerifyMode, VerifyParams, SAMPLE_ALL_MASKED, SAMPLE_MAX_TOP_LOGPROBS, SAMPLE_NONFINITE, SAMPLE_OK,
};

fn cpu() -> Context {
    Context::cpu().expect("CPU context")
}

fn r<'a, T: dsk::Element>(v: &'a [T], shape: &[i64]) -> TensorRef<'a> {
    TensorRef::new(v, shape).unwrap()
}

fn m<'a, T: dsk::Element>(v: &'a mut [T], shape: &[i64]) -> TensorMut<'a> {
    TensorMut::new(v, shape).unwrap()
}

fn expect_invalid<T: std::fmt::Debug>(res: dsk::Result<T>, name: &str) {
    let err = res.expect_err("expected an error");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let named = err.message().split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).any(|w| w == name);
    assert!(named, "message does not name {name}: {err}");
}

/// log_softmax of one row in f64.
fn log_softmax(x: &[f32]) -> Vec<f64> {
    let m = x.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
    let s: f64 = x.iter().map(|&v| (v as f64 - m).exp()).sum();
    x.iter().map(|&v| v as f64 - m - s.ln()).collect()
}

/// Two rows of 6: row 0 ties for the maximum at ids 1 and 4; row 1's maximum is id 5.
const LOGITS: [f32; 12] = [0.5, 2.0, -1.0, 1.0, 2.0, 0.0, -3.0, 0.25, 1.5, 0.75, -0.5, 1.75];

#[test]
fn defaults_are_the_librarys() {
    let p = SamplingParams::default();
    assert_eq!((p.temperature, p.top_k, p.top_p, p.min_p), (1.0, 0, 1.0, 0.0));
    assert_eq!((p.repetition_penalty, p.frequency_penalty, p.presence_penalty), (1.0, 0.0, 0.0));
    assert_eq!((p.seed, p.offset), (0, 0));
    assert!(p.temperatures.is_none() && p.output.is_none() && p.logit_bias.is_none() && p.allowed_mask.is_none());
    assert_eq!(SamplingParams::greedy().temperature, 0.0);
    let raw = SamplingParams { top_k: 7, seed: 9, ..Default::default() }.raw();
    assert_eq!(raw.struct_size as usize, std::mem::size_of::<dsk::sys::dsk_sampling_params>());
    assert_eq!((raw.top_k, raw.seed), (7, 9));
    assert!(raw.top_ps.is_null() && raw.output_ids.is_null());

    let v = VerifyParams::default();
    assert_eq!((v.mode, v.seed, v.offset), (VerifyMode::Sample, 0, 0));
    assert_eq!(VerifyParams::greedy().mode, VerifyMode::Greedy);
    let s = VerifyParams::sample(3, 4).raw();
    assert_eq!((s.mode, s.seed, s.offset), (dsk::sys::DSK_VERIFY_SAMPLE, 3, 4));
    assert_eq!(s.struct_size as usize, std::mem::size_of::<dsk::sys::dsk_verify_params>());
    assert_eq!(VerifyMode::from_raw(1), VerifyMode::Greedy);
    assert_eq!(LogprobsSource::from_raw(1), LogprobsSource::Raw);
    assert_eq!(LogprobsSource::Other(9).raw(), 9);

    let mut ids = [0i32; 2];
    let ids_t = m(&mut ids, &[2]);
    let o = SamplingOutputs::new(&ids_t).raw();
    assert_eq!(o.struct_size as usize, std::mem::size_of::<dsk::sys::dsk_sampling_outputs>());
    assert_eq!(o.top_source, dsk::sys::DSK_LOGPROBS_PROCESSED);
    assert!(!o.ids.is_null() && o.logprobs.is_null() && o.top_ids.is_null() && o.status.is_null());
    assert_eq!(SAMPLE_MAX_TOP_LOGPROBS, 64);
}

#[test]
fn greedy_is_argmax_and_top_k_one_too() {
    let ctx = cpu();
    let logits = r(&LOGITS, &[2, 6]);
    let mut ids = [-1i32; 2];
    ctx.sample_ids(&SamplingParams::greedy(), &logits, &m(&mut ids, &[2])).unwrap();
    assert_eq!(ids, [1, 5]);
    for seed in 0..5u64 {
        let p = SamplingParams { temperature: 1.5, top_k: 1, seed, offset: seed * 3, ..Default::default() };
        ctx.sample_ids(&p, &logits, &m(&mut ids, &[2])).unwrap();
        assert_eq!(ids, [1, 5], "seed {seed}");
    }
    // B = 0.
    let mut none: [i32; 0] = [];
    ctx.sample_ids(&SamplingParams::default(), &r::<f32>(&[], &[0, 6]), &m(&mut none, &[0])).unwrap();
}

#[test]
fn seeds_reproduce_and_rows_do_not_depend_on_the_batch() {
    let ctx = cpu();
    let (b, v) = (16usize, 64usize);
    let x: Vec<f32> = (0..b * v).map(|i| ((i * 37) % 23) as f32 * 0.125).collect();
    let logits = r(&x, &[b as i64, v as i64]);
    let p = SamplingParams { seed: 1234, offset: 5, ..Default::default() };
    let (mut a, mut c) = (vec![0i32; b], vec![0i32; b]);
    ctx.sample_ids(&p, &logits, &m(&mut a, &[b as i64])).unwrap();
    ctx.sample_ids(&p, &logits, &m(&mut c, &[b as i64])).unwrap();
    assert_eq!(a, c);
    assert!(a.iter().all(|&id| (0..v as i32).contains(&id)));

    // Per-row seeds (one above 2^63, passed as its i64 bit pattern) and offsets.
    let seeds: Vec<u64> = (0..b as u64).map(|i| if i % 2 == 1 { u64::MAX - i * 977 } else { 1000 + i }).collect();
    let seeds_i64: Vec<i64> = seeds.iter().map(|&s| s as i64).collect();
    let offsets: Vec<i64> = (0..b as i64).map(|i| i % 3).collect();
    let (seeds_t, offsets_t) = (r(&seeds_i64, &[b as i64]), r(&offsets, &[b as i64]));
    let per_row = SamplingParams { seeds: Some(&seeds_t), offsets: Some(&offsets_t), ..Default::default() };
    ctx.sample_ids(&per_row, &logits, &m(&mut a, &[b as i64])).unwrap();
    for row in 0..b {
        let single = SamplingParams { seed: seeds[row], offset: offsets[row] as u64, ..Default::default() };
        let mut one = [0i32; 1];
        ctx.sample_ids(&single, &r(&x[row * v..(row + 1) * v], &[1, v as i64]), &m(&mut one, &[1])).unwrap();
        assert_eq!(one[0], a[row], "row {row}");
    }
}

#[test]
fn mask_bias_and_penalties_move_the_greedy_choice() {
    let ctx = cpu();
    // One row, V = 40: x_0 = 1.0 is the argmax, x_1 = 0.9 the runner-up.
    let mut x = vec![-1.0f32; 40];
    x[0] = 1.0;
    x[1] = 0.9;
    let logits = r(&x, &[1, 40]);
    let mut ids = [-1i32];
    let mut run = |p: &SamplingParams| {
        ctx.sample_ids(p, &logits, &m(&mut ids, &[1])).unwrap();
        ids[0]
    };
    assert_eq!(run(&SamplingParams::greedy()), 0);

    // Only token 33 allowed (bit 1 of word 1).
    let mask = [0i32, 2];
    let mask_t = r(&mask, &[1, 2]);
    assert_eq!(run(&SamplingParams { allowed_mask: Some(&mask_t), ..SamplingParams::greedy() }), 33);

    // +3 on token 7.
    let (offs, bids, bvals) = ([0i32, 1], [7i32], [3.0f32]);
    let (offs_t, bids_t, bvals_t) = (r(&offs, &[2]), r(&bids, &[1]), r(&bvals, &[1]));
    let bias = LogitBias::new(&offs_t, &bids_t, &bvals_t);
    assert_eq!(run(&SamplingParams { logit_bias: Some(bias), ..SamplingParams::greedy() }), 7);

    // Token 0 generated twice: repetition 2 (-> 0.5), presence 0.2 (-> 0.8), frequency 0.1 (-> 0.8).
    let (loffs, lids) = ([0i64, 2], [0i64, 0]);
    let (loffs_t, lids_t) = (r(&loffs, &[2]), r(&lids, &[2]));
    let lists = TokenLists::new(&loffs_t, &lids_t);
    let g = SamplingParams { output: Some(lists), ..SamplingParams::greedy() };
    assert_eq!(run(&SamplingParams { repetition_penalty: 2.0, ..g }), 1);
    assert_eq!(run(&SamplingParams { presence_penalty: 0.2, ..g }), 1);
    assert_eq!(run(&SamplingParams { frequency_penalty: 0.1, ..g }), 1);
    // The prompt counts for repetition only.
    let pr = SamplingParams { prompt: Some(lists), presence_penalty: 0.5, ..SamplingParams::greedy() };
    assert_eq!(run(&pr), 0);
    assert_eq!(run(&SamplingParams { repetition_penalty: 2.0, ..pr }), 1);
}

#[test]
fn logprobs_top_lists_and_status() {
    let ctx = cpu();
    let inf = f32::INFINITY;
    // Row 0: LOGITS row 1; row 1: all -inf; row 2: a NaN.
    let mut x: Vec<f32> = LOGITS[6..].to_vec();
    x.extend([-inf; 6]);
    x.extend([0.0, 1.0, f32::NAN, 0.0, 0.0, 0.0]);
    let logits = r(&x, &[3, 6]);
    let (mut ids, mut lp, mut raw, mut status) = ([0i32; 3], [0f32; 3], [0f32; 3], [9u8; 3]);
    let (mut top_ids, mut top_lp) = ([0i32; 12], [0f32; 12]);
    {
        let (ids_t, lp_t, raw_t, st_t) = (m(&mut ids, &[3]), m(&mut lp, &[3]), m(&mut raw, &[3]), m(&mut status, &[3]));
        let (ti_t, tl_t) = (m(&mut top_ids, &[3, 4]), m(&mut top_lp, &[3, 4]));
        let out = SamplingOutputs::new(&ids_t)
            .logprobs(&lp_t)
            .top(&ti_t, &tl_t, LogprobsSource::Processed)
            .raw_logprobs(&raw_t)
            .status(&st_t);
        ctx.sample(&SamplingParams { top_k: 3, ..SamplingParams::greedy() }, &logits, &out).unwrap();
    }
    assert_eq!(ids, [5, 0, 0]);
    assert_eq!(status, [SAMPLE_OK, SAMPLE_ALL_MASKED, SAMPLE_NONFINITE]);
    let kept = log_softmax(&[x[5], x[2], x[3]]);
    assert_eq!(top_ids[..4], [5, 2, 3, -1]);
    for i in 0..3 {
        assert!((top_lp[i] as f64 - kept[i]).abs() < 1e-5, "{i}: {} vs {}", top_lp[i], kept[i]);
    }
    assert_eq!(top_lp[3], -inf);
    assert!((lp[0] as f64 - kept[0]).abs() < 1e-5);
    assert!((raw[0] as f64 - log_softmax(&x[..6])[5]).abs() < 1e-5);
    for row in 1..3 {
        assert!(lp[row].is_nan() && raw[row].is_nan(), "row {row}");
        assert_eq!(top_ids[row * 4..row * 4 + 4], [-1; 4]);
        assert!(top_lp[row * 4..row * 4 + 4].iter().all(|v| v.is_nan()));
    }

    // The raw distribution's top list ignores the filters.
    let mut one = [0i32; 1];
    let (mut ti, mut tl) = ([0i32; 4], [0f32; 4]);
    {
        let (one_t, ti_t, tl_t) = (m(&mut one, &[1]), m(&mut ti, &[1, 4]), m(&mut tl, &[1, 4]));
        let out = SamplingOutputs::new(&one_t).top(&ti_t, &tl_t, LogprobsSource::Raw);
        ctx.sample(&SamplingParams { top_k: 3, ..SamplingParams::greedy() }, &r(&x[..6], &[1, 6]), &out).unwrap();
    }
    assert_eq!(ti, [5, 2, 3, 1]);
    let full = log_softmax(&x[..6]);
    for i in 0..4 {
        assert!((tl[i] as f64 - full[ti[i] as usize]).abs() < 1e-5);
    }
}

#[test]
fn processed_logits_and_probs() {
    let ctx = cpu();
    let logits = r(&LOGITS, &[2, 6]);
    let p = SamplingParams { temperature: 2.0, top_k: 2, ..Default::default() };
    let (mut z, mut probs, mut status) = ([0f32; 12], [0f32; 12], [9u8; 2]);
    ctx.sampling_logits(&p, &logits, &m(&mut z, &[2, 6]), Some(&m(&mut status, &[2]))).unwrap();
    for (i, (&zi, &xi)) in z.iter().zip(&LOGITS).enumerate() {
        if [1, 4, 6 + 5, 6 + 2].contains(&i) {
            assert_eq!(zi, xi / 2.0, "{i}");
        } else {
            assert_eq!(zi, f32::NEG_INFINITY, "{i}");
        }
    }
    assert_eq!(status, [SAMPLE_OK; 2]);
    ctx.sampling_probs(&p, &logits, &m(&mut probs, &[2, 6]), None).unwrap();
    assert!((probs[1] - 0.5).abs() < 1e-6 && (probs[4] - 0.5).abs() < 1e-6);
    let e = ((1.75f64 - 1.5) / 2.0).exp();
    assert!((probs[6 + 5] as f64 - e / (1.0 + e)).abs() < 1e-6);
    assert!((probs[6 + 2] as f64 - 1.0 / (1.0 + e)).abs() < 1e-6);
    assert_eq!((probs[0], probs[6]), (0.0, 0.0));
}

/// B 3, n 3, V 5; target row i's argmax: row 0: 2, 4, 1, 3; row 1: all 0; row 2: all 1.
fn onehot_target() -> Vec<f32> {
    let argmax = [[2, 4, 1, 3], [0, 0, 0, 0], [1, 1, 1, 1]];
    let mut t = vec![0f32; 3 * 4 * 5];
    for b in 0..3 {
        for i in 0..4 {
            t[(b * 4 + i) * 5 + argmax[b][i]] = 1.0;
        }
    }
    t
}

#[test]
fn speculative_verification() {
    let ctx = cpu();
    let target = onehot_target();
    let target_t = r(&target, &[3, 4, 5]);
    let drafts = [2i32, 4, 0, 0, 0, 0, 1, -1, 3];
    let drafts_t = r(&drafts, &[3, 3]);
    let (mut out, mut acc, mut em) = ([0i32; 12], [0i32; 3], [0i32; 3]);
    ctx.speculative_verify(&VerifyParams::greedy(), &drafts_t, None, &target_t, &m(&mut out, &[3, 4]),
                           &m(&mut acc, &[3]), Some(&m(&mut em, &[3])))
        .unwrap();
    assert_eq!(out, [2, 4, 1, -1, 0, 0, 0, 0, 1, 1, -1, -1]);
    assert_eq!(acc, [2, 3, 1]);
    assert_eq!(em, [3, 4, 2]);

    // SAMPLE mode, deterministic draft, one-hot targets: p(t) = 1 accepted, p(t) = 0 replaced by
    // the one-hot token, whatever the seed (per-row seeds too).
    let seeds = [5i64, 6, 7];
    let seeds_t = r(&seeds, &[3]);
    for params in [VerifyParams::sample(9, 2), VerifyParams { seeds: Some(&seeds_t), ..VerifyParams::default() }] {
        let (mut out, mut acc) = ([0i32; 12], [0i32; 3]);
        ctx.speculative_verify(&params, &drafts_t, None, &target_t, &m(&mut out, &[3, 4]), &m(&mut acc, &[3]), None)
            .unwrap();
        assert_eq!(out, [2, 4, 1, -1, 0, 0, 0, 0, 1, 1, -1, -1]);
        assert_eq!(acc, [2, 3, 1]);
    }

    // Draft probabilities equal to the target's: every draft is accepted.
    let uniform = vec![0.125f32; 2 * 3 * 8];
    let q = vec![0.125f32; 2 * 2 * 8];
    let d = [3i64, 5, 0, 7];
    let (mut out, mut acc) = ([0i32; 6], [0i32; 2]);
    ctx.speculative_verify(&VerifyParams::sample(5, 0), &r(&d, &[2, 2]), Some(&r(&q, &[2, 2, 8])),
                           &r(&uniform, &[2, 3, 8]), &m(&mut out, &[2, 3]), &m(&mut acc, &[2]), None)
        .unwrap();
    assert_eq!(acc, [2, 2]);
    assert_eq!([out[0], out[1], out[3], out[4]], [3, 5, 0, 7]);
    assert!((0..8).contains(&out[2]) && (0..8).contains(&out[5]));
}

#[test]
fn errors_name_the_argument() {
    let ctx = cpu();
    let logits = r(&LOGITS, &[2, 6]);
    let mut ids = [0i32; 2];
    expect_invalid(ctx.sample_ids(&SamplingParams { top_p: 1.5, ..Default::default() }, &logits, &m(&mut ids, &[2])),
                   "top_p");
    expect_invalid(
        ctx.sample_ids(&SamplingParams { temperature: -1.0, ..Default::default() }, &logits, &m(&mut ids, &[2])),
        "temperature",
    );
    let top_ps = [0.5f32, 1.5];
    let top_ps_t = r(&top_ps, &[2]);
    expect_invalid(
        ctx.sample_ids(&SamplingParams { top_ps: Some(&top_ps_t), ..Default::default() }, &logits,
                       &m(&mut ids, &[2])),
        "top_ps",
    );
    let mut three = [0i32; 3];
    expect_invalid(ctx.sample_ids(&SamplingParams::default(), &logits, &m(&mut three, &[3])), "ids");
    let mut small = [0f32; 10];
    expect_invalid(ctx.sampling_logits(&SamplingParams::default(), &logits, &m(&mut small, &[2, 5]), None), "out");
    expect_invalid(ctx.sampling_probs(&SamplingParams::default(), &logits, &m(&mut small, &[2, 5]), None), "probs");
    let (drafts, target) = ([9i32], [0f32; 12]);
    let (mut out, mut acc) = ([0i32; 2], [0i32; 1]);
    expect_invalid(
        ctx.speculative_verify(&VerifyParams::default(), &r(&drafts, &[1, 1]), None, &r(&target, &[1, 2, 6]),
                               &m(&mut out, &[1, 2]), &m(&mut acc, &[1]), None),
        "draft_ids",
    );
}
