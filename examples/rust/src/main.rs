//! The README's Rust example: random f32 tensor -> bf16 -> f32.
use dsk::{Context, DType, RandomParams};

fn main() -> dsk::Result<()> {
    let mut ctx = Context::new()?; // CUDA when available, else CPU
    let x = ctx.empty(&[4, 8], DType::F32)?;
    ctx.fill_random(&x, &RandomParams::normal(42, 0.0, 1.0))?;
    let narrow = ctx.clone_tensor(&x, DType::BF16)?;
    // Host copies go through ctx, which owns the device memory (a CPU context cannot read CUDA).
    let cpu = Context::cpu()?;
    let (a, b) = (cpu.empty(&[4, 8], DType::F32)?, cpu.empty(&[4, 8], DType::F32)?);
    ctx.copy(&x, &a)?;
    ctx.copy(&narrow, &b)?;
    ctx.synchronize()?;
    let err = a.to_vec::<f32>()?.iter().zip(b.to_vec::<f32>()?).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    println!("dsk {} on {:?}: max |x - bf16(x)| = {err}", dsk::version_string(), ctx.backend()?);
    assert!(err < 0.02);
    Ok(())
}
