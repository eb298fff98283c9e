//! Multi-head Latent Attention of `dsk_mla.h`: the decode plan [`MlaDecodePlan`], the softmax
//! scale [`mla_softmax_scale`] and the ops as [`Context`] methods.
//!
//! The conventions of the core ops apply: arguments in the C order, inputs `&impl AsDLTensor`,
//! outputs `&impl Writable`, optional tensors `Option<&dyn AsDLTensor>` / `Option<&dyn Writable>`
//! (`None` = NULL), `causal` as a `bool`. Shapes, dtypes and semantics are documented in
//! `include/dsk/dsk_mla.h`.
//!
//! ```
//! // DeepSeek-V3: qk_head_dim 192, YaRN factor 40, mscale 1.
//! let scale = dsk::mla_softmax_scale(192, 40.0, 1.0, true)?;
//! assert!((scale - 0.1352338).abs() < 1e-6);
//! # Ok::<(), dsk::Error>(())
//! ```

use crate::context::Context;
use crate::error::{check, Error, Result};
use crate::ops::{opt, opt_out};
use crate::tensor::{AsDLTensor, Writable};
use dsk_sys as sys;
use std::ptr::NonNull;

/// The reference's softmax scale (`dsk_mla_softmax_scale`): `qk_head_dim^-0.5`, times `m^2`
/// with `m = 0.1 * mscale * ln(rope_factor) + 1` when `use_yarn` and `rope_factor > 1`.
pub fn mla_softmax_scale(qk_head_dim: i64, rope_factor: f64, mscale: f64, use_yarn: bool) -> Result<f32> {
    let mut scale = 0f32;
    check(unsafe { sys::dsk_mla_softmax_scale(qk_head_dim, rope_factor, mscale, use_yarn as i32, &mut scale) })?;
    Ok(scale)
}

/// An absorbed-decode plan (`dsk_mla_decode_plan`): the shapes, dtype and device of the tensors
/// it was made from, and the split-KV schedule for them. Released on drop.
///
/// The plan does not depend on the values of `cache_seqlens`, so one plan serves every layer and
/// step with the same batch shape (the number of cache pages may differ). It is immutable and
/// may be used from any thread with any context on its device, hence `Send + Sync` and no
/// borrow of the [`Context`] that made it.
pub struct MlaDecodePlan {
    raw: NonNull<sys::dsk_mla_decode_plan>,
}

// SAFETY: dsk_mla.h: "The plan is immutable, may be used from any thread".
unsafe impl Send for MlaDecodePlan {}
unsafe impl Sync for MlaDecodePlan {}

impl Drop for MlaDecodePlan {
    fn drop(&mut self) {
        unsafe { sys::dsk_mla_decode_plan_release(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for MlaDecodePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlaDecodePlan").field("num_splits", &self.num_splits().ok())
            .field("workspace_size", &self.workspace_size().ok()).finish()
    }
}

impl MlaDecodePlan {
    /// A plan for run calls with tensors like these (`dsk_mla_decode_plan_create`; their contents
    /// are not read): q `[B, S, Hq, D]`, kv_cache `[num_pages, page_size, Hkv, D]`, block_table
    /// `[B, max_pages]` int32, cache_seqlens `[B]` int32, out `[B, S, Hq, Dv]`.
    pub fn new(ctx: &Context, q: &impl AsDLTensor, kv_cache: &impl AsDLTensor, block_table: &impl AsDLTensor,
               cache_seqlens: &impl AsDLTensor, out: &impl AsDLTensor) -> Result<MlaDecodePlan> {
        let mut raw = std::ptr::null_mut();
        check(unsafe {
            sys::dsk_mla_decode_plan_create(ctx.as_ptr(), q.dltensor(), kv_cache.dltensor(), block_table.dltensor(),
                                            cache_seqlens.dltensor(), out.dltensor(), &mut raw)
        })?;
        let raw = NonNull::new(raw)
            .ok_or_else(|| Error::new(sys::DSK_ERR_INTERNAL, "dsk_mla_decode_plan_create returned NULL"))?;
        Ok(MlaDecodePlan { raw })
    }

    pub fn as_ptr(&self) -> *const sys::dsk_mla_decode_plan {
        self.raw.as_ptr()
    }

    /// Bytes of scratch a run uses (0 when none): a context workspace at least this large
    /// ([`Context::reserve_workspace`]) makes runs allocation-free and capturable.
    pub fn workspace_size(&self) -> Result<usize> {
        let mut bytes = 0;
        check(unsafe { sys::dsk_mla_decode_plan_workspace_size(self.as_ptr(), &mut bytes) })?;
        Ok(bytes)
    }

    /// The number of pieces each request's keys are split into (1 = no split).
    pub fn num_splits(&self) -> Result<i32> {
        let mut splits = 0;
        check(unsafe { sys::dsk_mla_decode_plan_num_splits(self.as_ptr(), &mut splits) })?;
        Ok(splits)
    }

    /// [`Context::mla_decode_run`] with this plan.
    #[allow(clippy::too_many_arguments)]
    pub fn run(&self, ctx: &Context, q: &impl AsDLTensor, kv_cache: &impl AsDLTensor, block_table: &impl AsDLTensor,
               cache_seqlens: &impl AsDLTensor, softmax_scale: f32, causal: bool, out: &impl Writable,
               lse: Option<&dyn Writable>) -> Result<()> {
        ctx.mla_decode_run(self, q, kv_cache, block_table, cache_seqlens, softmax_scale, causal, out, lse)
    }
}

impl Context {
    /// [`MlaDecodePlan::new`] on this context's device.
    pub fn mla_decode_plan(&self, q: &impl AsDLTensor, kv_cache: &impl AsDLTensor, block_table: &impl AsDLTensor,
                           cache_seqlens: &impl AsDLTensor, out: &impl AsDLTensor) -> Result<MlaDecodePlan> {
        MlaDecodePlan::new(self, q, kv_cache, block_table, cache_seqlens, out)
    }

    /// Absorbed MLA decode over the paged latent cache (`dsk_mla_decode_run`): per query head,
    /// `out = softmax(q . K * softmax_scale) @ V` with K the cached rows and V their first Dv
    /// values; lse `[B, Hq, S]` f32 or `None`. With `causal`, query j of request b sees the first
    /// `cache_seqlens[b] - S + j + 1` tokens, else all `cache_seqlens[b]`.
    #[allow(clippy::too_many_arguments)]
    pub fn mla_decode_run(&self, plan: &MlaDecodePlan, q: &impl AsDLTensor, kv_cache: &impl AsDLTensor,
                          block_table: &impl AsDLTensor, cache_seqlens: &impl AsDLTensor, softmax_scale: f32,
                          causal: bool, out: &impl Writable, lse: Option<&dyn Writable>) -> Result<()> {
        check(unsafe {
            sys::dsk_mla_decode_run(self.as_ptr(), plan.as_ptr(), q.dltensor(), kv_cache.dltensor(),
                                    block_table.dltensor(), cache_seqlens.dltensor(), softmax_scale, causal as i32,
                                    out.dltensor(), opt_out(lse))
        })
    }

    /// [`mla_decode_run`](Self::mla_decode_run) with a plan made and released in the call
    /// (`dsk_mla_decode`).
    #[allow(clippy::too_many_arguments)]
    pub fn mla_decode(&self, q: &impl AsDLTensor, kv_cache: &impl AsDLTensor, block_table: &impl AsDLTensor,
                      cache_seqlens: &impl AsDLTensor, softmax_scale: f32, causal: bool, out: &impl Writable,
                      lse: Option<&dyn Writable>) -> Result<()> {
        check(unsafe {
            sys::dsk_mla_decode(self.as_ptr(), q.dltensor(), kv_cache.dltensor(), block_table.dltensor(),
                                cache_seqlens.dltensor(), softmax_scale, causal as i32, out.dltensor(), opt_out(lse))
        })
    }

    /// Writes T tokens into the latent cache (`dsk_mla_cache_append`): for `slot_mapping[t] = s
    /// >= 0`, `kv_cache[s / page_size, s % page_size, h] = [c_kv[t, h] | k_pe[t, h]]`; slot -1
    /// skips the token. c_kv `[T, Hkv, Dv]` or `[T, Dv]`, k_pe `[T, Hkv, D - Dv]` or `[T, D - Dv]`,
    /// slot_mapping `[T]` int64.
    pub fn mla_cache_append(&self, c_kv: &impl AsDLTensor, k_pe: &impl AsDLTensor, slot_mapping: &impl AsDLTensor,
                            kv_cache: &impl Writable) -> Result<()> {
        check(unsafe {
            sys::dsk_mla_cache_append(self.as_ptr(), c_kv.dltensor(), k_pe.dltensor(), slot_mapping.dltensor(),
                                      kv_cache.dltensor())
        })
    }

    /// `q_latent[t, h] = q_nope[t, h] @ W_UK[h]` (`dsk_mla_absorb_q`): q_nope `[T, H, dn]` ->
    /// q_latent `[T, H, Dc]`; `wkv_b_scale` is the block scales of an fp8 wkv_b, `None` for
    /// float weights.
    pub fn mla_absorb_q(&self, q_nope: &impl AsDLTensor, wkv_b: &impl AsDLTensor,
                        wkv_b_scale: Option<&dyn AsDLTensor>, q_latent: &impl Writable) -> Result<()> {
        check(unsafe {
            sys::dsk_mla_absorb_q(self.as_ptr(), q_nope.dltensor(), wkv_b.dltensor(), opt(wkv_b_scale),
                                  q_latent.dltensor())
        })
    }

    /// `o[t, h] = o_latent[t, h] @ W_UV[h]^T` (`dsk_mla_absorb_out`): o_latent `[T, H, Dc]` ->
    /// o `[T, H, dv]`.
    pub fn mla_absorb_out(&self, o_latent: &impl AsDLTensor, wkv_b: &impl AsDLTensor,
                          wkv_b_scale: Option<&dyn AsDLTensor>, o: &impl Writable) -> Result<()> {
        check(unsafe {
            sys::dsk_mla_absorb_out(self.as_ptr(), o_latent.dltensor(), wkv_b.dltensor(), opt(wkv_b_scale),
                                    o.dltensor())
        })
    }

    /// Per-head keys and values from latents (`dsk_mla_decompress_kv`): `k[t, h, :dn] = c_kv[t]
    /// @ W_UK[h]^T`, `v[t, h] = c_kv[t] @ W_UV[h]^T`, and with k_pe `[T, Dr]`, `k[t, h, dn:] =
    /// k_pe[t]`. c_kv `[T, Dc]`, k `[T, H, dn (+ Dr)]`, v `[T, H, dv]`.
    pub fn mla_decompress_kv(&self, c_kv: &impl AsDLTensor, k_pe: Option<&dyn AsDLTensor>, wkv_b: &impl AsDLTensor,
                             wkv_b_scale: Option<&dyn AsDLTensor>, k: &impl Writable, v: &impl Writable)
                             -> Result<()> {
        check(unsafe {
            sys::dsk_mla_decompress_kv(self.as_ptr(), c_kv.dltensor(), opt(k_pe), wkv_b.dltensor(),
                                       opt(wkv_b_scale), k.dltensor(), v.dltensor())
        })
    }

    /// Variable-length MHA-form attention (`dsk_mla_prefill`): q `[Tq, H, Dqk]`, k `[Tk, Hk,
    /// Dqk]`, v `[Tk, Hk, Dv]` -> out `[Tq, H, Dv]`, lse `[H, Tq]` f32 or `None`; request b owns
    /// query rows `cu_seqlens_q[b]..cu_seqlens_q[b+1]` and key rows of `cu_seqlens_k` (`None`:
    /// the same as `cu_seqlens_q`). With `causal`, query j sees keys `0 ..= n_k - n_q + j`.
    #[allow(clippy::too_many_arguments)]
    pub fn mla_prefill(&self, q: &impl AsDLTensor, k: &impl AsDLTensor, v: &impl AsDLTensor,
                       cu_seqlens_q: &impl AsDLTensor, cu_seqlens_k: Option<&dyn AsDLTensor>, softmax_scale: f32,
                       causal: bool, out: &impl Writable, lse: Option<&dyn Writable>) -> Result<()> {
        check(unsafe {
            sys::dsk_mla_prefill(self.as_ptr(), q.dltensor(), k.dltensor(), v.dltensor(), cu_seqlens_q.dltensor(),
                                 opt(cu_seqlens_k), softmax_scale, causal as i32, out.dltensor(), opt_out(lse))
        })
    }
}
