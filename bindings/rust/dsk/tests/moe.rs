//! Mixture of Experts (dsk_moe.h) on the CPU backend: the gate's worked example checked by hand,
//! dispatch, permute/combine, the expert FFN and the whole layer against formulas computed here
//! in f64, the plan's lifetime, load statistics, the bias update's sign rule, the EP layout, and
//! one error per function naming the argument.

use dsk::{
    moe_dispatch_capacity, Context, DType, ErrorKind, Fp8E4M3, MoeExpertWeights, MoeGateConfig, MoeGroupRule, MoePlan,
    MoeScoreFunc, Tensor, TensorMut, TensorRef, MOE_ROW_NO_FINITE, MOE_ROW_SHORT,
};

fn cpu() -> Context {
    Context::cpu().expect("CPU context")
}

/// Deterministic pseudo-random values in [-1, 1) (a small LCG; no crates).
fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn assert_close(got: &[f32], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g as f64 - w).abs() <= atol + rtol * w.abs(), "element {i}: got {g}, want {w}");
    }
}

fn expect_invalid<T: std::fmt::Debug>(r: dsk::Result<T>, name: &str) {
    let err = r.expect_err("expected an error");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let named = err.message().split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).any(|w| w == name);
    assert!(named, "message does not name {name}: {err}");
}

fn r<'a, T: dsk::Element>(v: &'a [T], shape: &[i64]) -> TensorRef<'a> {
    TensorRef::new(v, shape).unwrap()
}

fn m<'a, T: dsk::Element>(v: &'a mut [T], shape: &[i64]) -> TensorMut<'a> {
    TensorMut::new(v, shape).unwrap()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn silu(x: f64) -> f64 {
    x * sigmoid(x)
}

// The worked example: E 8 in 4 groups of 2, k 2, 2 groups kept, sigmoid, renormalized, scale 2.5.
// Sigmoid scores of ROW0: 0.5, 0.7311, 0.2689, 0.8808, 0.6225, 0.1192, 0.9526, 0.0474;
// s' = s + BIAS: 0.6, 0.7311, 0.2689, 0.8808, 0.9225, 0.4192, 0.3526, 0.0474.
//   Top2Sum (Auto with a bias): groups 1.3311, 1.1497, 1.3417, 0.4 -> groups 2, 0 -> ids 4, 1
//   Max: groups 0.7311, 0.8808, 0.9225, 0.3526 -> groups 2, 1 -> ids 4, 3
//   no bias (Auto = Max of s): 0.7311, 0.8808, 0.6225, 0.9526 -> groups 3, 1 -> ids 6, 3
const ROW0: [f32; 8] = [0.0, 1.0, -1.0, 2.0, 0.5, -2.0, 3.0, -3.0];
const BIAS: [f32; 8] = [0.1, 0.0, 0.0, 0.0, 0.3, 0.3, -0.6, 0.0];

fn small_gate() -> MoeGateConfig {
    MoeGateConfig { num_experts: 8, top_k: 2, n_group: 4, topk_group: 2, ..MoeGateConfig::default() }
}

fn renorm(a: usize, b: usize) -> Vec<f64> {
    let (sa, sb) = (sigmoid(ROW0[a] as f64), sigmoid(ROW0[b] as f64));
    vec![2.5 * sa / (sa + sb), 2.5 * sb / (sa + sb)]
}

#[test]
fn gate_config_presets() {
    let v3 = MoeGateConfig::default();
    assert_eq!(v3, MoeGateConfig::deepseek_v3());
    assert_eq!((v3.num_experts, v3.top_k, v3.n_group, v3.topk_group), (256, 8, 8, 4));
    assert_eq!((v3.score_func, v3.group_rule, v3.renormalize), (MoeScoreFunc::Sigmoid, MoeGroupRule::Auto, true));
    assert_eq!((v3.routed_scaling_factor, v3.score_dtype), (2.5, DType::F32));
    let v2 = MoeGateConfig::deepseek_v2();
    assert_eq!((v2.num_experts, v2.top_k, v2.n_group, v2.topk_group), (160, 6, 8, 3));
    assert_eq!((v2.score_func, v2.renormalize, v2.routed_scaling_factor), (MoeScoreFunc::Softmax, false, 16.0));
    let lite = MoeGateConfig::deepseek_v2_lite();
    assert_eq!((lite.num_experts, lite.top_k, lite.n_group, lite.topk_group), (64, 6, 1, 1));
    assert_eq!((lite.score_func, lite.renormalize, lite.routed_scaling_factor), (MoeScoreFunc::Softmax, false, 1.0));
    let raw = MoeGateConfig {
        score_func: MoeScoreFunc::Identity,
        group_rule: MoeGroupRule::Top2Sum,
        score_dtype: DType::BF16,
        ..v3
    }
    .raw();
    assert_eq!(raw.struct_size as usize, std::mem::size_of::<dsk::sys::dsk_moe_gate_config>());
    assert_eq!((raw.score_func, raw.group_rule), (dsk::sys::DSK_MOE_SCORE_NONE, dsk::sys::DSK_MOE_GROUP_TOP2SUM));
    assert_eq!(raw.score_dtype, dsk::sys::DSK_DTYPE_BF16);
    assert_eq!(MoeScoreFunc::from_raw(7), MoeScoreFunc::Other(7));
    assert_eq!(MoeGroupRule::from_raw(2), MoeGroupRule::Top2Sum);
}

#[test]
fn gate_worked_example() {
    let ctx = cpu();
    let mut logits = ROW0.to_vec();
    logits.extend_from_slice(&[3.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]); // row 1: a tie in group 0
    let (mut ids, mut weights, mut flags) = ([0i32; 4], [0f32; 4], [9u8; 2]);
    ctx.moe_gate(&small_gate(), &r(&logits, &[2, 8]), Some(&r(&BIAS, &[8])), &m(&mut ids, &[2, 2]),
                 &m(&mut weights, &[2, 2]), Some(&m(&mut flags, &[2])))
        .unwrap();
    assert_eq!(ids, [4, 1, 0, 1]);
    let mut want = renorm(4, 1);
    want.extend([1.25, 1.25]);
    assert_close(&weights, &want, 1e-6, 0.0);
    assert_eq!(flags, [0, 0]);

    let mut ids64 = [0i64; 4];
    let max = MoeGateConfig { group_rule: MoeGroupRule::Max, ..small_gate() };
    ctx.moe_gate(&max, &r(&logits, &[2, 8]), Some(&r(&BIAS, &[8])), &m(&mut ids64, &[2, 2]),
                 &m(&mut weights, &[2, 2]), None)
        .unwrap();
    assert_eq!(ids64[..2], [4, 3]);
    assert_close(&weights[..2], &renorm(4, 3), 1e-6, 0.0);

    ctx.moe_gate(&small_gate(), &r(&logits, &[2, 8]), None, &m(&mut ids, &[2, 2]), &m(&mut weights, &[2, 2]), None)
        .unwrap();
    assert_eq!(ids[..2], [6, 3]);
    assert_close(&weights[..2], &renorm(6, 3), 1e-6, 0.0);

    // No expert has a finite score in row 0, one has in row 1 (score func: identity).
    let plain = MoeGateConfig {
        n_group: 1,
        topk_group: 1,
        score_func: MoeScoreFunc::Identity,
        renormalize: false,
        routed_scaling_factor: 1.0,
        ..small_gate()
    };
    let mut nan = vec![f32::NAN; 16];
    nan[9] = 5.0;
    ctx.moe_gate(&plain, &r(&nan, &[2, 8]), None, &m(&mut ids, &[2, 2]), &m(&mut weights, &[2, 2]),
                 Some(&m(&mut flags, &[2])))
        .unwrap();
    assert_eq!(ids, [0, 1, 1, 0]);
    assert_eq!(weights, [0.0, 0.0, 5.0, 0.0]);
    assert_ne!(flags[0] & MOE_ROW_NO_FINITE, 0);
    assert_eq!(flags[1], MOE_ROW_SHORT);

    // k > topk_group * E / G.
    let bad = MoeGateConfig { top_k: 5, ..small_gate() };
    let (mut ids5, mut w5) = ([0i32; 10], [0f32; 10]);
    expect_invalid(ctx.moe_gate(&bad, &r(&logits, &[2, 8]), None, &m(&mut ids5, &[2, 5]), &m(&mut w5, &[2, 5]), None),
                   "top_k");
}

#[test]
fn gate_router_is_the_gate_of_x_wt() {
    let ctx = cpu();
    let mut eye = [0f32; 64];
    for i in 0..8 {
        eye[i * 9] = 1.0;
    }
    let (mut ids, mut weights) = ([0i32; 2], [0f32; 2]);
    ctx.moe_gate_router(&small_gate(), &r(&ROW0, &[1, 8]), &r(&eye, &[8, 8]), Some(&r(&BIAS, &[8])),
                        &m(&mut ids, &[1, 2]), &m(&mut weights, &[1, 2]), None)
        .unwrap();
    assert_eq!(ids, [4, 1]);
    assert_close(&weights, &renorm(4, 1), 1e-6, 0.0);
    expect_invalid(ctx.moe_gate_router(&small_gate(), &r(&ROW0, &[1, 8]), &r(&eye[..32], &[8, 4]), None,
                                       &m(&mut ids, &[1, 2]), &m(&mut weights, &[1, 2]), None),
                   "w");
}

// Assignments a = t * k + j: a0 -> 4, a1 -> 1, a2 -> 1, a3 -> 6, a4 -> 6, a5 -> 4.
const IDS: [i32; 6] = [4, 1, 1, 6, 6, 4];

#[test]
fn dispatch_worked_example() {
    assert_eq!(moe_dispatch_capacity(3, 2, 8, 1).unwrap(), 6);
    assert_eq!(moe_dispatch_capacity(3, 2, 8, 4).unwrap(), 24);
    assert_eq!(moe_dispatch_capacity(3, 2, 4, 4).unwrap(), 18);
    assert_eq!(moe_dispatch_capacity(0, 8, 256, 128).unwrap(), 0);
    expect_invalid(moe_dispatch_capacity(-1, 2, 8, 1), "num_tokens");
    expect_invalid(moe_dispatch_capacity(3, 2, 8, 0), "block_size");

    let ctx = cpu();
    let ids = r(&IDS, &[3, 2]);
    let (mut counts, mut offsets, mut rows, mut dest) = ([0i32; 8], [0i32; 9], [0i32; 6], [0i32; 6]);
    ctx.moe_dispatch(&ids, 8, 0, 1, &m(&mut counts, &[8]), &m(&mut offsets, &[9]), &m(&mut rows, &[6]), None,
                     Some(&m(&mut dest, &[3, 2])))
        .unwrap();
    assert_eq!(counts, [0, 2, 0, 0, 2, 0, 2, 0]);
    assert_eq!(offsets, [0, 0, 2, 2, 2, 4, 4, 6, 6]);
    assert_eq!(rows, [1, 2, 0, 5, 3, 4]);
    assert_eq!(dest, [2, 0, 1, 4, 5, 3]);

    // Blocks of 4 with int64 ids: segments padded with the sentinel T * k = 6.
    let ids64: Vec<i64> = IDS.iter().map(|&v| v as i64).collect();
    let (mut rows24, mut blocks) = ([0i32; 24], [0i32; 6]);
    ctx.moe_dispatch(&r(&ids64, &[3, 2]), 8, 0, 4, &m(&mut counts, &[8]), &m(&mut offsets, &[9]),
                     &m(&mut rows24, &[24]), Some(&m(&mut blocks, &[6])), Some(&m(&mut dest, &[3, 2])))
        .unwrap();
    assert_eq!(offsets, [0, 0, 4, 4, 4, 8, 8, 12, 12]);
    let mut want = [6i32; 24];
    want[..10].copy_from_slice(&[1, 2, 6, 6, 0, 5, 6, 6, 3, 4]);
    assert_eq!(rows24, want);
    assert_eq!(blocks, [1, 4, 6, -1, -1, -1]);
    assert_eq!(dest, [4, 0, 1, 8, 9, 5]);

    // This device owns experts 4 .. 7.
    let (mut c4, mut o4) = ([0i32; 4], [0i32; 5]);
    ctx.moe_dispatch(&ids, 4, 4, 1, &m(&mut c4, &[4]), &m(&mut o4, &[5]), &m(&mut rows, &[6]), None,
                     Some(&m(&mut dest, &[3, 2])))
        .unwrap();
    assert_eq!(c4, [2, 0, 2, 0]);
    assert_eq!(o4, [0, 2, 2, 4, 4]);
    assert_eq!(rows, [0, 5, 3, 4, 6, 6]);
    assert_eq!(dest, [0, -1, -1, 2, 3, 1]);

    expect_invalid(ctx.moe_dispatch(&ids, 8, 0, 4, &m(&mut counts, &[8]), &m(&mut offsets, &[9]),
                                    &m(&mut rows, &[6]), None, None),
                   "sorted_rows");
}

#[test]
fn permute_combine_round_trip() {
    let ctx = cpu();
    let (t, k, d, rr) = (3usize, 2usize, 5usize, 12usize);
    let x = rand_vec(t * d, 1);
    // The block-4 layout of the dispatch example.
    let rows: [i32; 12] = [1, 2, 6, 6, 0, 5, 6, 6, 3, 4, 6, 6];
    let dest: [i32; 6] = [4, 0, 1, 8, 9, 5];
    let mut y = vec![9f32; rr * d];
    ctx.moe_permute(&r(&x, &[3, 5]), &r(&rows, &[12]), 2, &m(&mut y, &[12, 5]), None, false).unwrap();
    for (row, &a) in rows.iter().enumerate() {
        let got = &y[row * d..(row + 1) * d];
        if a == 6 {
            assert!(got.iter().all(|&v| v == 0.0), "padding row {row}");
        } else {
            let tok = a as usize / k;
            assert_eq!(got, &x[tok * d..(tok + 1) * d], "row {row}");
        }
    }
    // out[t] = shared[t] + (w[t, 0] + w[t, 1]) * x[t]
    let w = [0.25f32, 0.5, 1.0, -2.0, 0.125, 3.0];
    let shared = rand_vec(t * d, 2);
    let mut out = vec![0f32; t * d];
    ctx.moe_combine(&r(&y, &[12, 5]), &r(&dest, &[3, 2]), &r(&w, &[3, 2]), Some(&r(&shared, &[3, 5])),
                    &m(&mut out, &[3, 5]))
        .unwrap();
    let want: Vec<f64> =
        (0..t * d).map(|i| shared[i] as f64 + (w[i / d * 2] as f64 + w[i / d * 2 + 1] as f64) * x[i] as f64).collect();
    assert_close(&out, &want, 1e-6, 1e-7);
    // In place on a dsk tensor holding shared.
    let sh = ctx.clone_tensor(&r(&shared, &[3, 5]), DType::F32).unwrap();
    ctx.moe_combine(&r(&y, &[12, 5]), &r(&dest, &[3, 2]), &r(&w, &[3, 2]), Some(&sh), &sh).unwrap();
    assert_close(&sh.to_vec::<f32>().unwrap(), &want, 1e-6, 1e-7);

    // fp8 rows: quantized as quant_fp8_act does.
    let q = ctx.empty(&[12, 5], DType::FP8_E4M3FN).unwrap();
    let mut scales = [5f32; 12];
    ctx.moe_permute(&r(&x, &[3, 5]), &r(&rows, &[12]), 2, &q, Some(&m(&mut scales, &[12, 1])), false).unwrap();
    let q_ref = ctx.empty(&[12, 5], DType::FP8_E4M3FN).unwrap();
    let mut s_ref = [0f32; 12];
    ctx.quant_fp8_act(&r(&y, &[12, 5]), &q_ref, &m(&mut s_ref, &[12, 1]), false).unwrap();
    let bits = |t: &Tensor| t.to_vec::<Fp8E4M3>().unwrap();
    assert_eq!(bits(&q), bits(&q_ref));
    assert_eq!(scales, s_ref);

    // Out-of-range indices, refused before anything is written.
    let before = y.clone();
    let bad_rows: [i32; 12] = [1, 2, 7, 6, 0, 5, 6, 6, 3, 4, 6, 6];
    expect_invalid(ctx.moe_permute(&r(&x, &[3, 5]), &r(&bad_rows, &[12]), 2, &m(&mut y, &[12, 5]), None, false),
                   "sorted_rows");
    assert_eq!(y, before);
    let bad_dest: [i32; 6] = [4, 0, 1, 12, 9, 5];
    let out_before = out.clone();
    expect_invalid(ctx.moe_combine(&r(&y, &[12, 5]), &r(&bad_dest, &[3, 2]), &r(&w, &[3, 2]), None,
                                   &m(&mut out, &[3, 5])),
                   "dest");
    assert_eq!(out, out_before);
}

/// (silu(x W1^T) * (x W3^T)) W2^T for one row, W1/W3 [I, D], W2 [D, I].
fn ffn(x: &[f32], w1: &[f32], w3: &[f32], w2: &[f32], d: usize, i: usize) -> Vec<f64> {
    let h: Vec<f64> = (0..i)
        .map(|j| {
            let g: f64 = (0..d).map(|c| x[c] as f64 * w1[j * d + c] as f64).sum();
            let u: f64 = (0..d).map(|c| x[c] as f64 * w3[j * d + c] as f64).sum();
            silu(g) * u
        })
        .collect();
    (0..d).map(|c| (0..i).map(|j| h[j] * w2[c * i + j] as f64).sum()).collect()
}

#[test]
fn experts_against_dense_swiglu() {
    let ctx = cpu();
    let (e, i, d, rr) = (2usize, 3usize, 4usize, 5usize);
    let (w1, w3, w2) = (rand_vec(e * i * d, 3), rand_vec(e * i * d, 4), rand_vec(e * d * i, 5));
    let x = rand_vec(rr * d, 6);
    let (t1, t3, t2) = (r(&w1, &[2, 3, 4]), r(&w3, &[2, 3, 4]), r(&w2, &[2, 4, 3]));
    let weights = MoeExpertWeights::new(&t1, &t3, &t2);
    let offsets = [0i32, 3, 4];
    let mut y = vec![7f32; rr * d];
    ctx.moe_experts(&weights, &r(&x, &[5, 4]), None, &r(&offsets, &[3]), &m(&mut y, &[5, 4])).unwrap();
    let mut want = vec![7f64; rr * d];
    for row in 0..4 {
        let ex = if row < 3 { 0 } else { 1 };
        let yr = ffn(&x[row * d..], &w1[ex * i * d..], &w3[ex * i * d..], &w2[ex * d * i..], d, i);
        want[row * d..(row + 1) * d].copy_from_slice(&yr);
    }
    assert_close(&y, &want, 1e-5, 1e-6);

    let bad = r(&w2, &[2, 3, 4]);
    expect_invalid(ctx.moe_experts(&MoeExpertWeights::new(&t1, &t3, &bad), &r(&x, &[5, 4]), None,
                                   &r(&offsets, &[3]), &m(&mut y, &[5, 4])),
                   "w2");
}

/// A small layer: T 4, D 8, E 4 in 2 groups (1 kept), k 2, I 4, sigmoid + bias, renormalized,
/// scale 1.5, and a shared expert of width 6; all f32.
struct Layer {
    x: Vec<f32>,
    router: Vec<f32>,
    bias: Vec<f32>,
    w: [Vec<f32>; 3],
    s: [Vec<f32>; 3],
    config: MoeGateConfig,
}

const T: usize = 4;
const D: usize = 8;
const E: usize = 4;
const I: usize = 4;
const IS: usize = 6;

impl Layer {
    fn new() -> Layer {
        Layer {
            x: rand_vec(T * D, 11),
            router: rand_vec(E * D, 12),
            bias: vec![0.05, -0.05, 0.0, 0.1],
            w: [rand_vec(E * I * D, 13), rand_vec(E * I * D, 14), rand_vec(E * D * I, 15)],
            s: [rand_vec(IS * D, 16), rand_vec(IS * D, 17), rand_vec(D * IS, 18)],
            config: MoeGateConfig {
                num_experts: E as i32,
                top_k: 2,
                n_group: 2,
                topk_group: 1,
                routed_scaling_factor: 1.5,
                ..MoeGateConfig::default()
            },
        }
    }

    /// The gate in f64: two groups of two, top-2 sum (a bias is given), one kept.
    fn gate(&self) -> (Vec<i32>, Vec<f64>) {
        let (mut ids, mut weights) = (vec![], vec![]);
        for t in 0..T {
            let s: Vec<f64> = (0..E)
                .map(|e| sigmoid((0..D).map(|c| self.x[t * D + c] as f64 * self.router[e * D + c] as f64).sum()))
                .collect();
            let sb: Vec<f64> = (0..E).map(|e| s[e] + self.bias[e] as f64).collect();
            let g = if sb[0] + sb[1] >= sb[2] + sb[3] { 0 } else { 1 };
            let (mut a, mut b) = (2 * g, 2 * g + 1);
            if sb[b] > sb[a] {
                std::mem::swap(&mut a, &mut b);
            }
            ids.extend([a as i32, b as i32]);
            weights.extend([1.5 * s[a] / (s[a] + s[b]), 1.5 * s[b] / (s[a] + s[b])]);
        }
        (ids, weights)
    }

    fn reference(&self, ids: &[i32], weights: &[f64], shared: bool) -> Vec<f64> {
        let mut out = vec![0f64; T * D];
        for t in 0..T {
            let xt = &self.x[t * D..];
            if shared {
                for (o, v) in out[t * D..].iter_mut().zip(ffn(xt, &self.s[0], &self.s[1], &self.s[2], D, IS)) {
                    *o += v;
                }
            }
            for j in 0..2 {
                let e = ids[t * 2 + j] as usize;
                let ye = ffn(xt, &self.w[0][e * I * D..], &self.w[1][e * I * D..], &self.w[2][e * D * I..], D, I);
                for (o, v) in out[t * D..].iter_mut().zip(ye) {
                    *o += weights[t * 2 + j] * v;
                }
            }
        }
        out
    }
}

#[test]
fn forward_against_dense_layer() {
    let mut ctx = cpu();
    let l = Layer::new();
    let (want_ids, want_w) = l.gate();
    let want = l.reference(&want_ids, &want_w, true);
    let (x, router, bias) = (r(&l.x, &[4, 8]), r(&l.router, &[4, 8]), r(&l.bias, &[4]));
    let (w1, w3, w2) = (r(&l.w[0], &[4, 4, 8]), r(&l.w[1], &[4, 4, 8]), r(&l.w[2], &[4, 8, 4]));
    let (s1, s3, s2) = (r(&l.s[0], &[6, 8]), r(&l.s[1], &[6, 8]), r(&l.s[2], &[8, 6]));
    let experts = MoeExpertWeights::new(&w1, &w3, &w2);
    let shared = MoeExpertWeights::new(&s1, &s3, &s2);
    let out = ctx.zeros(&[4, 8], DType::F32).unwrap();
    let (mut ids, mut weights) = ([0i32; 8], [0f32; 8]);

    let plan = ctx.moe_plan(&l.config, &x, &router, &experts, Some(&shared), &out).unwrap();
    let ws = plan.workspace_size().unwrap();
    assert!(ws > 0);
    assert!(format!("{plan:?}").contains("workspace_size"));
    plan.run(&ctx, &x, &router, Some(&bias), &experts, Some(&shared), &out, Some(&m(&mut ids, &[4, 2])),
             Some(&m(&mut weights, &[4, 2])))
        .unwrap();
    assert_eq!(ids.to_vec(), want_ids);
    assert_close(&weights, &want_w, 1e-5, 0.0);
    let first = out.to_vec::<f32>().unwrap();
    assert_close(&first, &want, 1e-4, 1e-5);

    ctx.reserve_workspace(ws).unwrap();
    let out2 = ctx.zeros(&[4, 8], DType::F32).unwrap();
    ctx.moe_forward_run(&plan, &x, &router, Some(&bias), &experts, Some(&shared), &out2, None, None).unwrap();
    assert_eq!(out2.to_vec::<f32>().unwrap(), first);
    let out3 = ctx.zeros(&[4, 8], DType::F32).unwrap();
    ctx.moe_forward(&l.config, &x, &router, Some(&bias), &experts, Some(&shared), &out3).unwrap();
    assert_eq!(out3.to_vec::<f32>().unwrap(), first);
    expect_invalid(plan.run(&ctx, &x, &router, Some(&bias), &experts, None, &out2, None, None), "shared");

    // Without shared experts.
    let routed = MoePlan::new(&ctx, &l.config, &x, &router, &experts, None, &out).unwrap();
    routed.run(&ctx, &x, &router, Some(&bias), &experts, None, &out, None, None).unwrap();
    assert_close(&out.to_vec::<f32>().unwrap(), &l.reference(&want_ids, &want_w, false), 1e-4, 1e-5);
    expect_invalid(routed.run(&ctx, &x, &router, Some(&bias), &experts, Some(&shared), &out, None, None), "shared");

    // The plan is Send + Sync and outlives the context that made it.
    fn assert_send_sync<P: Send + Sync>(_: &P) {}
    assert_send_sync(&plan);
    let other = cpu();
    let p2 = other.moe_plan(&l.config, &x, &router, &experts, None, &out).unwrap();
    drop(other);
    p2.run(&ctx, &x, &router, None, &experts, None, &out, None, None).unwrap();

    let bad = MoeGateConfig { top_k: 3, ..l.config };
    expect_invalid(MoePlan::new(&ctx, &bad, &x, &router, &experts, None, &out), "top_k");
}

#[test]
fn load_bias_and_ep_layout() {
    let ctx = cpu();
    let ids = [4i32, 1, 1, 6, 6, -1];
    let mut load = [0i64; 8];
    ctx.moe_load_accumulate(&r(&ids, &[3, 2]), 0, &m(&mut load, &[8])).unwrap();
    assert_eq!(load, [0, 2, 0, 0, 1, 0, 2, 0]);
    ctx.moe_load_accumulate(&r(&ids, &[3, 2]), 0, &m(&mut load, &[8])).unwrap();
    assert_eq!(load, [0, 4, 0, 0, 2, 0, 4, 0]);
    let mut local = [0i64; 4];
    ctx.moe_load_accumulate(&r(&[4i64, 1, 1, 6, 6, 7], &[3, 2]), 4, &m(&mut local, &[4])).unwrap();
    assert_eq!(local, [1, 0, 2, 1]);

    // mean 2: overloaded experts lose gamma, underloaded ones gain it, equal ones keep.
    let counts = [3i64, 1, 2, 2, 0, 4, 2, 2];
    let mut bias = [0f32, 0.0, 0.0, 0.0, 0.5, -0.5, 1.0, 0.0];
    ctx.moe_bias_update(&r(&counts, &[8]), &m(&mut bias, &[8]), 0.125).unwrap();
    assert_eq!(bias, [-0.125, 0.125, 0.0, 0.0, 0.625, -0.625, 1.0, 0.0]);
    let mut b2 = [0f32; 2];
    ctx.moe_bias_update(&r(&[1.0f32, 3.0], &[2]), &m(&mut b2, &[2]), 0.001).unwrap();
    assert_eq!(b2, [0.001, -0.001]);
    expect_invalid(ctx.moe_bias_update(&r(&counts, &[8]), &m(&mut bias, &[8]), -1.0), "gamma");

    // E 8 on 4 ranks: token 0 -> ranks 2, 0; token 1 -> 0, 3; token 2 -> 3.
    let (mut per_rank, mut per_expert, mut in_rank) = ([0i32; 4], [0i32; 8], [0u8; 12]);
    ctx.moe_ep_layout(&r(&ids, &[3, 2]), 8, 4, &m(&mut per_rank, &[4]), &m(&mut per_expert, &[8]),
                      &m(&mut in_rank, &[3, 4]))
        .unwrap();
    assert_eq!(per_rank, [2, 0, 1, 2]);
    assert_eq!(per_expert, [0, 2, 0, 0, 1, 0, 2, 0]);
    assert_eq!(in_rank, [1, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0, 1]);
    let bad = [4i32, 1, 1, 8, 6, -1];
    per_rank = [5; 4];
    expect_invalid(ctx.moe_ep_layout(&r(&bad, &[3, 2]), 8, 4, &m(&mut per_rank, &[4]), &m(&mut per_expert, &[8]),
                                     &m(&mut in_rank, &[3, 4])),
                   "ids");
    assert_eq!(per_rank, [5; 4]);
}
