//! Mixture of Experts of `dsk_moe.h`: the gate parameters [`MoeGateConfig`], expert weights
//! [`MoeExpertWeights`], the layer plan [`MoePlan`], [`moe_dispatch_capacity`] and the ops as
//! [`Context`] methods (gate, router gate, dispatch, permute, combine, experts, the whole layer,
//! load statistics, the bias update and the expert-parallel layout).
//!
//! The conventions of the core ops apply: arguments in the C order, inputs `&impl AsDLTensor`,
//! outputs `&impl Writable`, optional tensors `Option<&dyn AsDLTensor>` / `Option<&dyn Writable>`
//! (`None` = NULL). Shapes, dtypes and semantics are documented in `include/dsk/dsk_moe.h`.
//!
//! ```
//! use dsk::{Context, MoeGateConfig, TensorMut, TensorRef};
//!
//! // 8 experts in 4 groups, 2 groups kept, 2 experts per token, sigmoid scores plus a bias.
//! let config = MoeGateConfig { num_experts: 8, top_k: 2, n_group: 4, topk_group: 2, ..Default::default() };
//! let ctx = Context::cpu()?;
//! let logits = [0.0f32, 1.0, -1.0, 2.0, 0.5, -2.0, 3.0, -3.0];
//! let bias = [0.1f32, 0.0, 0.0, 0.0, 0.3, 0.3, -0.6, 0.0];
//! let (mut ids, mut weights) = ([0i32; 2], [0f32; 2]);
//! ctx.moe_gate(&config, &TensorRef::new(&logits, &[1, 8])?, Some(&TensorRef::new(&bias, &[8])?),
//!              &TensorMut::new(&mut ids, &[1, 2])?, &TensorMut::new(&mut weights, &[1, 2])?, None)?;
//! assert_eq!(ids, [4, 1]);  // groups {4, 5} and {0, 1} win; expert 6 loses by its bias
//! assert!((weights[0] + weights[1] - 2.5).abs() < 1e-5);  // renormalized, times 2.5
//! # Ok::<(), dsk::Error>(())
//! ```

use crate::context::Context;
use crate::dtype::DType;
use crate::error::{check, Error, Result};
use crate::ops::{opt, opt_out};
use crate::tensor::{AsDLTensor, Writable};
use dsk_sys as sys;
use std::ptr::NonNull;

/// The gate's score function (`DSK_MOE_SCORE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MoeScoreFunc {
    /// Softmax over the row (DeepSeek-V2).
    Softmax,
    /// `1 / (1 + exp(-x))` (DeepSeek-V3).
    Sigmoid,
    /// The logits are already scores.
    Identity,
    /// A raw value this crate does not know (passed through; the library validates it).
    Other(i32),
}

impl MoeScoreFunc {
    pub fn from_raw(raw: i32) -> MoeScoreFunc {
        match raw {
            sys::DSK_MOE_SCORE_SOFTMAX => MoeScoreFunc::Softmax,
            sys::DSK_MOE_SCORE_SIGMOID => MoeScoreFunc::Sigmoid,
            sys::DSK_MOE_SCORE_NONE => MoeScoreFunc::Identity,
            other => MoeScoreFunc::Other(other),
        }
    }

    pub fn raw(self) -> i32 {
        match self {
            MoeScoreFunc::Softmax => sys::DSK_MOE_SCORE_SOFTMAX,
            MoeScoreFunc::Sigmoid => sys::DSK_MOE_SCORE_SIGMOID,
            MoeScoreFunc::Identity => sys::DSK_MOE_SCORE_NONE,
            MoeScoreFunc::Other(v) => v,
        }
    }
}

/// How a group of experts is scored for group-limited routing (`DSK_MOE_GROUP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MoeGroupRule {
    /// `Top2Sum` with a bias, `Max` without (DeepSeek's reference).
    Auto,
    /// The group's largest biased score.
    Max,
    /// The sum of the group's two largest biased scores.
    Top2Sum,
    /// A raw value this crate does not know (passed through; the library validates it).
    Other(i32),
}

impl MoeGroupRule {
    pub fn from_raw(raw: i32) -> MoeGroupRule {
        match raw {
            sys::DSK_MOE_GROUP_AUTO => MoeGroupRule::Auto,
            sys::DSK_MOE_GROUP_MAX => MoeGroupRule::Max,
            sys::DSK_MOE_GROUP_TOP2SUM => MoeGroupRule::Top2Sum,
            other => MoeGroupRule::Other(other),
        }
    }

    pub fn raw(self) -> i32 {
        match self {
            MoeGroupRule::Auto => sys::DSK_MOE_GROUP_AUTO,
            MoeGroupRule::Max => sys::DSK_MOE_GROUP_MAX,
            MoeGroupRule::Top2Sum => sys::DSK_MOE_GROUP_TOP2SUM,
            MoeGroupRule::Other(v) => v,
        }
    }
}

/// Bit of a row flag written by the gate: the row has no finite score (valid ids, weights 0).
pub const MOE_ROW_NO_FINITE: u8 = sys::DSK_MOE_ROW_NO_FINITE as u8;
/// Bit of a row flag written by the gate: fewer than k finite candidates (the extra picks weigh 0).
pub const MOE_ROW_SHORT: u8 = sys::DSK_MOE_ROW_SHORT as u8;

/// The gate's parameters (`dsk_moe_gate_config`). `Default` is DeepSeek-V3's gate, as
/// `dsk_moe_gate_config_init` fills it: 256 experts, k 8, 8 groups, 4 kept, sigmoid, `Auto`,
/// renormalized, scale 2.5, f32 scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MoeGateConfig {
    /// E, the routed experts.
    pub num_experts: i32,
    /// k, experts per token.
    pub top_k: i32,
    /// G, expert groups (1 = no group limit).
    pub n_group: i32,
    /// Groups kept per token.
    pub topk_group: i32,
    pub score_func: MoeScoreFunc,
    pub group_rule: MoeGroupRule,
    /// Divide the k weights by their sum (norm_topk_prob).
    pub renormalize: bool,
    pub routed_scaling_factor: f32,
    /// `DType::F32`, or `DType::BF16` to reproduce the GitHub reference's bf16 steps.
    pub score_dtype: DType,
}

impl Default for MoeGateConfig {
    fn default() -> Self {
        MoeGateConfig::from_raw(&MoeGateConfig::init_raw())
    }
}

impl MoeGateConfig {
    /// DeepSeek-V3's gate (the same as `Default`).
    pub fn deepseek_v3() -> Self {
        MoeGateConfig::default()
    }

    /// DeepSeek-V2's gate: 160 experts, k 6, 8 groups, 3 kept, softmax, not renormalized, scale 16.
    pub fn deepseek_v2() -> Self {
        MoeGateConfig {
            num_experts: 160,
            top_k: 6,
            n_group: 8,
            topk_group: 3,
            score_func: MoeScoreFunc::Softmax,
            renormalize: false,
            routed_scaling_factor: 16.0,
            ..MoeGateConfig::default()
        }
    }

    /// DeepSeek-V2-Lite's gate: 64 experts, k 6, no groups, softmax, not renormalized, scale 1.
    pub fn deepseek_v2_lite() -> Self {
        MoeGateConfig {
            num_experts: 64,
            top_k: 6,
            n_group: 1,
            topk_group: 1,
            score_func: MoeScoreFunc::Softmax,
            renormalize: false,
            routed_scaling_factor: 1.0,
            ..MoeGateConfig::default()
        }
    }

    fn init_raw() -> sys::dsk_moe_gate_config {
        let mut raw = unsafe { std::mem::zeroed::<sys::dsk_moe_gate_config>() };
        // Only fails for a NULL pointer, which this never passes.
        let status = unsafe { sys::dsk_moe_gate_config_init(&mut raw) };
        debug_assert_eq!(status, sys::DSK_OK);
        raw
    }

    fn from_raw(raw: &sys::dsk_moe_gate_config) -> Self {
        MoeGateConfig {
            num_experts: raw.num_experts,
            top_k: raw.top_k,
            n_group: raw.n_group,
            topk_group: raw.topk_group,
            score_func: MoeScoreFunc::from_raw(raw.score_func),
            group_rule: MoeGroupRule::from_raw(raw.group_rule),
            renormalize: raw.renormalize != 0,
            routed_scaling_factor: raw.routed_scaling_factor,
            score_dtype: DType::from_id(raw.score_dtype).unwrap_or(DType::F32),
        }
    }

    /// The C struct, with `struct_size` set by `dsk_moe_gate_config_init`. A `score_dtype` dsk
    /// does not support becomes id 0, which the library refuses.
    pub fn raw(&self) -> sys::dsk_moe_gate_config {
        let mut raw = MoeGateConfig::init_raw();
        raw.num_experts = self.num_experts;
        raw.top_k = self.top_k;
        raw.n_group = self.n_group;
        raw.topk_group = self.topk_group;
        raw.score_func = self.score_func.raw();
        raw.group_rule = self.group_rule.raw();
        raw.renormalize = self.renormalize as i32;
        raw.routed_scaling_factor = self.routed_scaling_factor;
        raw.score_dtype = self.score_dtype.id().unwrap_or(0);
        raw
    }
}

/// SwiGLU expert weights (`dsk_moe_expert_weights`), borrowed: `y = (silu(x @ w1^T) * (x @
/// w3^T)) @ w2^T`. Routed experts: w1, w3 `[E, I, D]`, w2 `[E, D, I]`; shared experts: w1, w3
/// `[Is, D]`, w2 `[D, Is]`. One float dtype, or fp8_e4m3fn with the 128 x 128 block scales
/// (`None` for float weights).
#[derive(Clone, Copy)]
pub struct MoeExpertWeights<'a> {
    /// Gate projection.
    pub w1: &'a dyn AsDLTensor,
    /// Up projection.
    pub w3: &'a dyn AsDLTensor,
    /// Down projection.
    pub w2: &'a dyn AsDLTensor,
    pub w1_scales: Option<&'a dyn AsDLTensor>,
    pub w3_scales: Option<&'a dyn AsDLTensor>,
    pub w2_scales: Option<&'a dyn AsDLTensor>,
}

impl std::fmt::Debug for MoeExpertWeights<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MoeExpertWeights").field("fp8", &self.w1_scales.is_some()).finish_non_exhaustive()
    }
}

impl<'a> MoeExpertWeights<'a> {
    /// Float weights.
    pub fn new(w1: &'a dyn AsDLTensor, w3: &'a dyn AsDLTensor, w2: &'a dyn AsDLTensor) -> Self {
        MoeExpertWeights { w1, w3, w2, w1_scales: None, w3_scales: None, w2_scales: None }
    }

    /// fp8_e4m3fn weights with their block scales.
    pub fn fp8(w1: &'a dyn AsDLTensor, w1_scales: &'a dyn AsDLTensor, w3: &'a dyn AsDLTensor,
               w3_scales: &'a dyn AsDLTensor, w2: &'a dyn AsDLTensor, w2_scales: &'a dyn AsDLTensor) -> Self {
        MoeExpertWeights {
            w1,
            w3,
            w2,
            w1_scales: Some(w1_scales),
            w3_scales: Some(w3_scales),
            w2_scales: Some(w2_scales),
        }
    }

    /// The C struct (`dsk_moe_expert_weights_init`, then the tensors); it borrows them for `'a`.
    pub fn raw(&self) -> sys::dsk_moe_expert_weights {
        let mut raw = unsafe { std::mem::zeroed::<sys::dsk_moe_expert_weights>() };
        let status = unsafe { sys::dsk_moe_expert_weights_init(&mut raw) };
        debug_assert_eq!(status, sys::DSK_OK);
        raw.w1 = self.w1.dltensor();
        raw.w3 = self.w3.dltensor();
        raw.w2 = self.w2.dltensor();
        raw.w1_scales = opt(self.w1_scales);
        raw.w3_scales = opt(self.w3_scales);
        raw.w2_scales = opt(self.w2_scales);
        raw
    }
}

fn opt_weights(w: Option<&sys::dsk_moe_expert_weights>) -> *const sys::dsk_moe_expert_weights {
    w.map_or(std::ptr::null(), |w| w as *const _)
}

/// The rows `sorted_rows` of [`Context::moe_dispatch`] needs in the worst case
/// (`dsk_moe_dispatch_capacity`): `T * k + min(E, T * k) * (block_size - 1)`.
pub fn moe_dispatch_capacity(num_tokens: i64, top_k: i32, num_experts: i32, block_size: i32) -> Result<i64> {
    let mut capacity = 0i64;
    check(unsafe { sys::dsk_moe_dispatch_capacity(num_tokens, top_k, num_experts, block_size, &mut capacity) })?;
    Ok(capacity)
}

/// A MoE layer plan (`dsk_moe_plan`): T, D, the gate config, the expert shapes and dtypes and the
/// device of the tensors it was made from, and the workspace they need. Released on drop.
///
/// Immutable and usable from any thread with any context on its device, hence `Send + Sync` and
/// no borrow of the [`Context`] that made it.
pub struct MoePlan {
    raw: NonNull<sys::dsk_moe_plan>,
}

// SAFETY: dsk_moe.h: "The plan is immutable, usable from any thread and by any context on the
// same device".
unsafe impl Send for MoePlan {}
unsafe impl Sync for MoePlan {}

impl Drop for MoePlan {
    fn drop(&mut self) {
        unsafe { sys::dsk_moe_plan_release(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for MoePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MoePlan").field("workspace_size", &self.workspace_size().ok()).finish()
    }
}

impl MoePlan {
    /// A plan for run calls with tensors like these (`dsk_moe_plan_create`; their contents are not
    /// read): x `[T, D]`, router_w `[E, D]`, the routed experts, the shared experts (`None`: the
    /// layer has none) and out `[T, D]`.
    pub fn new(ctx: &Context, config: &MoeGateConfig, x: &impl AsDLTensor, router_w: &impl AsDLTensor,
               experts: &MoeExpertWeights, shared: Option<&MoeExpertWeights>, out: &impl AsDLTensor)
               -> Result<MoePlan> {
        let raw_config = config.raw();
        let raw_experts = experts.raw();
        let raw_shared = shared.map(|s| s.raw());
        let mut raw = std::ptr::null_mut();
        check(unsafe {
            sys::dsk_moe_plan_create(ctx.as_ptr(), &raw_config, x.dltensor(), router_w.dltensor(), &raw_experts,
                                     opt_weights(raw_shared.as_ref()), out.dltensor(), &mut raw)
        })?;
        let raw =
            NonNull::new(raw).ok_or_else(|| Error::new(sys::DSK_ERR_INTERNAL, "dsk_moe_plan_create returned NULL"))?;
        Ok(MoePlan { raw })
    }

    pub fn as_ptr(&self) -> *const sys::dsk_moe_plan {
        self.raw.as_ptr()
    }

    /// Bytes of scratch a run uses: a context workspace at least this large
    /// ([`Context::reserve_workspace`]) makes runs allocation-free.
    pub fn workspace_size(&self) -> Result<usize> {
        let mut bytes = 0;
        check(unsafe { sys::dsk_moe_plan_workspace_size(self.as_ptr(), &mut bytes) })?;
        Ok(bytes)
    }

    /// [`Context::moe_forward_run`] with this plan.
    #[allow(clippy::too_many_arguments)]
    pub fn run(&self, ctx: &Context, x: &impl AsDLTensor, router_w: &impl AsDLTensor, bias: Option<&dyn AsDLTensor>,
               experts: &MoeExpertWeights, shared: Option<&MoeExpertWeights>, out: &impl Writable,
               ids: Option<&dyn Writable>, weights: Option<&dyn Writable>) -> Result<()> {
        ctx.moe_forward_run(self, x, router_w, bias, experts, shared, out, ids, weights)
    }
}

impl Context {
    /// Routes T tokens (`dsk_moe_gate`): logits `[T, E]` f32/f16/bf16 -> ids `[T, k]` int32/int64
    /// (the k best biased scores, descending, ties to the lower expert) and weights `[T, k]` f32
    /// (the unbiased scores at ids, renormalized and scaled as configured). bias `[E]` f32 or
    /// `None`; row_flags `[T]` uint8 or `None` receives [`MOE_ROW_NO_FINITE`] / [`MOE_ROW_SHORT`].
    pub fn moe_gate(&self, config: &MoeGateConfig, logits: &impl AsDLTensor, bias: Option<&dyn AsDLTensor>,
                    ids: &impl Writable, weights: &impl Writable, row_flags: Option<&dyn Writable>) -> Result<()> {
        let raw = config.raw();
        check(unsafe {
            sys::dsk_moe_gate(self.as_ptr(), &raw, logits.dltensor(), opt(bias), ids.dltensor(), weights.dltensor(),
                              opt_out(row_flags))
        })
    }

    /// The router GEMM `logits = x [T, D] @ w [E, D]^T` (f32 accumulation), then
    /// [`moe_gate`](Self::moe_gate) (`dsk_moe_gate_router`).
    #[allow(clippy::too_many_arguments)]
    pub fn moe_gate_router(&self, config: &MoeGateConfig, x: &impl AsDLTensor, w: &impl AsDLTensor,
                           bias: Option<&dyn AsDLTensor>, ids: &impl Writable, weights: &impl Writable,
                           row_flags: Option<&dyn Writable>) -> Result<()> {
        let raw = config.raw();
        check(unsafe {
            sys::dsk_moe_gate_router(self.as_ptr(), &raw, x.dltensor(), w.dltensor(), opt(bias), ids.dltensor(),
                                     weights.dltensor(), opt_out(row_flags))
        })
    }

    /// Sorts the assignments `t * k + j` of ids `[T, k]` by local expert `id - expert_begin`,
    /// stably (`dsk_moe_dispatch`); ids outside `[expert_begin, expert_begin + num_experts)` are
    /// skipped. Outputs (int32): counts `[E]`, offsets `[E + 1]` (segments padded to block_size),
    /// sorted_rows `[capacity]` (`T * k` for padding), block_experts
    /// `[ceil(capacity / block_size)]` or `None`, dest `[T, k]` or `None` (-1 when skipped).
    #[allow(clippy::too_many_arguments)]
    pub fn moe_dispatch(&self, ids: &impl AsDLTensor, num_experts: i32, expert_begin: i32, block_size: i32,
                        counts: &impl Writable, offsets: &impl Writable, sorted_rows: &impl Writable,
                        block_experts: Option<&dyn Writable>, dest: Option<&dyn Writable>) -> Result<()> {
        check(unsafe {
            sys::dsk_moe_dispatch(self.as_ptr(), ids.dltensor(), num_experts, expert_begin, block_size,
                                  counts.dltensor(), offsets.dltensor(), sorted_rows.dltensor(), opt_out(block_experts),
                                  opt_out(dest))
        })
    }

    /// `out[r] = x[sorted_rows[r] / top_k]`, 0 for padding rows (`dsk_moe_permute`). An
    /// fp8_e4m3fn out is quantized per 1x128 tile with out_scales `[R, ceil(D/128)]` f32
    /// (`scale_pow2` as in [`quant_fp8_act`](Self::quant_fp8_act)); float outputs take neither.
    pub fn moe_permute(&self, x: &impl AsDLTensor, sorted_rows: &impl AsDLTensor, top_k: i32, out: &impl Writable,
                       out_scales: Option<&dyn Writable>, scale_pow2: bool) -> Result<()> {
        let flags = if scale_pow2 { sys::DSK_QUANT_SCALE_POW2 } else { 0 };
        check(unsafe {
            sys::dsk_moe_permute(self.as_ptr(), x.dltensor(), sorted_rows.dltensor(), top_k, out.dltensor(),
                                 opt_out(out_scales), flags)
        })
    }

    /// `out[t] = shared[t] + sum_j weights[t, j] * y[dest[t, j]]` in f32, skipping dest -1
    /// (`dsk_moe_combine`). y `[R, D]`, dest `[T, k]` int32, weights `[T, k]` f32, shared `[T, D]`
    /// or `None`; out may be shared itself (pass the same [`Tensor`](crate::Tensor) twice).
    pub fn moe_combine(&self, y: &impl AsDLTensor, dest: &impl AsDLTensor, weights: &impl AsDLTensor,
                       shared: Option<&dyn AsDLTensor>, out: &impl Writable) -> Result<()> {
        check(unsafe {
            sys::dsk_moe_combine(self.as_ptr(), y.dltensor(), dest.dltensor(), weights.dltensor(), opt(shared),
                                 out.dltensor())
        })
    }

    /// Runs SwiGLU expert e over rows `offsets[e]..offsets[e + 1]` of x `[R, D]` into y `[R, D]`
    /// (`dsk_moe_experts`); rows at or past `offsets[E]` are not written. offsets `[E + 1]` int32;
    /// x_scales: the 1x128 tile scales of an fp8_e4m3fn x, else `None`.
    pub fn moe_experts(&self, weights: &MoeExpertWeights, x: &impl AsDLTensor, x_scales: Option<&dyn AsDLTensor>,
                       offsets: &impl AsDLTensor, y: &impl Writable) -> Result<()> {
        let raw = weights.raw();
        check(unsafe {
            sys::dsk_moe_experts(self.as_ptr(), &raw, x.dltensor(), opt(x_scales), offsets.dltensor(), y.dltensor())
        })
    }

    /// [`MoePlan::new`] on this context's device.
    pub fn moe_plan(&self, config: &MoeGateConfig, x: &impl AsDLTensor, router_w: &impl AsDLTensor,
                    experts: &MoeExpertWeights, shared: Option<&MoeExpertWeights>, out: &impl AsDLTensor)
                    -> Result<MoePlan> {
        MoePlan::new(self, config, x, router_w, experts, shared, out)
    }

    /// The whole MoE layer with a plan (`dsk_moe_forward_run`): router gate -> dispatch ->
    /// permute -> experts -> shared experts on x -> combine (+ shared) = out `[T, D]`. `shared`
    /// must be given exactly when it was at plan time; ids `[T, k]` int32 and weights `[T, k]` f32
    /// receive the gate's output when given.
    #[allow(clippy::too_many_arguments)]
    pub fn moe_forward_run(&self, plan: &MoePlan, x: &impl AsDLTensor, router_w: &impl AsDLTensor,
                           bias: Option<&dyn AsDLTensor>, experts: &MoeExpertWeights,
                           shared: Option<&MoeExpertWeights>, out: &impl Writable, ids: Option<&dyn Writable>,
                           weights: Option<&dyn Writable>) -> Result<()> {
        let raw_experts = experts.raw();
        let raw_shared = shared.map(|s| s.raw());
        check(unsafe {
            sys::dsk_moe_forward_run(self.as_ptr(), plan.as_ptr(), x.dltensor(), router_w.dltensor(), opt(bias),
                                     &raw_experts, opt_weights(raw_shared.as_ref()), out.dltensor(), opt_out(ids),
                                     opt_out(weights))
        })
    }

    /// [`moe_forward_run`](Self::moe_forward_run) with a plan made and released in the call
    /// (`dsk_moe_forward`).
    #[allow(clippy::too_many_arguments)]
    pub fn moe_forward(&self, config: &MoeGateConfig, x: &impl AsDLTensor, router_w: &impl AsDLTensor,
                       bias: Option<&dyn AsDLTensor>, experts: &MoeExpertWeights, shared: Option<&MoeExpertWeights>,
                       out: &impl Writable) -> Result<()> {
        let raw_config = config.raw();
        let raw_experts = experts.raw();
        let raw_shared = shared.map(|s| s.raw());
        check(unsafe {
            sys::dsk_moe_forward(self.as_ptr(), &raw_config, x.dltensor(), router_w.dltensor(), opt(bias),
                                 &raw_experts, opt_weights(raw_shared.as_ref()), out.dltensor())
        })
    }

    /// `load[e] +=` the number of assignments of ids `[T, k]` to expert `expert_begin + e`
    /// (`dsk_moe_load_accumulate`); load `[E]` int64. Other ids (other devices' experts, -1) are
    /// skipped.
    pub fn moe_load_accumulate(&self, ids: &impl AsDLTensor, expert_begin: i32, load: &impl Writable) -> Result<()> {
        check(unsafe { sys::dsk_moe_load_accumulate(self.as_ptr(), ids.dltensor(), expert_begin, load.dltensor()) })
    }

    /// DeepSeek-V3's auxiliary-loss-free bias update, in place (`dsk_moe_bias_update`):
    /// `bias[e] += gamma * sign(mean(load) - load[e])`; load `[E]` int64 or f32, bias `[E]` f32,
    /// gamma finite and >= 0 (DeepSeek: 0.001).
    pub fn moe_bias_update(&self, load: &impl AsDLTensor, bias: &impl Writable, gamma: f32) -> Result<()> {
        check(unsafe { sys::dsk_moe_bias_update(self.as_ptr(), load.dltensor(), bias.dltensor(), gamma) })
    }

    /// DeepEP's dispatch layout for `num_ranks` ranks owning contiguous expert ranges
    /// (`dsk_moe_ep_layout`): tokens_per_rank `[R]` int32, tokens_per_expert `[E]` int32,
    /// is_token_in_rank `[T, R]` bool/uint8, from ids `[T, k]` (-1 = no expert).
    pub fn moe_ep_layout(&self, ids: &impl AsDLTensor, num_experts: i32, num_ranks: i32,
                         tokens_per_rank: &impl Writable, tokens_per_expert: &impl Writable,
                         is_token_in_rank: &impl Writable) -> Result<()> {
        check(unsafe {
            sys::dsk_moe_ep_layout(self.as_ptr(), ids.dltensor(), num_experts, num_ranks, tokens_per_rank.dltensor(),
                                   tokens_per_expert.dltensor(), is_token_in_rank.dltensor())
        })
    }
}
