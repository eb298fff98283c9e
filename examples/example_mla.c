/* example_mla.c - MLA decode over a paged latent cache with the dsk C API, on the CPU.
 *
 * Two requests (70 and 5 tokens) live in a bf16 cache of 64-token pages. Their latents (512) and
 * rotated rope keys (64) enter the cache with dsk_mla_cache_append; one new query per request is
 * absorbed through W_UK into the first 512 columns of the decode query; attention runs over the
 * cache (plan once, run per layer); the latent output goes back through W_UV. Random numbers
 * stand in for the model's activations and weights. */
#include <dsk/dsk.h>
#include <stdio.h>

enum { B = 2, H = 4, DN = 128, DV = 128, DC = 512, DR = 64, D = DC + DR, PAGE = 64, PAGES = 4 };
enum { MAX_TENSORS = 32 };

static dsk_context* ctx = NULL;
static dsk_tensor* tensors[MAX_TENSORS];
static int num_tensors = 0;

/* A new CPU tensor (NULL on error), released at exit. */
static dsk_tensor* make(int32_t ndim, const int64_t* shape, int32_t dtype_id) {
  DLDataType dtype;
  dsk_tensor* t = NULL;
  if (num_tensors == MAX_TENSORS || dsk_dtype_from_id(dtype_id, &dtype) != DSK_OK ||
      dsk_tensor_create(ctx, ndim, shape, dtype, &t) != DSK_OK) {
    return NULL;
  }
  tensors[num_tensors++] = t;
  return t;
}

/* A strided view of `base` (NULL on error), released at exit. */
static dsk_tensor* view(dsk_tensor* base, int32_t ndim, const int64_t* shape,
                        const int64_t* strides, int64_t offset) {
  dsk_tensor* t = NULL;
  if (base == NULL || num_tensors == MAX_TENSORS ||
      dsk_tensor_view(base, ndim, shape, strides, offset, &t) != DSK_OK) {
    return NULL;
  }
  tensors[num_tensors++] = t;
  return t;
}

static const DLTensor* dl(const dsk_tensor* t) { return dsk_tensor_dltensor(t); }

/* Uniform random values in [-range, range]. */
static dsk_status fill_random(dsk_tensor* t, uint64_t seed, double range) {
  dsk_random_params p;
  dsk_random_params_init(&p);
  p.seed = seed;
  p.a = -range;
  p.b = range;
  return t == NULL ? DSK_ERR_INVALID_ARGUMENT : dsk_fill_random(ctx, dl(t), &p);
}

static int run(void) {
  /* Request b's tokens t are in page pages_of[b][t / PAGE] (request 1 leaves its second unused). */
  const int32_t seqlens[B] = {70, 5};
  const int32_t pages_of[B][2] = {{2, 0}, {3, 1}};
  const int64_t tokens = 75;
  const int64_t s_tokens_dc[2] = {tokens, DC}, s_tokens_dr[2] = {tokens, DR};
  const int64_t s_tokens[1] = {tokens}, s_cache[4] = {PAGES, PAGE, 1, D};
  const int64_t s_table[2] = {B, 2}, s_b[1] = {B}, s_wkv_b[2] = {H * (DN + DV), DC};
  const int64_t s_nope[3] = {B, H, DN}, s_pe[3] = {B, H, DR}, s_q[4] = {B, 1, H, D};
  const int64_t s_q_lat[3] = {B, H, DC}, s_q_lat_strides[3] = {H * D, D, 1};
  const int64_t s_out[4] = {B, 1, H, DC}, s_lse[3] = {B, H, 1}, s_o[3] = {B, H, DV};
  dsk_tensor *c_kv, *k_pe, *slots, *kv_cache, *block_table, *cache_seqlens, *wkv_b, *q_nope;
  dsk_tensor *q_pe, *q, *q_latent, *q_rope, *out, *lse, *o_latent, *o;
  dsk_mla_decode_plan* plan = NULL;
  dsk_status s;
  float scale = 0;
  size_t workspace = 0;
  int32_t splits = 0, b, i;
  int64_t t, n = 0;

  /* The cache: append every token's latent and rope key at its slot. */
  c_kv = make(2, s_tokens_dc, DSK_DTYPE_F32);
  k_pe = make(2, s_tokens_dr, DSK_DTYPE_F32);
  slots = make(1, s_tokens, DSK_DTYPE_INT64);
  kv_cache = make(4, s_cache, DSK_DTYPE_BF16);
  block_table = make(2, s_table, DSK_DTYPE_INT32);
  cache_seqlens = make(1, s_b, DSK_DTYPE_INT32);
  if (!slots || !kv_cache || !block_table || !cache_seqlens ||
      fill_random(c_kv, 1, 1.0) != DSK_OK || fill_random(k_pe, 2, 1.0) != DSK_OK ||
      dsk_fill(ctx, dl(kv_cache), 0.0) != DSK_OK) {
    return 1;
  }
  for (b = 0; b < B; ++b) {
    ((int32_t*)dl(cache_seqlens)->data)[b] = seqlens[b];
    for (i = 0; i < 2; ++i) ((int32_t*)dl(block_table)->data)[b * 2 + i] = pages_of[b][i];
    for (t = 0; t < seqlens[b]; ++t) {
      ((int64_t*)dl(slots)->data)[n++] = (int64_t)pages_of[b][t / PAGE] * PAGE + t % PAGE;
    }
  }
  if (dsk_mla_cache_append(ctx, dl(c_kv), dl(k_pe), dl(slots), dl(kv_cache)) != DSK_OK) return 1;

  /* The query: [q_nope @ W_UK | q_pe] per head, written straight into the decode q. */
  wkv_b = make(2, s_wkv_b, DSK_DTYPE_BF16);
  q_nope = make(3, s_nope, DSK_DTYPE_F32);
  q_pe = make(3, s_pe, DSK_DTYPE_F32);
  q = make(4, s_q, DSK_DTYPE_BF16);
  q_latent = view(q, 3, s_q_lat, s_q_lat_strides, 0);
  q_rope = view(q, 3, s_pe, s_q_lat_strides, DC);
  if (!q_latent || !q_rope || fill_random(wkv_b, 3, 0.05) != DSK_OK ||
      fill_random(q_nope, 4, 1.0) != DSK_OK || fill_random(q_pe, 5, 1.0) != DSK_OK ||
      dsk_mla_absorb_q(ctx, dl(q_nope), dl(wkv_b), NULL, dl(q_latent)) != DSK_OK ||
      dsk_copy(ctx, dl(q_pe), dl(q_rope)) != DSK_OK) {
    return 1;
  }

  /* Decode: one plan per batch shape, then a run per layer (here one). */
  out = make(4, s_out, DSK_DTYPE_BF16);
  lse = make(3, s_lse, DSK_DTYPE_F32);
  if (!out || !lse || dsk_mla_softmax_scale(192, 40.0, 1.0, 1, &scale) != DSK_OK ||
      dsk_mla_decode_plan_create(ctx, dl(q), dl(kv_cache), dl(block_table), dl(cache_seqlens),
                                 dl(out), &plan) != DSK_OK) {
    return 1;
  }
  s = dsk_mla_decode_plan_workspace_size(plan, &workspace);
  if (s == DSK_OK) s = dsk_mla_decode_plan_num_splits(plan, &splits);
  if (s == DSK_OK) s = dsk_context_reserve_workspace(ctx, workspace);
  if (s == DSK_OK) {
    s = dsk_mla_decode_run(ctx, plan, dl(q), dl(kv_cache), dl(block_table), dl(cache_seqlens),
                           scale, 1, dl(out), dl(lse));
  }
  dsk_mla_decode_plan_release(plan);
  if (s != DSK_OK) return 1;

  /* Back from the latent through W_UV: o [B, H, 128], the input of wo. */
  o_latent = view(out, 3, s_q_lat, NULL, 0);
  o = make(3, s_o, DSK_DTYPE_F32);
  if (!o_latent || !o || dsk_mla_absorb_out(ctx, dl(o_latent), dl(wkv_b), NULL, dl(o)) != DSK_OK) {
    return 1;
  }
  printf("softmax scale %.7f, %d split(s), %lu workspace bytes\n", (double)scale, (int)splits,
         (unsigned long)workspace);
  for (b = 0; b < B; ++b) {
    const float* ov = (const float*)dl(o)->data + (int64_t)b * H * DV;
    printf("request %d (%d tokens): lse[head 0] %.4f, o[head 0][0..3] %.4f %.4f %.4f %.4f\n",
           (int)b, (int)seqlens[b], (double)((const float*)dl(lse)->data)[b * H], (double)ov[0],
           (double)ov[1], (double)ov[2], (double)ov[3]);
  }
  return 0;
}

int main(void) {
  dsk_context_options options;
  int rc = 1;
  dsk_context_options_init(&options);
  options.backend = DSK_BACKEND_CPU;
  if (dsk_context_create(&options, &ctx) == DSK_OK) rc = run();
  if (rc != 0) fprintf(stderr, "dsk: %s\n", dsk_last_error_message());
  while (num_tensors > 0) dsk_tensor_release(tensors[--num_tensors]);
  dsk_context_destroy(ctx);
  return rc;
}
