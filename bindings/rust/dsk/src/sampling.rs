//! Token sampling of `dsk_sampling.h`: the batch parameters [`SamplingParams`] (scalars, per-row
//! tensors, token lists, logit bias, allowed mask), the outputs [`SamplingOutputs`], the
//! verification parameters [`VerifyParams`], and the ops as [`Context`] methods (sample, the
//! processed logits and probabilities, speculative verification).
//!
//! The conventions of the core ops apply: inputs `&impl AsDLTensor`, outputs `&impl Writable`,
//! optional tensors `Option<&dyn AsDLTensor>` / `Option<&dyn Writable>` (`None` = NULL). The
//! structs borrow their tensors for `'a`. The processing chain, the RNG layout and the per-row
//! status values are documented in `include/dsk/dsk_sampling.h`.
//!
//! ```
//! use dsk::{Context, SamplingOutputs, SamplingParams, TensorMut, TensorRef};
//!
//! let ctx = Context::cpu()?;
//! let logits = [0.5f32, 2.0, -1.0, 2.0, // row 0: ids 1 and 3 tie
//!               0.0, 0.0, 3.0, 0.0];    // row 1
//! let logits = TensorRef::new(&logits, &[2, 4])?;
//! let mut ids = [0i32; 2];
//! ctx.sample(&SamplingParams::greedy(), &logits, &SamplingOutputs::new(&TensorMut::new(&mut ids, &[2])?))?;
//! assert_eq!(ids, [1, 2]); // the largest logit, ties to the lower id
//!
//! // Seeded sampling: the same (seed, offset) gives the same tokens, on any backend.
//! let params = SamplingParams { temperature: 0.8, top_k: 3, top_p: 0.95, seed: 42, offset: 7, ..Default::default() };
//! let (mut a, mut b) = ([0i32; 2], [0i32; 2]);
//! ctx.sample_ids(&params, &logits, &TensorMut::new(&mut a, &[2])?)?;
//! ctx.sample_ids(&params, &logits, &TensorMut::new(&mut b, &[2])?)?;
//! assert_eq!(a, b);
//! # Ok::<(), dsk::Error>(())
//! ```

use crate::context::Context;
use crate::error::{check, Result};
use crate::ops::{opt, opt_out};
use crate::tensor::{AsDLTensor, Writable};
use dsk_sys as sys;

/// Per-row status (the `status` output): the row was sampled normally.
pub const SAMPLE_OK: u8 = sys::DSK_SAMPLE_OK;
/// Per-row status: no allowed token has a finite processed logit (id 0, NaN logprobs).
pub const SAMPLE_ALL_MASKED: u8 = sys::DSK_SAMPLE_ALL_MASKED;
/// Per-row status: an allowed token's processed logit is NaN or +inf (id 0, NaN logprobs).
pub const SAMPLE_NONFINITE: u8 = sys::DSK_SAMPLE_NONFINITE;
/// Per-row status (CUDA): a per-row parameter or token id of the row is out of range (id 0).
pub const SAMPLE_INVALID: u8 = sys::DSK_SAMPLE_INVALID;
/// The most top logprobs per row (`top_ids.shape[1]`).
pub const SAMPLE_MAX_TOP_LOGPROBS: i64 = sys::DSK_SAMPLE_MAX_TOP_LOGPROBS;

/// Which distribution the top lists describe (`DSK_LOGPROBS_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogprobsSource {
    /// The distribution the token was drawn from (after the filters).
    Processed,
    /// `log_softmax` of the unprocessed logits.
    Raw,
    /// A raw value this crate does not know (passed through; the library validates it).
    Other(i32),
}

impl LogprobsSource {
    pub fn from_raw(raw: i32) -> LogprobsSource {
        match raw {
            sys::DSK_LOGPROBS_PROCESSED => LogprobsSource::Processed,
            sys::DSK_LOGPROBS_RAW => LogprobsSource::Raw,
            other => LogprobsSource::Other(other),
        }
    }

    pub fn raw(self) -> i32 {
        match self {
            LogprobsSource::Processed => sys::DSK_LOGPROBS_PROCESSED,
            LogprobsSource::Raw => sys::DSK_LOGPROBS_RAW,
            LogprobsSource::Other(v) => v,
        }
    }
}

/// How [`Context::speculative_verify`] accepts drafts (`DSK_VERIFY_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerifyMode {
    /// Rejection sampling: the emitted tokens are distributed as samples of the target.
    Sample,
    /// Accept while the draft is the target's argmax.
    Greedy,
    /// A raw value this crate does not know (passed through; the library validates it).
    Other(i32),
}

impl VerifyMode {
    pub fn from_raw(raw: i32) -> VerifyMode {
        match raw {
            sys::DSK_VERIFY_SAMPLE => VerifyMode::Sample,
            sys::DSK_VERIFY_GREEDY => VerifyMode::Greedy,
            other => VerifyMode::Other(other),
        }
    }

    pub fn raw(self) -> i32 {
        match self {
            VerifyMode::Sample => sys::DSK_VERIFY_SAMPLE,
            VerifyMode::Greedy => sys::DSK_VERIFY_GREEDY,
            VerifyMode::Other(v) => v,
        }
    }
}

/// Token lists in CSR form: row b owns `ids[offsets[b] .. offsets[b + 1]]`; offsets `[B + 1]` and
/// ids `[N]` int32 or int64.
#[derive(Clone, Copy)]
pub struct TokenLists<'a> {
    pub offsets: &'a dyn AsDLTensor,
    pub ids: &'a dyn AsDLTensor,
}

impl<'a> TokenLists<'a> {
    pub fn new(offsets: &'a dyn AsDLTensor, ids: &'a dyn AsDLTensor) -> Self {
        TokenLists { offsets, ids }
    }
}

/// A sparse logit bias in CSR form: `values[i]` (f32) is added to token `ids[i]` of the row that
/// owns position i (offsets `[B + 1]`, ids `[N]` int32 or int64, values `[N]` f32).
#[derive(Clone, Copy)]
pub struct LogitBias<'a> {
    pub offsets: &'a dyn AsDLTensor,
    pub ids: &'a dyn AsDLTensor,
    pub values: &'a dyn AsDLTensor,
}

impl<'a> LogitBias<'a> {
    pub fn new(offsets: &'a dyn AsDLTensor, ids: &'a dyn AsDLTensor, values: &'a dyn AsDLTensor) -> Self {
        LogitBias { offsets, ids, values }
    }
}

/// The parameters of a batch (`dsk_sampling_params`). `Default` is what
/// `dsk_sampling_params_init` fills: plain sampling at temperature 1, every filter and penalty
/// off, seed 0, offset 0, no tensors. Each per-row tensor `[B]` replaces its scalar when given.
#[derive(Clone, Copy)]
pub struct SamplingParams<'a> {
    /// 0 = greedy.
    pub temperature: f32,
    /// 0 = off.
    pub top_k: i32,
    /// 1 = off.
    pub top_p: f32,
    /// 0 = off.
    pub min_p: f32,
    /// 1 = off.
    pub repetition_penalty: f32,
    /// 0 = off.
    pub frequency_penalty: f32,
    /// 0 = off.
    pub presence_penalty: f32,
    /// The Philox key.
    pub seed: u64,
    /// The Philox counter's high words: advance by one per decode step.
    pub offset: u64,
    /// `[B]` f32.
    pub temperatures: Option<&'a dyn AsDLTensor>,
    /// `[B]` int32.
    pub top_ks: Option<&'a dyn AsDLTensor>,
    /// `[B]` f32.
    pub top_ps: Option<&'a dyn AsDLTensor>,
    /// `[B]` f32.
    pub min_ps: Option<&'a dyn AsDLTensor>,
    /// `[B]` f32.
    pub repetition_penalties: Option<&'a dyn AsDLTensor>,
    /// `[B]` f32.
    pub frequency_penalties: Option<&'a dyn AsDLTensor>,
    /// `[B]` f32.
    pub presence_penalties: Option<&'a dyn AsDLTensor>,
    /// `[B]` int64 (read as u64).
    pub seeds: Option<&'a dyn AsDLTensor>,
    /// `[B]` int64 (read as u64).
    pub offsets: Option<&'a dyn AsDLTensor>,
    /// The ids generated so far (frequency, presence and repetition penalties).
    pub output: Option<TokenLists<'a>>,
    /// The prompt (repetition penalty only).
    pub prompt: Option<TokenLists<'a>>,
    pub logit_bias: Option<LogitBias<'a>>,
    /// `[B, ceil(V / 32)]` int32: token j is allowed when bit `j % 32` of word `j / 32` is set.
    pub allowed_mask: Option<&'a dyn AsDLTensor>,
}

impl Default for SamplingParams<'_> {
    fn default() -> Self {
        let raw = SamplingParams::init_raw();
        SamplingParams {
            temperature: raw.temperature,
            top_k: raw.top_k,
            top_p: raw.top_p,
            min_p: raw.min_p,
            repetition_penalty: raw.repetition_penalty,
            frequency_penalty: raw.frequency_penalty,
            presence_penalty: raw.presence_penalty,
            seed: raw.seed,
            offset: raw.offset,
            temperatures: None,
            top_ks: None,
            top_ps: None,
            min_ps: None,
            repetition_penalties: None,
            frequency_penalties: None,
            presence_penalties: None,
            seeds: None,
            offsets: None,
            output: None,
            prompt: None,
            logit_bias: None,
            allowed_mask: None,
        }
    }
}

impl std::fmt::Debug for SamplingParams<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamplingParams")
            .field("temperature", &self.temperature)
            .field("top_k", &self.top_k)
            .field("top_p", &self.top_p)
            .field("min_p", &self.min_p)
            .field("repetition_penalty", &self.repetition_penalty)
            .field("frequency_penalty", &self.frequency_penalty)
            .field("presence_penalty", &self.presence_penalty)
            .field("seed", &self.seed)
            .field("offset", &self.offset)
            .field("per_row", &self.temperatures.is_some())
            .field("output", &self.output.is_some())
            .field("prompt", &self.prompt.is_some())
            .field("logit_bias", &self.logit_bias.is_some())
            .field("allowed_mask", &self.allowed_mask.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> SamplingParams<'a> {
    /// Greedy decoding (temperature 0): the largest processed logit, ties to the lower id.
    pub fn greedy() -> Self {
        SamplingParams { temperature: 0.0, ..SamplingParams::default() }
    }

    fn init_raw() -> sys::dsk_sampling_params {
        let mut raw = unsafe { std::mem::zeroed::<sys::dsk_sampling_params>() };
        // Only fails for a NULL pointer, which this never passes.
        let status = unsafe { sys::dsk_sampling_params_init(&mut raw) };
        debug_assert_eq!(status, sys::DSK_OK);
        raw
    }

    /// The C struct (`dsk_sampling_params_init`, then the fields); it borrows the tensors for `'a`.
    pub fn raw(&self) -> sys::dsk_sampling_params {
        let mut raw = SamplingParams::init_raw();
        raw.temperature = self.temperature;
        raw.top_k = self.top_k;
        raw.top_p = self.top_p;
        raw.min_p = self.min_p;
        raw.repetition_penalty = self.repetition_penalty;
        raw.frequency_penalty = self.frequency_penalty;
        raw.presence_penalty = self.presence_penalty;
        raw.seed = self.seed;
        raw.offset = self.offset;
        raw.temperatures = opt(self.temperatures);
        raw.top_ks = opt(self.top_ks);
        raw.top_ps = opt(self.top_ps);
        raw.min_ps = opt(self.min_ps);
        raw.repetition_penalties = opt(self.repetition_penalties);
        raw.frequency_penalties = opt(self.frequency_penalties);
        raw.presence_penalties = opt(self.presence_penalties);
        raw.seeds = opt(self.seeds);
        raw.offsets = opt(self.offsets);
        if let Some(l) = self.output {
            raw.output_offsets = l.offsets.dltensor();
            raw.output_ids = l.ids.dltensor();
        }
        if let Some(l) = self.prompt {
            raw.prompt_offsets = l.offsets.dltensor();
            raw.prompt_ids = l.ids.dltensor();
        }
        if let Some(b) = self.logit_bias {
            raw.bias_offsets = b.offsets.dltensor();
            raw.bias_ids = b.ids.dltensor();
            raw.bias_values = b.values.dltensor();
        }
        raw.allowed_mask = opt(self.allowed_mask);
        raw
    }
}

/// The outputs of [`Context::sample`] (`dsk_sampling_outputs`); only ids is required.
#[derive(Clone, Copy)]
pub struct SamplingOutputs<'a> {
    /// `[B]` int32: the sampled tokens.
    pub ids: &'a dyn Writable,
    /// `[B]` f32: the processed logprob of the sampled token.
    pub logprobs: Option<&'a dyn Writable>,
    /// (top_ids `[B, n]` int32, top_logprobs `[B, n]` f32), n <= [`SAMPLE_MAX_TOP_LOGPROBS`]: the
    /// n most likely tokens of `top_source`'s distribution, -1 / -inf past its end.
    pub top: Option<(&'a dyn Writable, &'a dyn Writable)>,
    pub top_source: LogprobsSource,
    /// `[B]` f32: the sampled token's logprob under `log_softmax` of the unprocessed logits.
    pub raw_logprobs: Option<&'a dyn Writable>,
    /// `[B]` uint8: [`SAMPLE_OK`], [`SAMPLE_ALL_MASKED`], [`SAMPLE_NONFINITE`] or [`SAMPLE_INVALID`].
    pub status: Option<&'a dyn Writable>,
}

impl std::fmt::Debug for SamplingOutputs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamplingOutputs")
            .field("logprobs", &self.logprobs.is_some())
            .field("top", &self.top.is_some())
            .field("top_source", &self.top_source)
            .field("raw_logprobs", &self.raw_logprobs.is_some())
            .field("status", &self.status.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> SamplingOutputs<'a> {
    /// Just the ids.
    pub fn new(ids: &'a dyn Writable) -> Self {
        SamplingOutputs { ids, logprobs: None, top: None, top_source: LogprobsSource::Processed, raw_logprobs: None,
                          status: None }
    }

    pub fn logprobs(mut self, logprobs: &'a dyn Writable) -> Self {
        self.logprobs = Some(logprobs);
        self
    }

    pub fn top(mut self, top_ids: &'a dyn Writable, top_logprobs: &'a dyn Writable, source: LogprobsSource) -> Self {
        self.top = Some((top_ids, top_logprobs));
        self.top_source = source;
        self
    }

    pub fn raw_logprobs(mut self, raw_logprobs: &'a dyn Writable) -> Self {
        self.raw_logprobs = Some(raw_logprobs);
        self
    }

    pub fn status(mut self, status: &'a dyn Writable) -> Self {
        self.status = Some(status);
        self
    }

    /// The C struct (`dsk_sampling_outputs_init`, then the tensors); it borrows them for `'a`.
    pub fn raw(&self) -> sys::dsk_sampling_outputs {
        let mut raw = unsafe { std::mem::zeroed::<sys::dsk_sampling_outputs>() };
        let status = unsafe { sys::dsk_sampling_outputs_init(&mut raw) };
        debug_assert_eq!(status, sys::DSK_OK);
        raw.top_source = self.top_source.raw();
        raw.ids = self.ids.dltensor();
        raw.logprobs = opt_out(self.logprobs);
        if let Some((ids, logprobs)) = self.top {
            raw.top_ids = ids.dltensor();
            raw.top_logprobs = logprobs.dltensor();
        }
        raw.raw_logprobs = opt_out(self.raw_logprobs);
        raw.status = opt_out(self.status);
        raw
    }
}

/// The parameters of [`Context::speculative_verify`] (`dsk_verify_params`). `Default` is what
/// `dsk_verify_params_init` fills: [`VerifyMode::Sample`], seed 0, offset 0, no per-row tensors.
/// Draft position i draws at `offset + i`: advance offset by n + 1 after a step of n drafts.
#[derive(Clone, Copy)]
pub struct VerifyParams<'a> {
    pub mode: VerifyMode,
    pub seed: u64,
    pub offset: u64,
    /// `[B]` int64 (read as u64).
    pub seeds: Option<&'a dyn AsDLTensor>,
    /// `[B]` int64 (read as u64).
    pub offsets: Option<&'a dyn AsDLTensor>,
}

impl Default for VerifyParams<'_> {
    fn default() -> Self {
        let raw = VerifyParams::init_raw();
        VerifyParams { mode: VerifyMode::from_raw(raw.mode), seed: raw.seed, offset: raw.offset, seeds: None,
                       offsets: None }
    }
}

impl std::fmt::Debug for VerifyParams<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyParams")
            .field("mode", &self.mode)
            .field("seed", &self.seed)
            .field("offset", &self.offset)
            .field("per_row", &(self.seeds.is_some() || self.offsets.is_some()))
            .finish()
    }
}

impl<'a> VerifyParams<'a> {
    /// [`VerifyMode::Greedy`].
    pub fn greedy() -> Self {
        VerifyParams { mode: VerifyMode::Greedy, ..VerifyParams::default() }
    }

    /// [`VerifyMode::Sample`] with this seed and offset.
    pub fn sample(seed: u64, offset: u64) -> Self {
        VerifyParams { mode: VerifyMode::Sample, seed, offset, ..VerifyParams::default() }
    }

    fn init_raw() -> sys::dsk_verify_params {
        let mut raw = unsafe { std::mem::zeroed::<sys::dsk_verify_params>() };
        let status = unsafe { sys::dsk_verify_params_init(&mut raw) };
        debug_assert_eq!(status, sys::DSK_OK);
        raw
    }

    /// The C struct (`dsk_verify_params_init`, then the fields); it borrows the tensors for `'a`.
    pub fn raw(&self) -> sys::dsk_verify_params {
        let mut raw = VerifyParams::init_raw();
        raw.mode = self.mode.raw();
        raw.seed = self.seed;
        raw.offset = self.offset;
        raw.seeds = opt(self.seeds);
        raw.offsets = opt(self.offsets);
        raw
    }
}

impl Context {
    /// Samples one token per row of logits `[B, V]` (f32, f16 or bf16, any strides) into the
    /// outputs (`dsk_sample`): mask -> bias -> penalties -> temperature -> top-k -> top-p ->
    /// min-p -> Gumbel-max with the Philox noise of (seed, offset).
    pub fn sample(&self, params: &SamplingParams, logits: &impl AsDLTensor, outputs: &SamplingOutputs) -> Result<()> {
        let raw_params = params.raw();
        let raw_outputs = outputs.raw();
        check(unsafe { sys::dsk_sample(self.as_ptr(), &raw_params, logits.dltensor(), &raw_outputs) })
    }

    /// [`sample`](Self::sample) into ids `[B]` int32 only.
    pub fn sample_ids(&self, params: &SamplingParams, logits: &impl AsDLTensor, ids: &impl Writable) -> Result<()> {
        self.sample(params, logits, &SamplingOutputs::new(ids))
    }

    /// The processed logits (`dsk_sampling_logits`): out `[B, V]` f32/f16/bf16 holds z for kept
    /// tokens, -inf for the others (rows that are not [`SAMPLE_OK`]: NaN); status `[B]` uint8 or
    /// `None`. The seed and offset are not used.
    pub fn sampling_logits(&self, params: &SamplingParams, logits: &impl AsDLTensor, out: &impl Writable,
                           status: Option<&dyn Writable>) -> Result<()> {
        let raw = params.raw();
        check(unsafe { sys::dsk_sampling_logits(self.as_ptr(), &raw, logits.dltensor(), out.dltensor(), opt_out(status)) })
    }

    /// The processed distribution (`dsk_sampling_probs`): probs `[B, V]` f32, 0 for removed tokens
    /// (rows that are not [`SAMPLE_OK`]: NaN); status `[B]` uint8 or `None`.
    pub fn sampling_probs(&self, params: &SamplingParams, logits: &impl AsDLTensor, probs: &impl Writable,
                          status: Option<&dyn Writable>) -> Result<()> {
        let raw = params.raw();
        check(unsafe { sys::dsk_sampling_probs(self.as_ptr(), &raw, logits.dltensor(), probs.dltensor(), opt_out(status)) })
    }

    /// Chain verification of draft_ids `[B, n]` (int32/int64, -1 ends a row's chain) against
    /// target `[B, n + 1, V]` (`dsk_speculative_verify`); draft_probs `[B, n, V]` or `None` (a
    /// deterministic draft). out_ids `[B, n + 1]` int32: the accepted drafts, the emitted token,
    /// then -1; accepted `[B]` int32; emitted `[B]` int32 (accepted + 1) or `None`.
    #[allow(clippy::too_many_arguments)]
    pub fn speculative_verify(&self, params: &VerifyParams, draft_ids: &impl AsDLTensor,
                              draft_probs: Option<&dyn AsDLTensor>, target: &impl AsDLTensor, out_ids: &impl Writable,
                              accepted: &impl Writable, emitted: Option<&dyn Writable>) -> Result<()> {
        let raw = params.raw();
        check(unsafe {
            sys::dsk_speculative_verify(self.as_ptr(), &raw, draft_ids.dltensor(), opt(draft_probs), target.dltensor(),
                                        out_ids.dltensor(), accepted.dltensor(), opt_out(emitted))
        })
    }
}
