//! Token sampling from Rust: one seeded decode step for a batch, then greedy MTP verification.
use dsk::{Context, SamplingOutputs, SamplingParams, TensorMut, TensorRef, VerifyParams};

fn main() -> dsk::Result<()> {
    let ctx = Context::cpu()?;
    // [B, V] logits from the model's head (a small LCG here, no crates).
    let (b, v) = (4usize, 1000usize);
    let mut s = 42u64;
    let mut next = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 8.0 - 4.0
    };
    let logits: Vec<f32> = (0..b * v).map(|_| next()).collect();
    let logits_t = TensorRef::new(&logits, &[b as i64, v as i64])?;

    // Per-request temperatures and seeds; top-k 50 and top-p 0.9 for every row; decode step 5.
    let temperatures = [0.0f32, 1.0, 0.7, 0.9];
    let seeds = [11i64, 22, 33, 44];
    let (temps_t, seeds_t) = (TensorRef::new(&temperatures, &[4])?, TensorRef::new(&seeds, &[4])?);
    let params = SamplingParams {
        top_k: 50,
        top_p: 0.9,
        offset: 5,
        temperatures: Some(&temps_t),
        seeds: Some(&seeds_t),
        ..Default::default()
    };
    let (mut ids, mut logprobs) = ([0i32; 4], [0f32; 4]);
    {
        let (ids_t, lp_t) = (TensorMut::new(&mut ids, &[4])?, TensorMut::new(&mut logprobs, &[4])?);
        ctx.sample(&params, &logits_t, &SamplingOutputs::new(&ids_t).logprobs(&lp_t))?;
    }
    println!("ids {ids:?}, logprobs {logprobs:?}");
    let argmax0 = (0..v).fold(0, |m, j| if logits[j] > logits[m] { j } else { m });
    assert_eq!(ids[0] as usize, argmax0); // temperature 0 is greedy
    let mut again = [0i32; 4];
    ctx.sample_ids(&params, &logits_t, &TensorMut::new(&mut again, &[4])?)?;
    assert_eq!(again, ids); // the same seeds and step give the same tokens

    // Two MTP drafts per request, checked against the target's logits at 3 positions: the drafts
    // are the target's argmax at positions 0 and 1, except request 1 which drafted only one.
    let target: Vec<f32> = (0..b * 3 * v).map(|_| next()).collect();
    let mut drafts = [0i32; 8];
    for r in 0..b {
        for i in 0..2 {
            let row = &target[(r * 3 + i) * v..(r * 3 + i + 1) * v];
            drafts[r * 2 + i] = (0..v).fold(0, |m, j| if row[j] > row[m] { j } else { m }) as i32;
        }
    }
    drafts[3] = -1;
    let (mut out_ids, mut accepted) = ([0i32; 12], [0i32; 4]);
    ctx.speculative_verify(&VerifyParams::greedy(), &TensorRef::new(&drafts, &[4, 2])?, None,
                           &TensorRef::new(&target, &[4, 3, v as i64])?, &TensorMut::new(&mut out_ids, &[4, 3])?,
                           &TensorMut::new(&mut accepted, &[4])?, None)?;
    println!("accepted {accepted:?}, out_ids {out_ids:?}");
    assert_eq!(accepted, [2, 1, 2, 2]);
    Ok(())
}
