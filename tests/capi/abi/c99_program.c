/* c99_program - the C API exercised from strict ISO C99 (-std=c99 -pedantic -Werror).
 *
 * The doctest suites call the API from C++; this program is what a C user or a binding generator
 * sees: only C99 constructs, no C++ headers, no extensions. It walks through every group of
 * functions once (versions, status, dtypes, backends, contexts, tensors, DLPack in both forms, an
 * error path, a safetensors file) on the CPU backend, checks results and exits 0 only if every
 * check held. */
#include <dsk/dsk.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_failures = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      ++g_failures;                                                            \
    }                                                                          \
  } while (0)

/* A failed call makes the rest of a section meaningless, so it returns from the section. */
#define CHECK_OK(call)                                                          \
  do {                                                                          \
    dsk_status check_ok_status_ = (call);                                       \
    if (check_ok_status_ != DSK_OK) {                                           \
      fprintf(stderr, "%s:%d: %s returned %s: %s\n", __FILE__, __LINE__, #call, \
              dsk_status_string(check_ok_status_), dsk_last_error_message());   \
      ++g_failures;                                                             \
      return;                                                                   \
    }                                                                           \
  } while (0)

static DLDataType dtype(int32_t id) {
  DLDataType t;
  memset(&t, 0, sizeof t);
  if (dsk_dtype_from_id(id, &t) != DSK_OK) ++g_failures;
  return t;
}

/* Every section runs on the CPU backend so that host code may read tensor data directly. */
static dsk_context* cpu_context(void) {
  dsk_context_options o;
  dsk_context* ctx = NULL;
  dsk_context_options_init(&o);
  o.backend = DSK_BACKEND_CPU;
  if (dsk_context_create(&o, &ctx) != DSK_OK) {
    fprintf(stderr, "cannot create a CPU context: %s\n", dsk_last_error_message());
    ++g_failures;
  }
  return ctx;
}

static int same_dtype(DLDataType a, DLDataType b) {
  return a.code == b.code && a.bits == b.bits && a.lanes == b.lanes;
}

static void versions(void) {
  char expected[32];
  CHECK(dsk_version_number() == DSK_VERSION_NUMBER);
  CHECK(dsk_abi_version() == DSK_ABI_VERSION);
  CHECK(strcmp(dsk_version_string(), DSK_VERSION_STRING) == 0);
  sprintf(expected, "%d.%d.%d", DSK_VERSION_MAJOR, DSK_VERSION_MINOR, DSK_VERSION_PATCH);
  CHECK(strcmp(dsk_version_string(), expected) == 0);
}

static void statuses(void) {
  dsk_status s;
  CHECK(strcmp(dsk_status_string(DSK_OK), "ok") == 0);
  for (s = DSK_ERR_INVALID_ARGUMENT; s <= DSK_ERR_NOT_FOUND; ++s) {
    const char* text = dsk_status_string(s);
    CHECK(text != NULL && text[0] != '\0' && strcmp(text, "unknown status") != 0);
  }
  CHECK(strcmp(dsk_status_string(1000), "unknown status") == 0);
  CHECK(dsk_last_error_message() != NULL);
}

static void dtypes(void) {
  static const char* const names[DSK_DTYPE_COUNT] = {
      NULL, "f32", "f16", "bf16", "fp8_e4m3fn", "fp8_e5m2", "int32", "int64", "uint8", "bool"};
  static const size_t sizes[DSK_DTYPE_COUNT] = {0, 4, 2, 2, 1, 1, 4, 8, 1, 1};
  const float src[4] = {1.0f, -2.5f, 1000.0f, 0.333333343f};
  uint16_t bf16[4];
  float back[4];
  DLDataType t, bad;
  int32_t id;
  for (id = DSK_DTYPE_F32; id < DSK_DTYPE_COUNT; ++id) {
    int32_t again = 0;
    CHECK_OK(dsk_dtype_from_id(id, &t));
    CHECK_OK(dsk_dtype_to_id(t, &again));
    CHECK(again == id);
    CHECK(t.lanes == 1);
    CHECK(dsk_dtype_size(t) == sizes[id]);
    CHECK(strcmp(dsk_dtype_name(t), names[id]) == 0);
  }
  t = dtype(DSK_DTYPE_BF16);
  CHECK(t.code == kDLBfloat && t.bits == 16);
  CHECK(dtype(DSK_DTYPE_FP8_E4M3FN).code == kDLFloat8_e4m3fn);
  CHECK(dtype(DSK_DTYPE_BOOL).code == kDLBool);

  bad.code = kDLComplex;
  bad.bits = 64;
  bad.lanes = 1;
  CHECK(dsk_dtype_size(bad) == 0);
  CHECK(strcmp(dsk_dtype_name(bad), "unsupported") == 0);
  CHECK(dsk_dtype_to_id(bad, &id) == DSK_ERR_INVALID_ARGUMENT);
  CHECK(dsk_dtype_from_id(0, &t) == DSK_ERR_INVALID_ARGUMENT);

  /* f32 -> bf16 -> f32 is exact for values with 8 significant bits and rounds the last one. */
  CHECK_OK(dsk_convert_host(dtype(DSK_DTYPE_F32), src, dtype(DSK_DTYPE_BF16), bf16, 4));
  CHECK_OK(dsk_convert_host(dtype(DSK_DTYPE_BF16), bf16, dtype(DSK_DTYPE_F32), back, 4));
  CHECK(back[0] == 1.0f && back[1] == -2.5f && back[2] == 1000.0f);
  CHECK(back[3] == 0.333984375f);
  CHECK(dsk_convert_host(dtype(DSK_DTYPE_F32), NULL, dtype(DSK_DTYPE_BF16), bf16, 4) ==
        DSK_ERR_INVALID_ARGUMENT);
}

static void backends(void) {
  dsk_backend_info info;
  dsk_device_props props;
  int32_t kind;
  CHECK_OK(dsk_backend_info_init(&info));
  CHECK(info.struct_size == sizeof info);
  CHECK_OK(dsk_backend_get_info(DSK_BACKEND_CPU, &info));
  CHECK(info.backend == DSK_BACKEND_CPU && info.available == 1 && info.device_count >= 1);
  CHECK(strcmp(info.name, "cpu") == 0 && info.reason[0] == '\0');
  CHECK(dsk_device_count(DSK_BACKEND_CPU) == info.device_count);

  /* CUDA may or may not be usable here; either way the query succeeds and explains itself. */
  CHECK_OK(dsk_backend_info_init(&info));
  CHECK_OK(dsk_backend_get_info(DSK_BACKEND_CUDA, &info));
  CHECK(info.backend == DSK_BACKEND_CUDA && strcmp(info.name, "cuda") == 0);
  CHECK(info.available ? info.device_count >= 1 : info.reason[0] != '\0');
  CHECK(dsk_device_count(DSK_BACKEND_CUDA) == (info.available ? info.device_count : 0));

  kind = dsk_backend_default();
  CHECK(kind == DSK_BACKEND_CPU || kind == DSK_BACKEND_CUDA);

  CHECK_OK(dsk_device_props_init(&props));
  CHECK(props.struct_size == sizeof props);
  CHECK_OK(dsk_device_get_props(DSK_BACKEND_CPU, 0, &props));
  CHECK(props.backend == DSK_BACKEND_CPU && props.device_id == 0);
  CHECK(props.multiprocessor_count >= 1 && props.name[0] != '\0');
  CHECK(dsk_device_get_props(DSK_BACKEND_CPU, 1000, &props) == DSK_ERR_INVALID_ARGUMENT);
  CHECK(dsk_backend_get_info(DSK_BACKEND_COUNT, &info) == DSK_ERR_INVALID_ARGUMENT);
}

static void* counting_alloc(void* user, size_t bytes, size_t alignment, DLDevice device,
                            void* stream) {
  void* p = NULL;
  (void)device;
  (void)stream;
  /* C99 has no aligned_alloc; over-allocate and keep the original pointer just before the block. */
  {
    char* raw = (char*)malloc(bytes + alignment + sizeof(void*));
    uintptr_t start;
    if (raw == NULL) return NULL;
    start = ((uintptr_t)(raw + sizeof(void*)) + alignment - 1) & ~(uintptr_t)(alignment - 1);
    p = (void*)start;
    ((void**)p)[-1] = raw;
  }
  ++*(int*)user;
  return p;
}

static void counting_free(void* user, void* ptr, size_t bytes, DLDevice device, void* stream) {
  (void)bytes;
  (void)device;
  (void)stream;
  if (ptr != NULL) free(((void**)ptr)[-1]);
  --*(int*)user;
}

static void contexts(void) {
  dsk_context_options o;
  dsk_allocator a;
  dsk_context* ctx = NULL;
  dsk_tensor* t = NULL;
  int32_t backend = -1;
  DLDevice device;
  void* stream = &o;
  size_t ws = 1;
  int live = 0;
  const int64_t shape[1] = {100};

  CHECK(dsk_context_create(NULL, &ctx) == DSK_OK);
  dsk_context_destroy(ctx);
  dsk_context_destroy(NULL);

  CHECK_OK(dsk_context_options_init(&o));
  CHECK(o.struct_size == sizeof o && o.backend == DSK_BACKEND_AUTO && o.device_id == 0);
  CHECK(o.stream == NULL && o.allocator == NULL);
  memset(&a, 0, sizeof a);
  a.struct_size = sizeof a;
  a.user = &live;
  a.alloc = counting_alloc;
  a.free = counting_free;
  o.backend = DSK_BACKEND_CPU;
  o.allocator = &a;
  CHECK_OK(dsk_context_create(&o, &ctx));
  CHECK(dsk_context_get_backend(ctx, &backend) == DSK_OK && backend == DSK_BACKEND_CPU);
  CHECK(dsk_context_get_device(ctx, &device) == DSK_OK && device.device_type == kDLCPU);
  CHECK(dsk_context_get_stream(ctx, &stream) == DSK_OK && stream == NULL);
  CHECK(dsk_context_set_stream(ctx, NULL) == DSK_OK);
  CHECK(dsk_context_reserve_workspace(ctx, 4096) == DSK_OK);
  CHECK(dsk_context_get_workspace_size(ctx, &ws) == DSK_OK && ws >= 4096);
  CHECK(dsk_context_synchronize(ctx) == DSK_OK);

  /* Tensors go through the hook and outlive their context. */
  live = 0;
  CHECK(dsk_tensor_create(ctx, 1, shape, dtype(DSK_DTYPE_F32), &t) == DSK_OK);
  CHECK(live >= 1);
  dsk_context_destroy(ctx);
  CHECK(dsk_tensor_numel(t) == 100);
  dsk_tensor_release(t);
  CHECK(live <= 0);

  /* The options struct of an older caller is shorter; one shorter than v1 is refused. */
  CHECK_OK(dsk_context_options_init(&o));
  o.struct_size = 4;
  CHECK(dsk_context_create(&o, &ctx) == DSK_ERR_VERSION_MISMATCH);
}

static void tensors(void) {
  dsk_context* ctx = NULL;
  dsk_tensor* t = NULL;
  dsk_tensor* col = NULL;
  dsk_tensor* copy = NULL;
  dsk_tensor* half = NULL;
  dsk_random_params p;
  const DLTensor* d;
  const int64_t shape[2] = {3, 4};
  const int64_t col_shape[1] = {3};
  const int64_t col_strides[1] = {4};
  const float* v;
  int64_t i;

  if ((ctx = cpu_context()) == NULL) return;
  CHECK_OK(dsk_tensor_create(ctx, 2, shape, dtype(DSK_DTYPE_F32), &t));
  d = dsk_tensor_dltensor(t);
  CHECK(d != NULL && d->ndim == 2 && d->shape[0] == 3 && d->shape[1] == 4);
  CHECK(d->strides != NULL && d->strides[0] == 4 && d->strides[1] == 1 && d->byte_offset == 0);
  CHECK(d->device.device_type == kDLCPU && same_dtype(d->dtype, dtype(DSK_DTYPE_F32)));
  CHECK(((uintptr_t)d->data % 64) == 0);
  CHECK(dsk_tensor_numel(t) == 12 && dsk_tensor_nbytes(t) == 48);
  CHECK(dsk_tensor_is_contiguous(t) == 1 && dsk_tensor_is_read_only(t) == 0);
  CHECK(dsk_dltensor_validate(d, "t") == DSK_OK);

  CHECK_OK(dsk_fill(ctx, d, 1.5));
  v = (const float*)d->data;
  for (i = 0; i < 12; ++i) CHECK(v[i] == 1.5f);

  /* Column 1 as a strided view; writing through it changes the base. */
  CHECK_OK(dsk_tensor_view(t, 1, col_shape, col_strides, 1, &col));
  CHECK(dsk_tensor_is_contiguous(col) == 0 && dsk_tensor_numel(col) == 3);
  CHECK_OK(dsk_fill(ctx, dsk_tensor_dltensor(col), -7.0));
  for (i = 0; i < 12; ++i) CHECK(v[i] == (i % 4 == 1 ? -7.0f : 1.5f));

  CHECK_OK(dsk_tensor_clone(ctx, dsk_tensor_dltensor(col), dtype(DSK_DTYPE_F32), &copy));
  CHECK(dsk_tensor_is_contiguous(copy) == 1);
  for (i = 0; i < 3; ++i) CHECK(((const float*)dsk_tensor_dltensor(copy)->data)[i] == -7.0f);
  CHECK_OK(dsk_fill(ctx, dsk_tensor_dltensor(copy), 2.0));
  CHECK_OK(dsk_copy(ctx, dsk_tensor_dltensor(copy), dsk_tensor_dltensor(col)));
  for (i = 0; i < 12; ++i) CHECK(v[i] == (i % 4 == 1 ? 2.0f : 1.5f));

  /* The view keeps the storage alive after the base's last reference is gone. */
  dsk_tensor_retain(t);
  dsk_tensor_release(t);
  dsk_tensor_release(t);
  t = NULL;
  CHECK(((const float*)dsk_tensor_dltensor(col)->data)[0] == 2.0f);

  CHECK_OK(dsk_random_params_init(&p));
  CHECK(p.struct_size == sizeof p && p.distribution == DSK_RANDOM_UNIFORM);
  CHECK(p.a == 0.0 && p.b == 1.0);
  p.seed = 42;
  p.a = -1.0;
  p.b = 1.0;
  CHECK_OK(dsk_tensor_create(ctx, 1, col_shape, dtype(DSK_DTYPE_F16), &half));
  CHECK_OK(dsk_fill_random(ctx, dsk_tensor_dltensor(half), &p));
  CHECK_OK(dsk_tensor_clone(ctx, dsk_tensor_dltensor(half), dtype(DSK_DTYPE_F32), &t));
  for (i = 0; i < 3; ++i) {
    float x = ((const float*)dsk_tensor_dltensor(t)->data)[i];
    CHECK(x >= -1.0f && x <= 1.0f);
  }
  p.distribution = DSK_RANDOM_NORMAL;
  CHECK(dsk_fill_random(ctx, dsk_tensor_dltensor(t), &p) == DSK_OK);

  dsk_tensor_release(t);
  dsk_tensor_release(half);
  dsk_tensor_release(copy);
  dsk_tensor_release(col);
  dsk_context_destroy(ctx);
}

/* A DLPack producer written in C: one heap block holds the managed struct, shape and data. */
struct producer {
  DLManagedTensorVersioned managed;
  int64_t shape[1];
  int32_t data[5];
  int* deleted;
};

static void producer_delete(DLManagedTensorVersioned* self) {
  struct producer* p = (struct producer*)self->manager_ctx;
  ++*p->deleted;
  free(p);
}

static DLManagedTensorVersioned* produce(int* deleted, uint32_t major) {
  struct producer* p = (struct producer*)calloc(1, sizeof *p);
  int32_t i;
  if (p == NULL) return NULL;
  for (i = 0; i < 5; ++i) p->data[i] = i * 10;
  p->shape[0] = 5;
  p->deleted = deleted;
  p->managed.version.major = major;
  p->managed.version.minor = DLPACK_MINOR_VERSION;
  p->managed.manager_ctx = p;
  p->managed.deleter = producer_delete;
  p->managed.flags = DLPACK_FLAG_BITMASK_READ_ONLY;
  p->managed.dl_tensor.data = p->data;
  p->managed.dl_tensor.device.device_type = kDLCPU;
  p->managed.dl_tensor.device.device_id = 0;
  p->managed.dl_tensor.ndim = 1;
  p->managed.dl_tensor.dtype = dtype(DSK_DTYPE_INT32);
  p->managed.dl_tensor.shape = p->shape;
  p->managed.dl_tensor.strides = NULL;
  p->managed.dl_tensor.byte_offset = 0;
  return &p->managed;
}

static void dlpack(void) {
  dsk_context* ctx = NULL;
  dsk_tensor* t = NULL;
  dsk_tensor* back = NULL;
  DLManagedTensorVersioned* mv = NULL;
  DLManagedTensor* ml = NULL;
  const int64_t shape[2] = {2, 3};
  int deleted = 0;
  int64_t i;

  if ((ctx = cpu_context()) == NULL) return;
  CHECK_OK(dsk_tensor_create(ctx, 2, shape, dtype(DSK_DTYPE_INT64), &t));
  CHECK_OK(dsk_fill(ctx, dsk_tensor_dltensor(t), 9.0));

  /* Versioned export then import: zero-copy, and the storage survives the original handle. */
  CHECK_OK(dsk_tensor_to_dlpack_versioned(t, &mv));
  CHECK(mv->version.major == 1 && mv->deleter != NULL && mv->flags == 0);
  CHECK(mv->dl_tensor.data == dsk_tensor_dltensor(t)->data && mv->dl_tensor.ndim == 2);
  CHECK_OK(dsk_tensor_from_dlpack_versioned(mv, &back));
  CHECK(dsk_tensor_dltensor(back)->data == dsk_tensor_dltensor(t)->data);
  dsk_tensor_release(t);
  t = back;
  back = NULL;
  for (i = 0; i < 6; ++i) CHECK(((const int64_t*)dsk_tensor_dltensor(t)->data)[i] == 9);

  /* Legacy form, and a deleter called by the consumer instead of an import. */
  CHECK_OK(dsk_tensor_to_dlpack(t, &ml));
  CHECK(ml->dl_tensor.shape[0] == 2 && ml->dl_tensor.shape[1] == 3 && ml->deleter != NULL);
  CHECK_OK(dsk_tensor_from_dlpack(ml, &back));
  CHECK(dsk_tensor_numel(back) == 6);
  dsk_tensor_release(back);
  back = NULL;
  CHECK_OK(dsk_tensor_to_dlpack(t, &ml));
  ml->deleter(ml);
  dsk_tensor_release(t);
  t = NULL;

  /* A foreign, read-only producer: dsk keeps it until the last reference and never writes it. */
  mv = produce(&deleted, DLPACK_MAJOR_VERSION);
  CHECK(mv != NULL);
  if (mv == NULL) return;
  CHECK_OK(dsk_tensor_from_dlpack_versioned(mv, &t));
  CHECK(dsk_tensor_is_read_only(t) == 1 && dsk_tensor_numel(t) == 5);
  CHECK(((const int32_t*)dsk_tensor_dltensor(t)->data)[4] == 40);
  CHECK(dsk_tensor_dltensor(t)->strides[0] == 1);
  CHECK_OK(dsk_tensor_to_dlpack_versioned(t, &mv));
  CHECK((mv->flags & DLPACK_FLAG_BITMASK_READ_ONLY) != 0);
  dsk_tensor_release(t);
  CHECK(deleted == 0);
  mv->deleter(mv);
  CHECK(deleted == 1);

  /* A major version dsk does not speak is refused and left with the caller. */
  mv = produce(&deleted, DLPACK_MAJOR_VERSION + 1);
  CHECK(mv != NULL);
  if (mv == NULL) return;
  t = NULL;
  CHECK(dsk_tensor_from_dlpack_versioned(mv, &t) == DSK_ERR_VERSION_MISMATCH);
  CHECK(t == NULL && deleted == 1);
  mv->deleter(mv);
  CHECK(deleted == 2);
  dsk_context_destroy(ctx);
}

static void errors(void) {
  dsk_context* ctx = NULL;
  dsk_tensor* t = NULL;
  int64_t shape[DSK_MAX_NDIM + 1];
  const char* message;
  int32_t i;
  for (i = 0; i <= DSK_MAX_NDIM; ++i) shape[i] = 1;
  if ((ctx = cpu_context()) == NULL) return;

  CHECK(dsk_tensor_create(ctx, DSK_MAX_NDIM + 1, shape, dtype(DSK_DTYPE_F32), &t) ==
        DSK_ERR_INVALID_ARGUMENT);
  CHECK(t == NULL);
  message = dsk_last_error_message();
  /* The message names the function and the offending argument. */
  CHECK(strncmp(message, "dsk_tensor_create", strlen("dsk_tensor_create")) == 0);
  CHECK(strstr(message, "ndim") != NULL);
  /* A later success does not clear it (callers test the status, not the message). */
  CHECK(dsk_tensor_create(ctx, DSK_MAX_NDIM, shape, dtype(DSK_DTYPE_F32), &t) == DSK_OK);
  CHECK(strstr(dsk_last_error_message(), "ndim") != NULL);
  dsk_tensor_release(t);

  CHECK(dsk_tensor_create(NULL, 1, shape, dtype(DSK_DTYPE_F32), &t) == DSK_ERR_INVALID_ARGUMENT);
  CHECK(dsk_context_create(NULL, NULL) == DSK_ERR_INVALID_ARGUMENT);
  CHECK(dsk_dltensor_validate(NULL, "x") == DSK_ERR_INVALID_ARGUMENT);
  CHECK(dsk_backend_info_init(NULL) == DSK_ERR_INVALID_ARGUMENT);
  CHECK(dsk_tensor_dltensor(NULL) == NULL && dsk_tensor_numel(NULL) == 0);
  dsk_tensor_release(NULL);
  dsk_context_destroy(ctx);
}

static int g_log_calls = 0;

/* A one-tensor safetensors file written byte by byte, read back through a view and an info. */
static void safetensors(void) {
  static const char header[] =
      "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}   ";
  const char* path = "dsk_abi_c99.safetensors";
  const float values[2] = {1.5f, -4.0f};
  unsigned char length[8];
  size_t n = sizeof header - 1, i;
  dsk_safetensors* st = NULL;
  dsk_safetensors_info info;
  DLTensor view;
  const char* name = NULL;
  int64_t count = 0;
  FILE* f = fopen(path, "wb");
  CHECK(f != NULL);
  if (f == NULL) return;
  for (i = 0; i < 8; ++i) length[i] = (unsigned char)(n >> (8 * i));
  fwrite(length, 1, 8, f);
  fwrite(header, 1, n, f);
  fwrite(values, sizeof(float), 2, f);
  fclose(f);
  if (dsk_safetensors_open(path, &st) != DSK_OK) {
    fprintf(stderr, "dsk_safetensors_open: %s\n", dsk_last_error_message());
    ++g_failures;
    remove(path);
    return;
  }
  CHECK(dsk_safetensors_count(st, &count) == DSK_OK && count == 1);
  CHECK(dsk_safetensors_name(st, 0, &name) == DSK_OK && strcmp(name, "x") == 0);
  CHECK(dsk_safetensors_tensor(st, "x", &view) == DSK_OK);
  CHECK(view.ndim == 1 && view.shape[0] == 2 && view.dtype.code == kDLFloat);
  CHECK(memcmp(view.data, values, sizeof values) == 0);
  CHECK(dsk_safetensors_info_init(&info) == DSK_OK);
  CHECK(dsk_safetensors_tensor_info(st, "x", &info) == DSK_OK);
  CHECK(info.dtype_id == DSK_DTYPE_F32 && info.nbytes == 8 && info.file_offset == 8 + n);
  CHECK(dsk_safetensors_find(st, "y", &count) == DSK_ERR_NOT_FOUND && count == -1);
  dsk_safetensors_close(st);
  remove(path);
}

static void count_logs(int32_t level, const char* message, void* user) {
  (void)level;
  (void)message;
  ++*(int*)user;
}

int main(void) {
  dsk_log_set(count_logs, &g_log_calls, DSK_LOG_DEBUG);
  versions();
  statuses();
  dtypes();
  backends();
  contexts();
  tensors();
  dlpack();
  errors();
  safetensors();
  dsk_log_set(NULL, NULL, DSK_LOG_ERROR);
  if (g_failures != 0) {
    fprintf(stderr, "c99_program: %d check(s) failed\n", g_failures);
    return 1;
  }
  printf("c99_program: dsk %s (ABI %" PRIu32 "), all checks passed, %d log messages\n",
         dsk_version_string(), dsk_abi_version(), g_log_calls);
  return 0;
}
