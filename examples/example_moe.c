/* example_moe.c - Mixture of Experts with the dsk C API.
 *
 * First DeepSeek-V3's gate routes a batch of 16 tokens: sigmoid scores of 256 router logits plus
 * the load-balancing bias pick 8 experts per token from the 4 best of 8 groups; the weights are
 * renormalized and scaled by 2.5. Then a small MoE layer (8 experts of width 128, 2 per token, one
 * shared expert, hidden size 256, bf16) runs in one dsk_moe_forward call on the CPU, and on a CUDA
 * device when there is one (inputs cloned to the device, the output copied back through the CUDA
 * context). Random numbers stand in for the model's activations and weights. */
#include <dsk/dsk.h>
#include <stdio.h>

enum { T = 16, E = 256, K = 8 };                    /* the gate */
enum { LT = 32, LE = 8, LK = 2, D = 256, I = 128 }; /* the layer */
enum { MAX_TENSORS = 48 };

static dsk_tensor* tensors[MAX_TENSORS];
static int num_tensors = 0;

/* A new tensor on ctx's device (NULL on error), released at exit. */
static dsk_tensor* make(dsk_context* ctx, int32_t ndim, const int64_t* shape, int32_t dtype_id) {
  DLDataType dtype;
  dsk_tensor* t = NULL;
  if (num_tensors == MAX_TENSORS || dsk_dtype_from_id(dtype_id, &dtype) != DSK_OK ||
      dsk_tensor_create(ctx, ndim, shape, dtype, &t) != DSK_OK) {
    return NULL;
  }
  tensors[num_tensors++] = t;
  return t;
}

/* A copy of a host tensor on ctx's device (NULL on error), released at exit. */
static dsk_tensor* clone(dsk_context* ctx, const dsk_tensor* src) {
  dsk_tensor* t = NULL;
  if (src == NULL || num_tensors == MAX_TENSORS ||
      dsk_tensor_clone(ctx, dsk_tensor_dltensor(src), dsk_tensor_dltensor(src)->dtype, &t) !=
          DSK_OK) {
    return NULL;
  }
  tensors[num_tensors++] = t;
  return t;
}

static const DLTensor* dl(const dsk_tensor* t) { return dsk_tensor_dltensor(t); }

static double absolute(double v) { return v < 0 ? -v : v; }

/* Uniform random values in [-range, range]. */
static dsk_status fill_random(dsk_context* ctx, dsk_tensor* t, uint64_t seed, double range) {
  dsk_random_params p;
  dsk_random_params_init(&p);
  p.seed = seed;
  p.a = -range;
  p.b = range;
  return t == NULL ? DSK_ERR_INVALID_ARGUMENT : dsk_fill_random(ctx, dl(t), &p);
}

/* Routes T tokens with DeepSeek-V3's gate and prints two of them. */
static int route(dsk_context* ctx) {
  const int64_t s_logits[2] = {T, E}, s_bias[1] = {E}, s_out[2] = {T, K}, s_flags[1] = {T};
  dsk_tensor *logits, *bias, *ids, *weights, *flags;
  dsk_moe_gate_config config;
  int64_t t, j;
  dsk_moe_gate_config_init(&config); /* V3: 256 experts, k 8, 8 groups, 4 kept, sigmoid, 2.5 */
  logits = make(ctx, 2, s_logits, DSK_DTYPE_F32);
  bias = make(ctx, 1, s_bias, DSK_DTYPE_F32);
  ids = make(ctx, 2, s_out, DSK_DTYPE_INT32);
  weights = make(ctx, 2, s_out, DSK_DTYPE_F32);
  flags = make(ctx, 1, s_flags, DSK_DTYPE_UINT8);
  if (!ids || !weights || !flags || fill_random(ctx, logits, 1, 3.0) != DSK_OK ||
      fill_random(ctx, bias, 2, 0.1) != DSK_OK ||
      dsk_moe_gate(ctx, &config, dl(logits), dl(bias), dl(ids), dl(weights), dl(flags)) != DSK_OK ||
      dsk_context_synchronize(ctx) != DSK_OK) {
    return 1;
  }
  for (t = 0; t < 2; ++t) {
    const int32_t* id = (const int32_t*)dl(ids)->data + t * K;
    const float* w = (const float*)dl(weights)->data + t * K;
    double sum = 0;
    printf("token %d:", (int)t);
    for (j = 0; j < K; ++j) {
      printf(" %3d (%.4f)", (int)id[j], (double)w[j]);
      sum += (double)w[j];
    }
    printf("  sum %.4f, flags %u\n", sum, (unsigned)((const uint8_t*)dl(flags)->data)[t]);
  }
  return 0;
}

/* The layer's inputs and weights in host memory. */
typedef struct Layer {
  dsk_tensor *x, *router_w, *bias, *w1, *w3, *w2, *s1, *s3, *s2, *out;
} Layer;

static int make_layer(dsk_context* host, Layer* l) {
  const int64_t s_x[2] = {LT, D}, s_r[2] = {LE, D}, s_b[1] = {LE};
  const int64_t s_13[3] = {LE, I, D}, s_2[3] = {LE, D, I}, s_s13[2] = {I, D}, s_s2[2] = {D, I};
  l->x = make(host, 2, s_x, DSK_DTYPE_BF16);
  l->router_w = make(host, 2, s_r, DSK_DTYPE_BF16);
  l->bias = make(host, 1, s_b, DSK_DTYPE_F32);
  l->w1 = make(host, 3, s_13, DSK_DTYPE_BF16);
  l->w3 = make(host, 3, s_13, DSK_DTYPE_BF16);
  l->w2 = make(host, 3, s_2, DSK_DTYPE_BF16);
  l->s1 = make(host, 2, s_s13, DSK_DTYPE_BF16);
  l->s3 = make(host, 2, s_s13, DSK_DTYPE_BF16);
  l->s2 = make(host, 2, s_s2, DSK_DTYPE_BF16);
  l->out = make(host, 2, s_x, DSK_DTYPE_F32);
  return !l->out || fill_random(host, l->x, 3, 1.0) != DSK_OK ||
         fill_random(host, l->router_w, 4, 0.1) != DSK_OK ||
         fill_random(host, l->bias, 5, 0.05) != DSK_OK ||
         fill_random(host, l->w1, 6, 0.06) != DSK_OK ||
         fill_random(host, l->w3, 7, 0.06) != DSK_OK ||
         fill_random(host, l->w2, 8, 0.09) != DSK_OK ||
         fill_random(host, l->s1, 9, 0.06) != DSK_OK ||
         fill_random(host, l->s3, 10, 0.06) != DSK_OK ||
         fill_random(host, l->s2, 11, 0.09) != DSK_OK;
}

/* out = the MoE layer on x, on ctx's device: 8 experts in 4 groups of 2, the best 2 groups kept,
 * 2 experts per token, sigmoid scores with a bias, plus one shared expert. */
static dsk_status forward(dsk_context* ctx, const Layer* l) {
  dsk_moe_gate_config config;
  dsk_moe_expert_weights experts, shared;
  dsk_moe_gate_config_init(&config);
  config.num_experts = LE;
  config.top_k = LK;
  config.n_group = 4;
  config.topk_group = 2;
  dsk_moe_expert_weights_init(&experts);
  experts.w1 = dl(l->w1);
  experts.w3 = dl(l->w3);
  experts.w2 = dl(l->w2);
  dsk_moe_expert_weights_init(&shared);
  shared.w1 = dl(l->s1);
  shared.w3 = dl(l->s3);
  shared.w2 = dl(l->s2);
  return dsk_moe_forward(ctx, &config, dl(l->x), dl(l->router_w), dl(l->bias), &experts, &shared,
                         dl(l->out));
}

/* The same layer on CUDA device 0 (inputs cloned there); out_host receives its output.
 * Returns 0 when it ran, 1 on error, 2 when no CUDA device is usable. */
static int forward_cuda(const Layer* host_layer, dsk_tensor* out_host) {
  dsk_context_options o;
  dsk_context* cuda = NULL;
  Layer d;
  int rc = 1;
  if (dsk_device_count(DSK_BACKEND_CUDA) < 1) return 2;
  dsk_context_options_init(&o);
  o.backend = DSK_BACKEND_CUDA;
  if (dsk_context_create(&o, &cuda) != DSK_OK) return 2;
  d.x = clone(cuda, host_layer->x);
  d.router_w = clone(cuda, host_layer->router_w);
  d.bias = clone(cuda, host_layer->bias);
  d.w1 = clone(cuda, host_layer->w1);
  d.w3 = clone(cuda, host_layer->w3);
  d.w2 = clone(cuda, host_layer->w2);
  d.s1 = clone(cuda, host_layer->s1);
  d.s3 = clone(cuda, host_layer->s3);
  d.s2 = clone(cuda, host_layer->s2);
  d.out = clone(cuda, host_layer->out);
  /* Back to the host through the CUDA context: a CPU context cannot read CUDA memory. */
  if (d.x && d.router_w && d.bias && d.w1 && d.w3 && d.w2 && d.s1 && d.s3 && d.s2 && d.out &&
      forward(cuda, &d) == DSK_OK && dsk_copy(cuda, dl(d.out), dl(out_host)) == DSK_OK &&
      dsk_context_synchronize(cuda) == DSK_OK) {
    rc = 0;
  }
  if (rc != 0) fprintf(stderr, "dsk (cuda): %s\n", dsk_last_error_message());
  /* The device tensors stay valid after the context is gone; they are released at exit. */
  dsk_context_destroy(cuda);
  return rc;
}

static int run(dsk_context* host) {
  const int64_t s_x[2] = {LT, D};
  Layer l;
  dsk_tensor* from_cuda;
  const float* out;
  int rc, i;
  if (route(host) != 0 || make_layer(host, &l) != 0 || forward(host, &l) != DSK_OK) return 1;
  out = (const float*)dl(l.out)->data;
  printf("MoE layer (cpu): out[0][0..3] %.5f %.5f %.5f %.5f\n", (double)out[0], (double)out[1],
         (double)out[2], (double)out[3]);
  from_cuda = make(host, 2, s_x, DSK_DTYPE_F32);
  if (from_cuda == NULL) return 1;
  rc = forward_cuda(&l, from_cuda);
  if (rc == 2) {
    printf("MoE layer (cuda): no usable CUDA device, skipped\n");
  } else if (rc == 0) {
    /* CPU and CUDA GEMMs round differently: agreement to bf16 precision is expected. */
    const float* c = (const float*)dl(from_cuda)->data;
    double worst = 0, scale = 0;
    for (i = 0; i < LT * D; ++i) {
      const double diff = absolute((double)c[i] - (double)out[i]);
      if (diff > worst) worst = diff;
      if (absolute((double)out[i]) > scale) scale = absolute((double)out[i]);
    }
    printf("MoE layer (cuda): out[0][0..3] %.5f %.5f %.5f %.5f, max |cuda - cpu| %.2g of %.2g\n",
           (double)c[0], (double)c[1], (double)c[2], (double)c[3], worst, scale);
    if (!(worst <= 0.05 * scale)) {
      fprintf(stderr, "CUDA and CPU outputs differ more than expected\n");
      return 1;
    }
  }
  return rc == 1 ? 1 : 0;
}

int main(void) {
  dsk_context_options options;
  dsk_context* ctx = NULL;
  int rc = 1;
  dsk_context_options_init(&options);
  options.backend = DSK_BACKEND_CPU;
  if (dsk_context_create(&options, &ctx) == DSK_OK) rc = run(ctx);
  if (rc != 0) fprintf(stderr, "dsk: %s\n", dsk_last_error_message());
  while (num_tensors > 0) dsk_tensor_release(tensors[--num_tensors]);
  dsk_context_destroy(ctx);
  return rc;
}
