//! The core ops of `dsk_ops.h` as [`Context`] methods.
//!
//! Arguments come in the C order. Inputs are `&impl AsDLTensor`, outputs `&impl Writable`;
//! optional tensors (NULL in C) are `Option<&dyn AsDLTensor>` / `Option<&dyn Writable>`, so
//! `None` needs no type annotation. Outputs are written, never allocated. Where the C API allows
//! an output to be an input (in-place forms), pass the same [`Tensor`](crate::Tensor) twice.
//! Shapes, dtypes, rounding and errors are documented in `include/dsk/dsk_ops.h`.

use crate::context::Context;
use crate::error::{check, Error, Result};
use crate::tensor::{AsDLTensor, Writable};
use dsk_sys as sys;

pub(crate) fn opt(t: Option<&dyn AsDLTensor>) -> *const sys::DLTensor {
    t.map_or(std::ptr::null(), |t| t.dltensor())
}

pub(crate) fn opt_out(t: Option<&dyn Writable>) -> *const sys::DLTensor {
    t.map_or(std::ptr::null(), |t| t.dltensor())
}

fn quant_flags(scale_pow2: bool) -> u32 {
    if scale_pow2 {
        sys::DSK_QUANT_SCALE_POW2
    } else {
        0
    }
}

/// Transposes and scalars of [`Context::gemm`]; the default is `D = op(A) @ op(B)` without
/// transposes (alpha 1, beta 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GemmOptions {
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f32,
    pub beta: f32,
}

impl Default for GemmOptions {
    fn default() -> Self {
        GemmOptions { trans_a: false, trans_b: false, alpha: 1.0, beta: 0.0 }
    }
}

impl GemmOptions {
    pub fn trans_a(mut self, on: bool) -> Self {
        self.trans_a = on;
        self
    }

    pub fn trans_b(mut self, on: bool) -> Self {
        self.trans_b = on;
        self
    }

    pub fn alpha(mut self, alpha: f32) -> Self {
        self.alpha = alpha;
        self
    }

    pub fn beta(mut self, beta: f32) -> Self {
        self.beta = beta;
        self
    }
}

/// The kernel [`Context::linear_fp8`] runs (`DSK_FP8_KERNEL_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fp8Kernel {
    /// Host tensors: dequantize, then an f32 GEMM.
    CpuReference,
    /// cuBLASLt FP8 GEMM with 1x128 / 128x128 block scales.
    BlockScaled,
    /// CUDA: dequantize to bf16, then a bf16 GEMM.
    DequantGemm,
    /// A value this crate does not know (a newer libdsk).
    Other(i32),
}

impl Fp8Kernel {
    pub fn from_raw(raw: i32) -> Fp8Kernel {
        match raw {
            sys::DSK_FP8_KERNEL_CPU_REFERENCE => Fp8Kernel::CpuReference,
            sys::DSK_FP8_KERNEL_BLOCK_SCALED => Fp8Kernel::BlockScaled,
            sys::DSK_FP8_KERNEL_DEQUANT_GEMM => Fp8Kernel::DequantGemm,
            other => Fp8Kernel::Other(other),
        }
    }

    pub fn raw(self) -> i32 {
        match self {
            Fp8Kernel::CpuReference => sys::DSK_FP8_KERNEL_CPU_REFERENCE,
            Fp8Kernel::BlockScaled => sys::DSK_FP8_KERNEL_BLOCK_SCALED,
            Fp8Kernel::DequantGemm => sys::DSK_FP8_KERNEL_DEQUANT_GEMM,
            Fp8Kernel::Other(v) => v,
        }
    }
}

/// RoPE/YaRN parameters (`dsk_rope_config`). `Default` is DeepSeek-V3's configuration, as
/// `dsk_rope_config_init` fills it (dim 64, theta 10000, factor 40, original_seq_len 4096,
/// beta_fast 32, beta_slow 1, mscale 1, mscale_all_dim 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeConfig {
    pub dim: i32,
    pub theta: f64,
    pub factor: f64,
    pub original_seq_len: i64,
    pub beta_fast: f64,
    pub beta_slow: f64,
    pub mscale: f64,
    pub mscale_all_dim: f64,
}

impl Default for RopeConfig {
    fn default() -> Self {
        RopeConfig::from_raw(&RopeConfig::init_raw())
    }
}

impl RopeConfig {
    /// DeepSeek-V3's configuration (the same as `Default`).
    pub fn deepseek_v3() -> Self {
        RopeConfig::default()
    }

    fn init_raw() -> sys::dsk_rope_config {
        let mut raw = unsafe { std::mem::zeroed::<sys::dsk_rope_config>() };
        // Only fails for a NULL pointer, which this never passes.
        let status = unsafe { sys::dsk_rope_config_init(&mut raw) };
        debug_assert_eq!(status, sys::DSK_OK);
        raw
    }

    fn from_raw(raw: &sys::dsk_rope_config) -> Self {
        RopeConfig {
            dim: raw.dim,
            theta: raw.theta,
            factor: raw.factor,
            original_seq_len: raw.original_seq_len,
            beta_fast: raw.beta_fast,
            beta_slow: raw.beta_slow,
            mscale: raw.mscale,
            mscale_all_dim: raw.mscale_all_dim,
        }
    }

    /// The C struct, with `struct_size` set by `dsk_rope_config_init`.
    pub fn raw(&self) -> sys::dsk_rope_config {
        let mut raw = RopeConfig::init_raw();
        raw.dim = self.dim;
        raw.theta = self.theta;
        raw.factor = self.factor;
        raw.original_seq_len = self.original_seq_len;
        raw.beta_fast = self.beta_fast;
        raw.beta_slow = self.beta_slow;
        raw.mscale = self.mscale;
        raw.mscale_all_dim = self.mscale_all_dim;
        raw
    }
}

/// Which elements [`Context::rope_apply`] rotates together (`DSK_ROPE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RopeLayout {
    /// Pairs (2i, 2i+1): DeepSeek's reference model.
    #[default]
    Interleaved,
    /// Pairs (i, i + D/2): Hugging Face / GPT-NeoX checkpoints.
    HalfSplit,
}

impl RopeLayout {
    pub fn raw(self) -> i32 {
        match self {
            RopeLayout::Interleaved => sys::DSK_ROPE_INTERLEAVED,
            RopeLayout::HalfSplit => sys::DSK_ROPE_HALF_SPLIT,
        }
    }
}

impl Context {
    /// `d = alpha * op(a) @ op(b) + beta * c` (`dsk_gemm`): op(a) `[M, K]`, op(b) `[K, N]`, c and
    /// d `[M, N]`, or batched `[batch, ...]` with 2-D operands broadcast. `c` may be `None` or `d`
    /// itself (accumulate in place).
    pub fn gemm(&self, a: &impl AsDLTensor, b: &impl AsDLTensor, c: Option<&dyn AsDLTensor>,
                d: &impl Writable, options: &GemmOptions) -> Result<()> {
        check(unsafe {
            sys::dsk_gemm(self.as_ptr(), a.dltensor(), b.dltensor(), opt(c), d.dltensor(),
                          options.trans_a as i32, options.trans_b as i32, options.alpha, options.beta)
        })
    }

    /// `y = x @ w^T + bias` (`dsk_linear`): x `[..., in]`, w `[out, in]`, bias `[out]`.
    pub fn linear(&self, x: &impl AsDLTensor, w: &impl AsDLTensor, bias: Option<&dyn AsDLTensor>,
                  y: &impl Writable) -> Result<()> {
        check(unsafe { sys::dsk_linear(self.as_ptr(), x.dltensor(), w.dltensor(), opt(bias), y.dltensor()) })
    }

    /// Per-1x128-tile FP8 quantization (`dsk_quant_fp8_act`): x `[..., K]` -> q `[..., K]`
    /// fp8_e4m3fn and scales `[..., ceil(K/128)]` f32; `scale_pow2` rounds scales up to powers
    /// of two (UE8M0).
    pub fn quant_fp8_act(&self, x: &impl AsDLTensor, q: &impl Writable, scales: &impl Writable,
                         scale_pow2: bool) -> Result<()> {
        check(unsafe {
            sys::dsk_quant_fp8_act(self.as_ptr(), x.dltensor(), q.dltensor(), scales.dltensor(),
                                   quant_flags(scale_pow2))
        })
    }

    /// `x = q * scales` per 1x128 tile (`dsk_dequant_fp8_act`).
    pub fn dequant_fp8_act(&self, q: &impl AsDLTensor, scales: &impl AsDLTensor, x: &impl Writable) -> Result<()> {
        check(unsafe { sys::dsk_dequant_fp8_act(self.as_ptr(), q.dltensor(), scales.dltensor(), x.dltensor()) })
    }

    /// Per-128x128-block FP8 quantization (`dsk_quant_fp8_weight`): w `[N, K]` -> q `[N, K]`
    /// fp8_e4m3fn and scales `[ceil(N/128), ceil(K/128)]` f32.
    pub fn quant_fp8_weight(&self, w: &impl AsDLTensor, q: &impl Writable, scales: &impl Writable,
                            scale_pow2: bool) -> Result<()> {
        check(unsafe {
            sys::dsk_quant_fp8_weight(self.as_ptr(), w.dltensor(), q.dltensor(), scales.dltensor(),
                                      quant_flags(scale_pow2))
        })
    }

    /// `w = q * scales` per 128x128 block (`dsk_dequant_fp8_weight`).
    pub fn dequant_fp8_weight(&self, q: &impl AsDLTensor, scales: &impl AsDLTensor, w: &impl Writable) -> Result<()> {
        check(unsafe { sys::dsk_dequant_fp8_weight(self.as_ptr(), q.dltensor(), scales.dltensor(), w.dltensor()) })
    }

    /// `y = x @ w^T` with fp8 w and its block scales (`dsk_linear_fp8`). With `x_scales` `None`,
    /// x is a float tensor quantized per 1x128 tile first (`scale_pow2` as in
    /// [`quant_fp8_act`](Self::quant_fp8_act)); otherwise x is fp8_e4m3fn with these tile scales
    /// and `scale_pow2` must be false.
    pub fn linear_fp8(&self, x: &impl AsDLTensor, x_scales: Option<&dyn AsDLTensor>, w: &impl AsDLTensor,
                      w_scales: &impl AsDLTensor, y: &impl Writable, scale_pow2: bool) -> Result<()> {
        check(unsafe {
            sys::dsk_linear_fp8(self.as_ptr(), x.dltensor(), opt(x_scales), w.dltensor(), w_scales.dltensor(),
                                y.dltensor(), quant_flags(scale_pow2))
        })
    }

    /// The kernel [`linear_fp8`](Self::linear_fp8) runs on this context's device.
    pub fn linear_fp8_kernel(&self) -> Result<Fp8Kernel> {
        let mut raw = 0;
        check(unsafe { sys::dsk_linear_fp8_kernel(self.as_ptr(), &mut raw) })?;
        Ok(Fp8Kernel::from_raw(raw))
    }

    /// RMSNorm over the last dimension (`dsk_rmsnorm`); y may be x.
    pub fn rmsnorm(&self, x: &impl AsDLTensor, weight: &impl AsDLTensor, y: &impl Writable, eps: f32) -> Result<()> {
        check(unsafe { sys::dsk_rmsnorm(self.as_ptr(), x.dltensor(), weight.dltensor(), y.dltensor(), eps) })
    }

    /// `h = x + residual` (rounded to residual_out's dtype), `residual_out = h`,
    /// `y = rmsnorm(h) * weight` (`dsk_add_rmsnorm`); residual_out may be residual, y may be x.
    pub fn add_rmsnorm(&self, x: &impl AsDLTensor, residual: &impl AsDLTensor, weight: &impl AsDLTensor,
                       y: &impl Writable, residual_out: &impl Writable, eps: f32) -> Result<()> {
        check(unsafe {
            sys::dsk_add_rmsnorm(self.as_ptr(), x.dltensor(), residual.dltensor(), weight.dltensor(),
                                 y.dltensor(), residual_out.dltensor(), eps)
        })
    }

    /// `y = silu(gate) * up` (`dsk_swiglu`).
    pub fn swiglu(&self, gate: &impl AsDLTensor, up: &impl AsDLTensor, y: &impl Writable) -> Result<()> {
        check(unsafe { sys::dsk_swiglu(self.as_ptr(), gate.dltensor(), up.dltensor(), y.dltensor()) })
    }

    /// SwiGLU of a fused `[..., 2I]` projection (gate first) into y `[..., I]` (`dsk_swiglu_fused`).
    pub fn swiglu_fused(&self, gate_up: &impl AsDLTensor, y: &impl Writable) -> Result<()> {
        check(unsafe { sys::dsk_swiglu_fused(self.as_ptr(), gate_up.dltensor(), y.dltensor()) })
    }

    /// The cos/sin tables `[P, dim/2]` f32 for positions 0..P-1 (`dsk_rope_table`).
    pub fn rope_table(&self, config: &RopeConfig, cos: &impl Writable, sin: &impl Writable) -> Result<()> {
        let raw = config.raw();
        check(unsafe { sys::dsk_rope_table(self.as_ptr(), &raw, cos.dltensor(), sin.dltensor()) })
    }

    /// Rotates x `[T, H, D]` or `[T, D]` by the table rows of `positions` `[T]` into y
    /// (`dsk_rope_apply`); y may be x.
    pub fn rope_apply(&self, x: &impl AsDLTensor, positions: &impl AsDLTensor, cos: &impl AsDLTensor,
                      sin: &impl AsDLTensor, y: &impl Writable, layout: RopeLayout) -> Result<()> {
        check(unsafe {
            sys::dsk_rope_apply(self.as_ptr(), x.dltensor(), positions.dltensor(), cos.dltensor(),
                                sin.dltensor(), y.dltensor(), layout.raw())
        })
    }

    /// Softmax of `x / temperature` over the last dimension (`dsk_softmax`); y may be x.
    pub fn softmax(&self, x: &impl AsDLTensor, y: &impl Writable, temperature: f32) -> Result<()> {
        check(unsafe { sys::dsk_softmax(self.as_ptr(), x.dltensor(), y.dltensor(), temperature) })
    }

    /// Log-softmax of `x / temperature` over the last dimension (`dsk_log_softmax`).
    pub fn log_softmax(&self, x: &impl AsDLTensor, y: &impl Writable, temperature: f32) -> Result<()> {
        check(unsafe { sys::dsk_log_softmax(self.as_ptr(), x.dltensor(), y.dltensor(), temperature) })
    }

    /// Index of each row's maximum (`dsk_argmax`): ties to the lower index, NaN largest.
    pub fn argmax(&self, x: &impl AsDLTensor, indices: &impl Writable) -> Result<()> {
        check(unsafe { sys::dsk_argmax(self.as_ptr(), x.dltensor(), indices.dltensor()) })
    }

    /// The k largest of each row, descending, ties to the lower index (`dsk_topk`); `values` may
    /// be `None`.
    pub fn topk(&self, x: &impl AsDLTensor, k: i32, values: Option<&dyn Writable>,
                indices: &impl Writable) -> Result<()> {
        check(unsafe { sys::dsk_topk(self.as_ptr(), x.dltensor(), k, opt_out(values), indices.dltensor()) })
    }

    /// `out[..., :] = table[ids[...], :]` (`dsk_embedding`).
    pub fn embedding(&self, table: &impl AsDLTensor, ids: &impl AsDLTensor, out: &impl Writable) -> Result<()> {
        check(unsafe { sys::dsk_embedding(self.as_ptr(), table.dltensor(), ids.dltensor(), out.dltensor()) })
    }
}

/// `ceil(n / DSK_FP8_BLOCK)`: the number of FP8 scale tiles or blocks along a dimension of `n`.
pub fn fp8_blocks(n: i64) -> Result<i64> {
    if n < 0 {
        return Err(Error::invalid(format!("fp8_blocks: negative size {n}")));
    }
    Ok((n + sys::DSK_FP8_BLOCK - 1) / sys::DSK_FP8_BLOCK)
}
