//! The core ops (dsk_ops.h) on the CPU backend against formulas computed here in f64.

use dsk::{fp8_blocks, Context, DType, ErrorKind, Fp8Kernel, GemmOptions, RopeConfig, RopeLayout, Tensor,
          TensorMut, TensorRef};

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

fn values(ctx: &Context, t: &Tensor) -> Vec<f32> {
    ctx.clone_tensor(t, DType::F32).unwrap().to_vec::<f32>().unwrap()
}

fn expect_invalid(r: dsk::Result<()>, name: &str) {
    let err = r.expect_err("expected an error");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let named = err.message().split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).any(|w| w == name);
    assert!(named, "message does not name {name}: {err}");
}

fn matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|p| a[i * k + p] as f64 * b[p * n + j] as f64).sum();
        }
    }
    out
}

#[test]
fn gemm_and_linear() {
    let ctx = cpu();
    let (m, k, n) = (5, 7, 3);
    let a = rand_vec(m * k, 1);
    let b = rand_vec(k * n, 2);
    let c = rand_vec(m * n, 3);
    let mut d = vec![0f32; m * n];
    let (ta, tb) = (TensorRef::new(&a, &[5, 7]).unwrap(), TensorRef::new(&b, &[7, 3]).unwrap());
    ctx.gemm(&ta, &tb, None, &TensorMut::new(&mut d, &[5, 3]).unwrap(), &GemmOptions::default()).unwrap();
    assert_close(&d, &matmul(&a, &b, m, k, n), 1e-5, 1e-6);

    // alpha, beta, C; and B given transposed (a [N, K] view with strides (1, N)).
    let bt = TensorRef::with_strides(&b, &[3, 7], Some(&[1, 3])).unwrap();
    let tc = TensorRef::new(&c, &[5, 3]).unwrap();
    ctx.gemm(&ta, &bt, Some(&tc), &TensorMut::new(&mut d, &[5, 3]).unwrap(),
             &GemmOptions::default().trans_b(true).alpha(0.5).beta(2.0)).unwrap();
    let want: Vec<f64> = matmul(&a, &b, m, k, n).iter().zip(&c).map(|(x, &c)| 0.5 * x + 2.0 * c as f64).collect();
    assert_close(&d, &want, 1e-5, 1e-6);

    // D += A @ B in place with a dsk tensor as both C and D.
    let dt = ctx.clone_tensor(&tc, DType::F32).unwrap();
    ctx.gemm(&ta, &tb, Some(&dt), &dt, &GemmOptions::default().beta(1.0)).unwrap();
    let want: Vec<f64> = matmul(&a, &b, m, k, n).iter().zip(&c).map(|(x, &c)| x + c as f64).collect();
    assert_close(&dt.to_vec::<f32>().unwrap(), &want, 1e-5, 1e-6);

    // linear: y = x @ w^T + bias, w [out, in]
    let x = rand_vec(2 * 8, 4);
    let w = rand_vec(4 * 8, 5);
    let bias = rand_vec(4, 6);
    let mut y = vec![0f32; 2 * 4];
    let tbias = TensorRef::new(&bias, &[4]).unwrap();
    ctx.linear(&TensorRef::new(&x, &[2, 8]).unwrap(), &TensorRef::new(&w, &[4, 8]).unwrap(), Some(&tbias),
               &TensorMut::new(&mut y, &[2, 4]).unwrap()).unwrap();
    let mut want = vec![0f64; 8];
    for i in 0..2 {
        for o in 0..4 {
            want[i * 4 + o] = bias[o] as f64 + (0..8).map(|p| x[i * 8 + p] as f64 * w[o * 8 + p] as f64).sum::<f64>();
        }
    }
    assert_close(&y, &want, 1e-5, 1e-6);

    // bf16 operands, bf16 output.
    let ab = ctx.clone_tensor(&ta, DType::BF16).unwrap();
    let bb = ctx.clone_tensor(&tb, DType::BF16).unwrap();
    let db = ctx.empty(&[5, 3], DType::BF16).unwrap();
    ctx.gemm(&ab, &bb, None, &db, &GemmOptions::default()).unwrap();
    let want = matmul(&values(&ctx, &ab), &values(&ctx, &bb), m, k, n);
    assert_close(&values(&ctx, &db), &want, 1.0 / 128.0, 1e-6);

    let bad = vec![0f32; 4 * 3];
    expect_invalid(ctx.gemm(&ta, &TensorRef::new(&bad, &[4, 3]).unwrap(), None,
                            &TensorMut::new(&mut d, &[5, 3]).unwrap(), &GemmOptions::default()), "b");
    expect_invalid(ctx.linear(&TensorRef::new(&x, &[2, 8]).unwrap(), &TensorRef::new(&w, &[8, 4]).unwrap(),
                              None, &TensorMut::new(&mut y, &[2, 4]).unwrap()), "w");
}

#[test]
fn fp8_round_trip_of_representable_values() {
    let ctx = cpu();
    // e4m3fn values with amax 448 in each 128-tile: scale 1, exact round trip.
    let grid = [448.0f32, -448.0, 1.0, -1.5, 0.25, 3.5, -96.0, 0.0, 0.015625, 240.0];
    let x: Vec<f32> = (0..256).map(|i| grid[i % grid.len()]).collect();
    let q = ctx.empty(&[2, 128], DType::FP8_E4M3FN).unwrap();
    let mut scales = vec![0f32; 2];
    let tx = TensorRef::new(&x, &[2, 128]).unwrap();
    ctx.quant_fp8_act(&tx, &q, &TensorMut::new(&mut scales, &[2, 1]).unwrap(), false).unwrap();
    assert_eq!(scales, vec![1.0, 1.0]);
    assert_eq!(values(&ctx, &q), x);
    let mut back = vec![0f32; 256];
    ctx.dequant_fp8_act(&q, &TensorRef::new(&scales, &[2, 1]).unwrap(), &TensorMut::new(&mut back, &[2, 128]).unwrap())
        .unwrap();
    assert_eq!(back, x);

    // Halved values: scale 0.5 (amax 224), still exact; a zero row gets scale 0 and q 0.
    let mut x2: Vec<f32> = x.iter().map(|v| v / 2.0).collect();
    x2[128..].iter_mut().for_each(|v| *v = 0.0);
    let mut s2 = vec![-1f32; 2];
    ctx.quant_fp8_act(&TensorRef::new(&x2, &[2, 128]).unwrap(), &q, &TensorMut::new(&mut s2, &[2, 1]).unwrap(), true)
        .unwrap();
    assert_eq!(s2, vec![0.5, 0.0]);
    let qv = values(&ctx, &q);
    assert_eq!(&qv[..128], &x[..128]);
    assert!(qv[128..].iter().all(|&v| v == 0.0));

    // Weights: [130, 200] -> scales [2, 2] (ragged blocks), round trip exact for these values.
    let w: Vec<f32> = (0..130 * 200).map(|i| grid[i % grid.len()]).collect();
    let wq = ctx.empty(&[130, 200], DType::FP8_E4M3FN).unwrap();
    let (nb, kb) = (fp8_blocks(130).unwrap(), fp8_blocks(200).unwrap());
    assert_eq!((nb, kb), (2, 2));
    let ws = ctx.empty(&[nb, kb], DType::F32).unwrap();
    let tw = TensorRef::new(&w, &[130, 200]).unwrap();
    ctx.quant_fp8_weight(&tw, &wq, &ws, false).unwrap();
    assert_eq!(ws.to_vec::<f32>().unwrap(), vec![1.0; 4]);
    let wd = ctx.empty(&[130, 200], DType::F32).unwrap();
    ctx.dequant_fp8_weight(&wq, &ws, &wd).unwrap();
    assert_eq!(wd.to_vec::<f32>().unwrap(), w);

    // linear_fp8 equals dequantize-then-GEMM, for fp8 x with scales and for float x.
    let xs = rand_vec(3 * 200, 7);
    let xq = ctx.empty(&[3, 200], DType::FP8_E4M3FN).unwrap();
    let xsc = ctx.empty(&[3, 2], DType::F32).unwrap();
    let txs = TensorRef::new(&xs, &[3, 200]).unwrap();
    ctx.quant_fp8_act(&txs, &xq, &xsc, false).unwrap();
    let xd = ctx.empty(&[3, 200], DType::F32).unwrap();
    ctx.dequant_fp8_act(&xq, &xsc, &xd).unwrap();
    let wt: Vec<f32> = {
        let wv = wd.to_vec::<f32>().unwrap();
        (0..200 * 130).map(|i| wv[(i % 130) * 200 + i / 130]).collect()
    };
    let want = matmul(&xd.to_vec::<f32>().unwrap(), &wt, 3, 200, 130);
    let y = ctx.empty(&[3, 130], DType::F32).unwrap();
    ctx.linear_fp8(&xq, Some(&xsc), &wq, &ws, &y, false).unwrap();
    // Terms up to 448 in magnitude: f32 accumulation of 200 of them.
    assert_close(&y.to_vec::<f32>().unwrap(), &want, 1e-5, 0.1);
    let y2 = ctx.empty(&[3, 130], DType::F32).unwrap();
    ctx.linear_fp8(&txs, None, &wq, &ws, &y2, false).unwrap();
    assert_close(&y2.to_vec::<f32>().unwrap(), &want, 1e-5, 0.1);
    assert_eq!(ctx.linear_fp8_kernel().unwrap(), Fp8Kernel::CpuReference);
    assert_eq!(Fp8Kernel::from_raw(dsk::sys::DSK_FP8_KERNEL_BLOCK_SCALED), Fp8Kernel::BlockScaled);

    let wrong = ctx.empty(&[3, 3], DType::F32).unwrap();
    expect_invalid(ctx.quant_fp8_act(&txs, &xq, &wrong, false), "scales");
    expect_invalid(ctx.dequant_fp8_act(&xq, &wrong, &xd), "scales");
    expect_invalid(ctx.quant_fp8_weight(&tw, &wq, &wrong, false), "scales");
    expect_invalid(ctx.dequant_fp8_weight(&wq, &wrong, &wd), "scales");
    expect_invalid(ctx.linear_fp8(&xq, Some(&xsc), &wq, &wrong, &y, false), "w_scales");
}

#[test]
fn rmsnorm_and_swiglu() {
    let ctx = cpu();
    let x = rand_vec(3 * 16, 8);
    let w: Vec<f32> = rand_vec(16, 9).iter().map(|v| 1.0 + v / 2.0).collect();
    let tx = TensorRef::new(&x, &[3, 16]).unwrap();
    let tw = TensorRef::new(&w, &[16]).unwrap();
    let rms = |h: &[f32], eps: f64| -> Vec<f64> {
        h.chunks(16)
            .flat_map(|row| {
                let ms = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / 16.0;
                let inv = 1.0 / (ms + eps).sqrt();
                row.iter().zip(&w).map(move |(&v, &g)| v as f64 * inv * g as f64).collect::<Vec<_>>()
            })
            .collect()
    };
    let mut y = vec![0f32; 48];
    ctx.rmsnorm(&tx, &tw, &TensorMut::new(&mut y, &[3, 16]).unwrap(), 1e-6).unwrap();
    assert_close(&y, &rms(&x, 1e-6), 1e-5, 1e-6);

    // Fused residual add, in place (y = x, residual_out = residual) on dsk tensors.
    let r = rand_vec(48, 10);
    let xt = ctx.clone_tensor(&tx, DType::F32).unwrap();
    let rt = ctx.clone_tensor(&TensorRef::new(&r, &[3, 16]).unwrap(), DType::F32).unwrap();
    ctx.add_rmsnorm(&xt, &rt, &tw, &xt, &rt, 1e-6).unwrap();
    let h: Vec<f32> = x.iter().zip(&r).map(|(a, b)| a + b).collect();
    assert_eq!(rt.to_vec::<f32>().unwrap(), h);
    assert_close(&xt.to_vec::<f32>().unwrap(), &rms(&h, 1e-6), 1e-5, 1e-6);

    // SwiGLU, separate and fused.
    let g = rand_vec(2 * 8, 11).iter().map(|v| v * 4.0).collect::<Vec<f32>>();
    let u = rand_vec(2 * 8, 12);
    let want: Vec<f64> = g.iter().zip(&u).map(|(&g, &u)| g as f64 / (1.0 + (-(g as f64)).exp()) * u as f64).collect();
    let mut ys = vec![0f32; 16];
    ctx.swiglu(&TensorRef::new(&g, &[2, 8]).unwrap(), &TensorRef::new(&u, &[2, 8]).unwrap(),
               &TensorMut::new(&mut ys, &[2, 8]).unwrap()).unwrap();
    assert_close(&ys, &want, 1e-5, 1e-6);
    let gu: Vec<f32> = (0..2).flat_map(|i| g[i * 8..i * 8 + 8].iter().chain(&u[i * 8..i * 8 + 8]).copied()).collect();
    let mut yf = vec![0f32; 16];
    ctx.swiglu_fused(&TensorRef::new(&gu, &[2, 16]).unwrap(), &TensorMut::new(&mut yf, &[2, 8]).unwrap()).unwrap();
    assert_close(&yf, &want, 1e-5, 1e-6);

    let short = TensorRef::new(&w[..8], &[8]).unwrap();
    expect_invalid(ctx.rmsnorm(&tx, &short, &TensorMut::new(&mut y, &[3, 16]).unwrap(), 1e-6), "weight");
    let rr = ctx.zeros(&[3, 15], DType::F32).unwrap();
    expect_invalid(ctx.add_rmsnorm(&xt, &rr, &tw, &xt, &rt, 1e-6), "residual");
    let ints = ctx.zeros(&[2, 8], DType::I32).unwrap();
    expect_invalid(ctx.swiglu(&TensorRef::new(&g, &[2, 8]).unwrap(), &ints, &TensorMut::new(&mut ys, &[2, 8]).unwrap()), "up");
    expect_invalid(ctx.swiglu_fused(&TensorRef::new(&gu[..14], &[2, 7]).unwrap(), &TensorMut::new(&mut ys[..6], &[2, 3]).unwrap()),
                   "gate_up");
}

#[test]
fn rope_table_and_apply() {
    let ctx = cpu();
    let cfg = RopeConfig::default();
    assert_eq!(cfg, RopeConfig::deepseek_v3());
    assert_eq!((cfg.dim, cfg.theta, cfg.factor, cfg.original_seq_len), (64, 10000.0, 40.0, 4096));
    assert_eq!((cfg.beta_fast, cfg.beta_slow, cfg.mscale, cfg.mscale_all_dim), (32.0, 1.0, 1.0, 1.0));
    assert_eq!(cfg.raw().struct_size as usize, std::mem::size_of::<dsk::sys::dsk_rope_config>());

    // No YaRN (factor 1): freq_i = theta^(-2i/dim); compare in f64.
    let small = RopeConfig { dim: 8, factor: 1.0, ..RopeConfig::default() };
    let p = 20;
    let cos = ctx.empty(&[p, 4], DType::F32).unwrap();
    let sin = ctx.empty(&[p, 4], DType::F32).unwrap();
    ctx.rope_table(&small, &cos, &sin).unwrap();
    let (cv, sv) = (cos.to_vec::<f32>().unwrap(), sin.to_vec::<f32>().unwrap());
    for pos in 0..p as usize {
        for i in 0..4 {
            let freq = 1.0 / 10000f64.powf(2.0 * i as f64 / 8.0);
            let ang = pos as f64 * freq;
            assert!((cv[pos * 4 + i] as f64 - ang.cos()).abs() < 1e-5, "cos[{pos}, {i}]");
            assert!((sv[pos * 4 + i] as f64 - ang.sin()).abs() < 1e-5, "sin[{pos}, {i}]");
        }
    }

    // Apply against the complex product, both layouts, [T, H, D], int64 and int32 positions.
    let x = rand_vec(3 * 2 * 8, 13);
    let tx = TensorRef::new(&x, &[3, 2, 8]).unwrap();
    let pos64 = [5i64, 0, 19];
    let pos32 = [5i32, 0, 19];
    for layout in [RopeLayout::Interleaved, RopeLayout::HalfSplit] {
        let mut y = vec![0f32; 48];
        ctx.rope_apply(&tx, &TensorRef::new(&pos64, &[3]).unwrap(), &cos, &sin,
                       &TensorMut::new(&mut y, &[3, 2, 8]).unwrap(), layout).unwrap();
        let mut y32 = vec![0f32; 48];
        ctx.rope_apply(&tx, &TensorRef::new(&pos32, &[3]).unwrap(), &cos, &sin,
                       &TensorMut::new(&mut y32, &[3, 2, 8]).unwrap(), layout).unwrap();
        assert_eq!(y, y32);
        let mut want = vec![0f64; 48];
        for t in 0..3 {
            for h in 0..2 {
                let base = (t * 2 + h) * 8;
                for i in 0..4 {
                    let (ia, ib) = match layout {
                        RopeLayout::Interleaved => (base + 2 * i, base + 2 * i + 1),
                        RopeLayout::HalfSplit => (base + i, base + i + 4),
                    };
                    let (c, s) = (cv[pos64[t] as usize * 4 + i] as f64, sv[pos64[t] as usize * 4 + i] as f64);
                    let (a, b) = (x[ia] as f64, x[ib] as f64);
                    want[ia] = a * c - b * s;
                    want[ib] = a * s + b * c;
                }
            }
        }
        assert_close(&y, &want, 1e-5, 1e-6);
    }

    let bad = [0i32, 20, 1];
    let mut y = vec![0f32; 48];
    expect_invalid(ctx.rope_apply(&tx, &TensorRef::new(&bad, &[3]).unwrap(), &cos, &sin,
                                  &TensorMut::new(&mut y, &[3, 2, 8]).unwrap(), RopeLayout::Interleaved),
                   "positions");
    let odd = RopeConfig { dim: 7, ..RopeConfig::default() };
    expect_invalid(ctx.rope_table(&odd, &cos, &sin), "dim");
}

#[test]
fn softmax_argmax_topk_embedding() {
    let ctx = cpu();
    let x = [1.0f32, 2.0, 3.0, 0.5, -1.0, 4.0, 4.0, 0.0];
    let tx = TensorRef::new(&x, &[2, 4]).unwrap();
    let mut y = vec![0f32; 8];
    ctx.softmax(&tx, &TensorMut::new(&mut y, &[2, 4]).unwrap(), 0.5).unwrap();
    let mut want = vec![0f64; 8];
    let mut want_log = vec![0f64; 8];
    for r in 0..2 {
        let row: Vec<f64> = x[r * 4..r * 4 + 4].iter().map(|&v| v as f64 / 0.5).collect();
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|v| (v - m).exp()).sum();
        for j in 0..4 {
            want[r * 4 + j] = (row[j] - m).exp() / sum;
            want_log[r * 4 + j] = row[j] - m - sum.ln();
        }
    }
    assert_close(&y, &want, 1e-5, 1e-7);
    ctx.log_softmax(&tx, &TensorMut::new(&mut y, &[2, 4]).unwrap(), 0.5).unwrap();
    assert_close(&y, &want_log, 1e-5, 1e-6);

    let mut idx = [0i64; 2];
    ctx.argmax(&tx, &TensorMut::new(&mut idx, &[2]).unwrap()).unwrap();
    assert_eq!(idx, [2, 1]); // ties (4.0, 4.0) go to the lower index

    let mut top = [0i32; 6];
    let mut vals = [0f32; 6];
    let vt = TensorMut::new(&mut vals, &[2, 3]).unwrap();
    ctx.topk(&tx, 3, Some(&vt), &TensorMut::new(&mut top, &[2, 3]).unwrap()).unwrap();
    drop(vt);
    assert_eq!(top, [2, 1, 0, 1, 2, 3]);
    assert_eq!(vals, [3.0, 2.0, 1.0, 4.0, 4.0, 0.0]);
    let mut top1 = [0i64; 2];
    ctx.topk(&tx, 1, None, &TensorMut::new(&mut top1, &[2, 1]).unwrap()).unwrap();
    assert_eq!(top1, [2, 1]);

    let table: Vec<f32> = (0..12).map(|v| v as f32).collect();
    let ids = [2i32, 0, 2];
    let out = ctx.empty(&[3, 4], DType::BF16).unwrap();
    ctx.embedding(&TensorRef::new(&table, &[3, 4]).unwrap(), &TensorRef::new(&ids, &[3]).unwrap(), &out).unwrap();
    assert_eq!(values(&ctx, &out), vec![8., 9., 10., 11., 0., 1., 2., 3., 8., 9., 10., 11.]);

    expect_invalid(ctx.softmax(&tx, &TensorMut::new(&mut y[..6], &[2, 3]).unwrap(), 1.0), "y");
    expect_invalid(ctx.log_softmax(&tx, &TensorMut::new(&mut y, &[2, 4]).unwrap(), -1.0), "temperature");
    let mut fidx = [0f32; 2];
    expect_invalid(ctx.argmax(&tx, &TensorMut::new(&mut fidx, &[2]).unwrap()), "indices");
    let mut t5 = [0i32; 10];
    expect_invalid(ctx.topk(&tx, 5, None, &TensorMut::new(&mut t5, &[2, 5]).unwrap()), "k");
    let bad_ids = [0i64, 3];
    let out2 = ctx.empty(&[2, 4], DType::F32).unwrap();
    expect_invalid(ctx.embedding(&TensorRef::new(&table, &[3, 4]).unwrap(), &TensorRef::new(&bad_ids, &[2]).unwrap(), &out2),
                   "ids");
}
