/* example_sampling.c - token sampling with the dsk C API.
 *
 * One decode step for a batch of 4 requests over a vocabulary of 64 tokens, each with its own
 * parameters: request 0 greedy, request 1 temperature 0.7 with top-p 0.9, request 2 top-k 5 with
 * repetition and frequency penalties over the tokens it generated so far, request 3 min-p 0.1
 * restricted to even tokens by an allowed-token bitmask (as a grammar would). Every request has
 * its own seed; the offset is the decode step, so the same call gives the same tokens on any
 * batch composition. Prints the sampled ids, their logprobs and the 3 most likely tokens. The
 * tensors are caller memory (borrowed DLTensors) on the CPU. */
#include <dsk/dsk.h>
#include <stdio.h>

enum { B = 4, V = 64, TOP = 3 };

/* A DLTensor over caller memory (contiguous). */
static DLTensor tensor(void* data, int32_t ndim, int64_t* shape, int32_t dtype_id) {
  DLTensor t;
  t.data = data;
  t.device.device_type = kDLCPU;
  t.device.device_id = 0;
  t.ndim = ndim;
  dsk_dtype_from_id(dtype_id, &t.dtype);
  t.shape = shape;
  t.strides = NULL;
  t.byte_offset = 0;
  return t;
}

int main(void) {
  static float logits[B][V];
  float temperature[B] = {0.0f, 0.7f, 1.0f, 1.0f}, top_p[B] = {1.0f, 0.9f, 1.0f, 1.0f};
  float min_p[B] = {0.0f, 0.0f, 0.0f, 0.1f}, repetition[B] = {1.0f, 1.0f, 1.3f, 1.0f};
  float frequency[B] = {0.0f, 0.0f, 0.5f, 0.0f};
  int32_t top_k[B] = {0, 0, 5, 0};
  int64_t seeds[B] = {11, 22, 33, 44}, offsets[B] = {7, 7, 7, 7}; /* offset: the decode step */
  /* Tokens generated so far, CSR: request 2 owns out_ids[0..4). */
  int32_t out_offs[B + 1] = {0, 0, 0, 4, 4}, out_ids[4] = {9, 9, 17, 30};
  int32_t mask[B][(V + 31) / 32];
  int32_t ids[B], top_ids[B][TOP];
  float logprobs[B], top_logprobs[B][TOP];
  uint8_t status[B];
  int64_t s_bv[2] = {B, V}, s_b[1] = {B}, s_offs[1] = {B + 1}, s_ids[1] = {4};
  int64_t s_mask[2] = {B, (V + 31) / 32}, s_top[2] = {B, TOP};
  DLTensor t_logits, t_temp, t_top_k, t_top_p, t_min_p, t_rep, t_freq, t_seeds, t_offsets;
  DLTensor t_out_offs, t_out_ids, t_mask, t_ids, t_logprobs, t_top_ids, t_top_logprobs, t_status;
  dsk_context_options options;
  dsk_context* ctx = NULL;
  dsk_sampling_params params;
  dsk_sampling_outputs outputs;
  int b, j, k;

  /* Logits standing in for a model's output: a bump per row, plus some ripple. */
  for (b = 0; b < B; ++b) {
    for (j = 0; j < V; ++j) {
      const double d = (double)(j - 8 * b - 10) / 4.0;
      logits[b][j] = (float)(6.0 / (1.0 + d * d) + 0.2 * (double)((j * 7) % 5 - 2));
    }
    for (k = 0; k < (V + 31) / 32; ++k) mask[b][k] = b == 3 ? 0x55555555 : -1; /* even ids */
  }

  dsk_context_options_init(&options);
  options.backend = DSK_BACKEND_CPU;
  if (dsk_context_create(&options, &ctx) != DSK_OK) {
    fprintf(stderr, "dsk: %s\n", dsk_last_error_message());
    return 1;
  }

  t_logits = tensor(logits, 2, s_bv, DSK_DTYPE_F32);
  t_temp = tensor(temperature, 1, s_b, DSK_DTYPE_F32);
  t_top_k = tensor(top_k, 1, s_b, DSK_DTYPE_INT32);
  t_top_p = tensor(top_p, 1, s_b, DSK_DTYPE_F32);
  t_min_p = tensor(min_p, 1, s_b, DSK_DTYPE_F32);
  t_rep = tensor(repetition, 1, s_b, DSK_DTYPE_F32);
  t_freq = tensor(frequency, 1, s_b, DSK_DTYPE_F32);
  t_seeds = tensor(seeds, 1, s_b, DSK_DTYPE_INT64);
  t_offsets = tensor(offsets, 1, s_b, DSK_DTYPE_INT64);
  t_out_offs = tensor(out_offs, 1, s_offs, DSK_DTYPE_INT32);
  t_out_ids = tensor(out_ids, 1, s_ids, DSK_DTYPE_INT32);
  t_mask = tensor(mask, 2, s_mask, DSK_DTYPE_INT32);
  t_ids = tensor(ids, 1, s_b, DSK_DTYPE_INT32);
  t_logprobs = tensor(logprobs, 1, s_b, DSK_DTYPE_F32);
  t_top_ids = tensor(top_ids, 2, s_top, DSK_DTYPE_INT32);
  t_top_logprobs = tensor(top_logprobs, 2, s_top, DSK_DTYPE_F32);
  t_status = tensor(status, 1, s_b, DSK_DTYPE_UINT8);

  /* Per-row tensors replace the scalars of dsk_sampling_params_init (T 1, no filters). */
  dsk_sampling_params_init(&params);
  params.temperatures = &t_temp;
  params.top_ks = &t_top_k;
  params.top_ps = &t_top_p;
  params.min_ps = &t_min_p;
  params.repetition_penalties = &t_rep;
  params.frequency_penalties = &t_freq;
  params.seeds = &t_seeds;
  params.offsets = &t_offsets;
  params.output_offsets = &t_out_offs;
  params.output_ids = &t_out_ids;
  params.allowed_mask = &t_mask;

  dsk_sampling_outputs_init(&outputs);
  outputs.ids = &t_ids;
  outputs.logprobs = &t_logprobs;
  outputs.top_ids = &t_top_ids;
  outputs.top_logprobs = &t_top_logprobs;
  outputs.status = &t_status;

  if (dsk_sample(ctx, &params, &t_logits, &outputs) != DSK_OK ||
      dsk_context_synchronize(ctx) != DSK_OK) {
    fprintf(stderr, "dsk: %s\n", dsk_last_error_message());
    dsk_context_destroy(ctx);
    return 1;
  }
  for (b = 0; b < B; ++b) {
    printf("request %d: token %2d logprob %8.4f status %d  top:", b, (int)ids[b],
           (double)logprobs[b], (int)status[b]);
    for (k = 0; k < TOP; ++k) {
      if (top_ids[b][k] >= 0) printf(" %2d (%.4f)", (int)top_ids[b][k], (double)top_logprobs[b][k]);
    }
    printf("\n");
    if (status[b] != DSK_SAMPLE_OK || ids[b] < 0 || ids[b] >= V || (b == 3 && ids[b] % 2 != 0)) {
      fprintf(stderr, "unexpected result for request %d\n", b);
      dsk_context_destroy(ctx);
      return 1;
    }
  }
  dsk_context_destroy(ctx);
  return 0;
}
