//! MLA attention (dsk_mla.h) on the CPU backend against formulas computed here in f64: decode
//! with and without a plan, the plan's lifetime, cache append, weight absorption, latent
//! decompression and prefill, and one error per function.

use dsk::{mla_softmax_scale, Context, DType, ErrorKind, MlaDecodePlan, Tensor, TensorMut, TensorRef};

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
        if w.is_infinite() {
            assert_eq!(g as f64, w, "element {i}");
            continue;
        }
        assert!((g as f64 - w).abs() <= atol + rtol * w.abs(), "element {i}: got {g}, want {w}");
    }
}

fn values(ctx: &Context, t: &Tensor) -> Vec<f32> {
    ctx.clone_tensor(t, DType::F32).unwrap().to_vec::<f32>().unwrap()
}

/// A dsk tensor of `dtype` holding `v` (rounded to it).
fn tensor(ctx: &Context, v: &[f32], shape: &[i64], dtype: DType) -> Tensor {
    ctx.clone_tensor(&TensorRef::new(v, shape).unwrap(), dtype).unwrap()
}

fn expect_invalid<T: std::fmt::Debug>(r: dsk::Result<T>, name: &str) {
    let err = r.expect_err("expected an error");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let named = err.message().split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).any(|w| w == name);
    assert!(named, "message does not name {name}: {err}");
}

/// softmax(q . keys * scale) @ vals and the log-sum-exp; (0, -inf) without keys.
fn attend(q: &[f32], keys: &[&[f32]], vals: &[&[f32]], dv: usize, scale: f64) -> (Vec<f64>, f64) {
    if keys.is_empty() {
        return (vec![0.0; dv], f64::NEG_INFINITY);
    }
    let dot = |k: &[f32]| q.iter().zip(k).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>();
    let s: Vec<f64> = keys.iter().map(|k| dot(k) * scale).collect();
    let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let p: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
    let sum: f64 = p.iter().sum();
    let out = (0..dv).map(|d| p.iter().zip(vals).map(|(w, v)| w * v[d] as f64).sum::<f64>() / sum).collect();
    (out, m + sum.ln())
}

/// A small paged decode problem: B = 2, D = 16, Dv = 8, page 16, 3 pages, requests of 5 and 20
/// tokens in pages [2] and [1, 0]; every position no request owns holds NaN.
struct Decode {
    s: usize,
    hq: usize,
    hkv: usize,
    seqlens: Vec<i32>,
    block_table: Vec<i32>,
    num_pages: usize,
    q: Vec<f32>,
    cache: Vec<f32>,
}

const B: usize = 2;
const D: usize = 16;
const DV: usize = 8;
const PAGE: usize = 16;
const MAX_PAGES: usize = 2;

impl Decode {
    fn new(s: usize, hq: usize, hkv: usize, seqlens: [i32; 2], num_pages: usize, seed: u64) -> Decode {
        let block_table = vec![2, 0, 1, 0];
        let fresh = rand_vec(num_pages * PAGE * hkv * D, seed + 1);
        let mut cache = vec![f32::NAN; fresh.len()];
        for b in 0..B {
            for t in 0..seqlens[b] as usize {
                let row = (block_table[b * MAX_PAGES + t / PAGE] as usize * PAGE + t % PAGE) * hkv * D;
                cache[row..row + hkv * D].copy_from_slice(&fresh[row..row + hkv * D]);
            }
        }
        let q = rand_vec(B * s * hq * D, seed);
        Decode { s, hq, hkv, seqlens: seqlens.to_vec(), block_table, num_pages, q, cache }
    }

    /// (q, kv_cache, block_table, cache_seqlens, out) as dsk tensors, q/cache/out in f16.
    fn tensors(&self, ctx: &Context) -> (Tensor, Tensor, Tensor, Tensor, Tensor) {
        let (s, hq, hkv) = (self.s as i64, self.hq as i64, self.hkv as i64);
        let q = tensor(ctx, &self.q, &[B as i64, s, hq, D as i64], DType::F16);
        let cache = tensor(ctx, &self.cache, &[self.num_pages as i64, PAGE as i64, hkv, D as i64], DType::F16);
        let bt = TensorRef::new(&self.block_table, &[B as i64, MAX_PAGES as i64]).unwrap();
        let bt = ctx.clone_tensor(&bt, DType::I32).unwrap();
        let sl = ctx.clone_tensor(&TensorRef::new(&self.seqlens, &[B as i64]).unwrap(), DType::I32).unwrap();
        let out = ctx.zeros(&[B as i64, s, hq, DV as i64], DType::F16).unwrap();
        (q, cache, bt, sl, out)
    }

    /// out [B, S, Hq, Dv] and lse [B, Hq, S] from the values the f16 tensors hold.
    fn reference(&self, q: &[f32], cache: &[f32], scale: f64, causal: bool) -> (Vec<f64>, Vec<f64>) {
        let (s, hq, hkv) = (self.s, self.hq, self.hkv);
        let mut out = vec![0.0; B * s * hq * DV];
        let mut lse = vec![0.0; B * hq * s];
        for b in 0..B {
            let n = self.seqlens[b] as usize;
            for j in 0..s {
                let len = if causal { (n + j + 1).saturating_sub(s) } else { n };
                for h in 0..hq {
                    let hk = h / (hq / hkv);
                    let rows: Vec<&[f32]> = (0..len)
                        .map(|t| {
                            let page = self.block_table[b * MAX_PAGES + t / PAGE] as usize;
                            let at = ((page * PAGE + t % PAGE) * hkv + hk) * D;
                            &cache[at..at + D]
                        })
                        .collect();
                    let qi = ((b * s + j) * hq + h) * D;
                    let (o, l) = attend(&q[qi..qi + D], &rows, &rows, DV, scale);
                    let oi = ((b * s + j) * hq + h) * DV;
                    out[oi..oi + DV].copy_from_slice(&o);
                    lse[(b * hq + h) * s + j] = l;
                }
            }
        }
        (out, lse)
    }
}

#[test]
fn softmax_scale() {
    let m = 0.1 * 1.0 * 40f64.ln() + 1.0;
    let v3 = mla_softmax_scale(192, 40.0, 1.0, true).unwrap();
    assert_eq!(v3, (m * m / 192f64.sqrt()) as f32);
    assert!((v3 as f64 - 0.1352338).abs() < 1e-6, "{v3}");
    assert_eq!(mla_softmax_scale(192, 1.0, 1.0, false).unwrap(), (1.0 / 192f64.sqrt()) as f32);
    assert_eq!(mla_softmax_scale(192, 40.0, 1.0, false).unwrap(), mla_softmax_scale(192, 1.0, 1.0, false).unwrap());
    expect_invalid(mla_softmax_scale(0, 1.0, 1.0, false), "qk_head_dim");
}

#[test]
fn decode_with_and_without_a_plan_matches_naive() {
    let ctx = cpu();
    // (S, Hq, Hkv, causal): single-token decode, and MTP-style S > 1 where causality matters.
    for &(s, hq, hkv, causal) in &[(1, 2, 1, false), (2, 4, 2, true), (3, 2, 1, true)] {
        let p = Decode::new(s, hq, hkv, [5, 20], 3, 10 * s as u64 + hq as u64);
        let (q, cache, bt, sl, out) = p.tensors(&ctx);
        let lse = ctx.zeros(&[B as i64, hq as i64, s as i64], DType::F32).unwrap();
        let scale = 0.3f32;
        let (want, want_lse) = p.reference(&values(&ctx, &q), &values(&ctx, &cache), scale as f64, causal);

        let plan = ctx.mla_decode_plan(&q, &cache, &bt, &sl, &out).unwrap();
        assert!(plan.num_splits().unwrap() >= 1);
        plan.run(&ctx, &q, &cache, &bt, &sl, scale, causal, &out, Some(&lse)).unwrap();
        assert_close(&values(&ctx, &out), &want, 2.0 / 1024.0, 1e-3);
        assert_close(&lse.to_vec::<f32>().unwrap(), &want_lse, 1e-5, 1e-5);
        let first = values(&ctx, &out);

        // Context::mla_decode_run with the plan's workspace reserved, without lse.
        let mut ws_ctx = cpu();
        ws_ctx.reserve_workspace(plan.workspace_size().unwrap()).unwrap();
        ctx.fill(&out, 0.0).unwrap();
        ws_ctx.mla_decode_run(&plan, &q, &cache, &bt, &sl, scale, causal, &out, None).unwrap();
        assert_eq!(values(&ctx, &out), first);

        // One shot, into Rust slices.
        let mut out_h = vec![dsk::F16::default(); B * s * hq * DV];
        let mut lse_h = vec![0f32; B * hq * s];
        ctx.mla_decode(&q, &cache, &bt, &sl, scale, causal,
                       &TensorMut::new(&mut out_h, &[B as i64, s as i64, hq as i64, DV as i64]).unwrap(),
                       Some(&TensorMut::new(&mut lse_h, &[B as i64, hq as i64, s as i64]).unwrap())).unwrap();
        let mut out_f = vec![0f32; out_h.len()];
        dsk::convert_host(&out_h, &mut out_f).unwrap();
        assert_eq!(out_f, first);
        assert_close(&lse_h, &want_lse, 1e-5, 1e-5);
    }
}

#[test]
fn plan_serves_other_seqlens_and_page_counts() {
    let ctx = cpu();
    let p = Decode::new(1, 2, 1, [5, 20], 3, 3);
    let (q, cache, bt, sl, out) = p.tensors(&ctx);
    let plan = MlaDecodePlan::new(&ctx, &q, &cache, &bt, &sl, &out).unwrap();
    // Another step: one empty request, and a cache with more pages.
    let p2 = Decode::new(1, 2, 1, [0, 17], 5, 4);
    let (q2, cache2, _, sl2, _) = p2.tensors(&ctx);
    let lse = ctx.zeros(&[2, 2, 1], DType::F32).unwrap();
    plan.run(&ctx, &q2, &cache2, &bt, &sl2, 0.5, false, &out, Some(&lse)).unwrap();
    let (want, want_lse) = p2.reference(&values(&ctx, &q2), &values(&ctx, &cache2), 0.5, false);
    assert_close(&values(&ctx, &out), &want, 2.0 / 1024.0, 1e-3);
    let got_lse = lse.to_vec::<f32>().unwrap();
    assert_close(&got_lse, &want_lse, 1e-5, 1e-5);
    assert_eq!(&got_lse[..2], &[f32::NEG_INFINITY; 2]); // request 0 attends to nothing
    assert!(values(&ctx, &out)[..2 * DV].iter().all(|&x| x == 0.0));
}

#[test]
fn plan_lifetime() {
    let p = Decode::new(1, 2, 1, [5, 20], 3, 5);
    let ctx = cpu();
    let (q, cache, bt, sl, out) = p.tensors(&ctx);
    // A plan outlives the context that made it and runs on another thread with another context.
    let plan = {
        let maker = cpu();
        maker.mla_decode_plan(&q, &cache, &bt, &sl, &out).unwrap()
    };
    assert!(format!("{plan:?}").contains("num_splits"));
    let plan = std::sync::Arc::new(plan);
    let shared = plan.clone();
    let (q2, cache2, bt2, sl2, out2) = (q.clone(), cache.clone(), bt.clone(), sl.clone(), out.clone());
    std::thread::spawn(move || {
        let other = cpu();
        shared.run(&other, &q2, &cache2, &bt2, &sl2, 1.0, false, &out2, None).unwrap();
    })
    .join()
    .unwrap();
    let first = values(&ctx, &out);
    plan.run(&ctx, &q, &cache, &bt, &sl, 1.0, false, &out, None).unwrap();
    assert_eq!(values(&ctx, &out), first);
    drop(plan); // the last reference releases it
    // Many plans made and dropped (each released once; ASan builds would see a leak or a double
    // release).
    for _ in 0..16 {
        let _plan = MlaDecodePlan::new(&ctx, &q, &cache, &bt, &sl, &out).unwrap();
    }
}

#[test]
fn null_plan_is_the_library_error() {
    use dsk::sys;
    unsafe {
        let mut bytes = 0usize;
        let invalid = sys::DSK_ERR_INVALID_ARGUMENT;
        assert_eq!(sys::dsk_mla_decode_plan_workspace_size(std::ptr::null(), &mut bytes), invalid);
        let mut splits = 0i32;
        assert_eq!(sys::dsk_mla_decode_plan_num_splits(std::ptr::null(), &mut splits), invalid);
        let msg = std::ffi::CStr::from_ptr(sys::dsk_last_error_message()).to_string_lossy().into_owned();
        assert!(msg.contains("plan"), "{msg}");
        sys::dsk_mla_decode_plan_release(std::ptr::null_mut()); // a no-op
    }
}

#[test]
fn decode_errors_name_the_argument() {
    let ctx = cpu();
    let p = Decode::new(1, 2, 1, [5, 20], 3, 6);
    let (q, cache, bt, sl, out) = p.tensors(&ctx);
    let bt_f32 = ctx.clone_tensor(&bt, DType::F32).unwrap();
    expect_invalid(ctx.mla_decode_plan(&q, &cache, &bt_f32, &sl, &out), "block_table");
    let plan = ctx.mla_decode_plan(&q, &cache, &bt, &sl, &out).unwrap();
    expect_invalid(plan.run(&ctx, &q, &cache, &bt, &sl, 0.0, false, &out, None), "softmax_scale");
    expect_invalid(ctx.mla_decode_run(&plan, &q, &cache, &bt, &sl, f32::NAN, false, &out, None), "softmax_scale");
    let bad_lse = ctx.zeros(&[2, 2, 2], DType::F32).unwrap();
    expect_invalid(ctx.mla_decode(&q, &cache, &bt, &sl, 1.0, false, &out, Some(&bad_lse)), "lse");
    // A length past max_pages * page_size: refused on the CPU before anything is written.
    let far = [5i32, 33];
    ctx.fill(&out, 7.0).unwrap();
    expect_invalid(ctx.mla_decode(&q, &cache, &bt, &TensorRef::new(&far, &[2]).unwrap(), 1.0, false, &out, None),
                   "cache_seqlens");
    assert!(values(&ctx, &out).iter().all(|&x| x == 7.0));
}

#[test]
fn cache_append_writes_the_slots() {
    let ctx = cpu();
    let (t, h, dv, dr, pages) = (3usize, 2usize, 8usize, 8usize, 2usize);
    let d = dv + dr;
    let cache = ctx.zeros(&[pages as i64, PAGE as i64, h as i64, d as i64], DType::F16).unwrap();
    let c_kv = rand_vec(t * h * dv, 1);
    let k_pe = rand_vec(t * h * dr, 2);
    let slots = [17i64, -1, 3]; // token 1 is padding
    let (tc, tk) = (TensorRef::new(&c_kv, &[3, 2, 8]).unwrap(), TensorRef::new(&k_pe, &[3, 2, 8]).unwrap());
    ctx.mla_cache_append(&tc, &tk, &TensorRef::new(&slots, &[3]).unwrap(), &cache).unwrap();

    let c16 = values(&ctx, &ctx.clone_tensor(&tc, DType::F16).unwrap());
    let k16 = values(&ctx, &ctx.clone_tensor(&tk, DType::F16).unwrap());
    let mut want = vec![0f64; pages * PAGE * h * d];
    for (i, &s) in slots.iter().enumerate() {
        if s < 0 {
            continue;
        }
        for hh in 0..h {
            for e in 0..d {
                want[(s as usize * h + hh) * d + e] =
                    if e < dv { c16[(i * h + hh) * dv + e] } else { k16[(i * h + hh) * dr + e - dv] } as f64;
            }
        }
    }
    let got = values(&ctx, &cache);
    assert_close(&got, &want, 0.0, 0.0);

    // A slot outside [-1, num_pages * page_size): an error before anything is written.
    let bad = [0i64, 1, (pages * PAGE) as i64];
    expect_invalid(ctx.mla_cache_append(&tc, &tk, &TensorRef::new(&bad, &[3]).unwrap(), &cache), "slot_mapping");
    assert_eq!(values(&ctx, &cache), got);
}

const T: usize = 3;
const H: usize = 2;
const DN: usize = 4;
const DVH: usize = 3;
const DC: usize = 8;

/// Row r of head h's block of wkv_b [H * (dn + dv), Dc], column c.
fn w_at(w: &[f32], h: usize, r: usize, c: usize) -> f64 {
    w[(h * (DN + DVH) + r) * DC + c] as f64
}

#[test]
fn absorb_q_and_out() {
    let ctx = cpu();
    let w = rand_vec(H * (DN + DVH) * DC, 1);
    let q_nope = rand_vec(T * H * DN, 2);
    let o_latent = rand_vec(T * H * DC, 3);
    let tw = TensorRef::new(&w, &[(H * (DN + DVH)) as i64, DC as i64]).unwrap();
    let tq = TensorRef::new(&q_nope, &[T as i64, H as i64, DN as i64]).unwrap();
    let to = TensorRef::new(&o_latent, &[T as i64, H as i64, DC as i64]).unwrap();

    let mut q_latent = vec![0f32; T * H * DC];
    let shape = [T as i64, H as i64, DC as i64];
    ctx.mla_absorb_q(&tq, &tw, None, &TensorMut::new(&mut q_latent, &shape).unwrap()).unwrap();
    let mut want = vec![0f64; T * H * DC];
    for t in 0..T {
        for h in 0..H {
            for c in 0..DC {
                want[(t * H + h) * DC + c] =
                    (0..DN).map(|i| q_nope[(t * H + h) * DN + i] as f64 * w_at(&w, h, i, c)).sum();
            }
        }
    }
    assert_close(&q_latent, &want, 1e-5, 1e-6);

    let mut o = vec![0f32; T * H * DVH];
    ctx.mla_absorb_out(&to, &tw, None, &TensorMut::new(&mut o, &[T as i64, H as i64, DVH as i64]).unwrap()).unwrap();
    let mut want_o = vec![0f64; T * H * DVH];
    for t in 0..T {
        for h in 0..H {
            for j in 0..DVH {
                want_o[(t * H + h) * DVH + j] =
                    (0..DC).map(|c| o_latent[(t * H + h) * DC + c] as f64 * w_at(&w, h, DN + j, c)).sum();
            }
        }
    }
    assert_close(&o, &want_o, 1e-5, 1e-6);

    // fp8 weights with block scales give what the dequantized weights give.
    let wq = ctx.empty(&[(H * (DN + DVH)) as i64, DC as i64], DType::FP8_E4M3FN).unwrap();
    let ws = ctx.empty(&[1, 1], DType::F32).unwrap();
    ctx.quant_fp8_weight(&tw, &wq, &ws, false).unwrap();
    let wd = ctx.empty(&[(H * (DN + DVH)) as i64, DC as i64], DType::F32).unwrap();
    ctx.dequant_fp8_weight(&wq, &ws, &wd).unwrap();
    let (got, reference) = (ctx.empty(&[3, 2, 8], DType::F32).unwrap(), ctx.empty(&[3, 2, 8], DType::F32).unwrap());
    ctx.mla_absorb_q(&tq, &wq, Some(&ws), &got).unwrap();
    ctx.mla_absorb_q(&tq, &wd, None, &reference).unwrap();
    let r: Vec<f64> = reference.to_vec::<f32>().unwrap().iter().map(|&x| x as f64).collect();
    assert_close(&got.to_vec::<f32>().unwrap(), &r, 1e-5, 1e-6);
    let (got_o, ref_o) = (ctx.empty(&[3, 2, 3], DType::F32).unwrap(), ctx.empty(&[3, 2, 3], DType::F32).unwrap());
    ctx.mla_absorb_out(&to, &wq, Some(&ws), &got_o).unwrap();
    ctx.mla_absorb_out(&to, &wd, None, &ref_o).unwrap();
    let r: Vec<f64> = ref_o.to_vec::<f32>().unwrap().iter().map(|&x| x as f64).collect();
    assert_close(&got_o.to_vec::<f32>().unwrap(), &r, 1e-5, 1e-6);

    // A scale for float weights; an integer output.
    expect_invalid(ctx.mla_absorb_q(&tq, &tw, Some(&ws), &got), "wkv_b_scale");
    let o_int = ctx.zeros(&[3, 2, 3], DType::I32).unwrap();
    expect_invalid(ctx.mla_absorb_out(&to, &tw, None, &o_int), "o");
}

#[test]
fn decompress_kv() {
    let ctx = cpu();
    let dr = 2usize;
    let w = rand_vec(H * (DN + DVH) * DC, 4);
    let tw = TensorRef::new(&w, &[(H * (DN + DVH)) as i64, DC as i64]).unwrap();
    // c_kv and k_pe as column views of one latent buffer [T, Dc + Dr].
    let latent = rand_vec(T * (DC + dr), 5);
    let ld = (DC + dr) as i64;
    let c_kv = TensorRef::with_strides(&latent, &[T as i64, DC as i64], Some(&[ld, 1])).unwrap();
    let k_pe = TensorRef::with_strides(&latent[DC..], &[T as i64, dr as i64], Some(&[ld, 1])).unwrap();
    let k = ctx.empty(&[T as i64, H as i64, (DN + dr) as i64], DType::F32).unwrap();
    let v = ctx.empty(&[T as i64, H as i64, DVH as i64], DType::F32).unwrap();
    ctx.mla_decompress_kv(&c_kv, Some(&k_pe), &tw, None, &k, &v).unwrap();

    let mut want_k = vec![0f64; T * H * (DN + dr)];
    let mut want_v = vec![0f64; T * H * DVH];
    let mut want_kn = vec![0f64; T * H * DN];
    for t in 0..T {
        for h in 0..H {
            for r in 0..DN + DVH {
                let acc: f64 = (0..DC).map(|c| latent[t * (DC + dr) + c] as f64 * w_at(&w, h, r, c)).sum();
                if r < DN {
                    want_k[(t * H + h) * (DN + dr) + r] = acc;
                    want_kn[(t * H + h) * DN + r] = acc;
                } else {
                    want_v[(t * H + h) * DVH + r - DN] = acc;
                }
            }
            for i in 0..dr {
                want_k[(t * H + h) * (DN + dr) + DN + i] = latent[t * (DC + dr) + DC + i] as f64;
            }
        }
    }
    assert_close(&k.to_vec::<f32>().unwrap(), &want_k, 1e-5, 1e-6);
    assert_close(&v.to_vec::<f32>().unwrap(), &want_v, 1e-5, 1e-6);
    // Without k_pe, k holds only the dn decompressed values.
    let kn = ctx.empty(&[T as i64, H as i64, DN as i64], DType::F32).unwrap();
    ctx.mla_decompress_kv(&c_kv, None, &tw, None, &kn, &v).unwrap();
    assert_close(&kn.to_vec::<f32>().unwrap(), &want_kn, 1e-5, 1e-6);

    let v_int = ctx.zeros(&[T as i64, H as i64, DVH as i64], DType::I32).unwrap();
    expect_invalid(ctx.mla_decompress_kv(&c_kv, None, &tw, None, &kn, &v_int), "v");
}

#[test]
fn prefill_matches_naive() {
    let ctx = cpu();
    let (h, hk, dqk, dv) = (4usize, 2usize, 8usize, 8usize);
    let cu_q = [0i32, 2, 5, 6];
    let cu_k = [0i32, 3, 6, 6]; // request 2 has no keys: out 0, lse -inf
    let (tq, tk) = (6usize, 6usize);
    let q = tensor(&ctx, &rand_vec(tq * h * dqk, 1), &[tq as i64, h as i64, dqk as i64], DType::F16);
    let k = tensor(&ctx, &rand_vec(tk * hk * dqk, 2), &[tk as i64, hk as i64, dqk as i64], DType::F16);
    let v = tensor(&ctx, &rand_vec(tk * hk * dv, 3), &[tk as i64, hk as i64, dv as i64], DType::F16);
    let (qv, kv, vv) = (values(&ctx, &q), values(&ctx, &k), values(&ctx, &v));
    let tcq = TensorRef::new(&cu_q, &[4]).unwrap();
    let tck = TensorRef::new(&cu_k, &[4]).unwrap();
    let out = ctx.zeros(&[tq as i64, h as i64, dv as i64], DType::F16).unwrap();
    let lse = ctx.zeros(&[h as i64, tq as i64], DType::F32).unwrap();
    let reference = |cu_k: &[i32], causal: bool| {
        let mut want = vec![0f64; tq * h * dv];
        let mut want_lse = vec![0f64; h * tq];
        for b in 0..cu_q.len() - 1 {
            let (nq, nk) = ((cu_q[b + 1] - cu_q[b]) as usize, (cu_k[b + 1] - cu_k[b]) as usize);
            for j in 0..nq {
                let len = if causal { (nk + j + 1).saturating_sub(nq) } else { nk };
                let row = cu_q[b] as usize + j;
                for hh in 0..h {
                    let g = hh / (h / hk);
                    let key = |t: usize| ((cu_k[b] as usize + t) * hk + g) * dqk;
                    let val = |t: usize| ((cu_k[b] as usize + t) * hk + g) * dv;
                    let keys: Vec<&[f32]> = (0..len).map(|t| &kv[key(t)..key(t) + dqk]).collect();
                    let vals: Vec<&[f32]> = (0..len).map(|t| &vv[val(t)..val(t) + dv]).collect();
                    let qi = (row * h + hh) * dqk;
                    let (o, l) = attend(&qv[qi..qi + dqk], &keys, &vals, dv, 0.4);
                    want[(row * h + hh) * dv..(row * h + hh + 1) * dv].copy_from_slice(&o);
                    want_lse[hh * tq + row] = l;
                }
            }
        }
        (want, want_lse)
    };
    for causal in [false, true] {
        ctx.mla_prefill(&q, &k, &v, &tcq, Some(&tck), 0.4, causal, &out, Some(&lse)).unwrap();
        let (want, want_lse) = reference(&cu_k, causal);
        assert_close(&values(&ctx, &out), &want, 2.0 / 1024.0, 1e-3);
        assert_close(&lse.to_vec::<f32>().unwrap(), &want_lse, 1e-5, 1e-5);
        // cu_seqlens_k None means cu_seqlens_q; lse optional.
        ctx.mla_prefill(&q, &k, &v, &tcq, None, 0.4, causal, &out, None).unwrap();
        let (want, _) = reference(&cu_q, causal);
        assert_close(&values(&ctx, &out), &want, 2.0 / 1024.0, 1e-3);
    }
    let bad = [0i32, 4, 2, 6]; // decreasing
    let bad = TensorRef::new(&bad, &[4]).unwrap();
    expect_invalid(ctx.mla_prefill(&q, &k, &v, &bad, Some(&tck), 0.4, true, &out, None), "cu_seqlens_q");
}
