//! The README's Rust example: random f32 tensor -> bf16 -> f32.
use dsk::{Context, DType, RandomParams};

fn main() -> dsk::Result<()> {
    let ctx = Context::new()?; // CUDA when available, else CPU
    let x = ctx.empty(&[4, 8], DType::F32)?;
    ctx.fill_random(&x, &RandomParams::normal(42, 0.0, 1.0))?;
    let narrow = ctx.clone_tensor(&x, DType::BF16)?;
    let cpu = Context::cpu()?;
    let (a, b) = (cpu.clone_tensor(&x, DType::F32)?, cpu.clone_tensor(&narrow, DType::F32)?);
    let err = a.to_vec::<f32>()?.iter().zip(b.to_vec::<f32>()?).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    println!("dsk {} on {:?}: max |x - bf16(x)| = {err}", dsk::version_string(), ctx.backend()?);
    assert!(err < 0.02);
    Ok(())
}
