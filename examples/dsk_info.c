/* dsk_info - what this dsk build finds on this machine.
 *
 * Prints the library and ABI versions, every backend with its devices (or why it is unavailable),
 * then sends a small tensor through every available backend and checks it comes back unchanged.
 * Exit status 0 when every available backend passed the round trip. */
#include <dsk/dsk.h>
#include <stdio.h>
#include <string.h>

static int fail(const char* what, dsk_status s) {
  fprintf(stderr, "dsk_info: %s failed: %s (%s)\n", what, dsk_status_string(s),
          dsk_last_error_message());
  return 1;
}

static void print_devices(int32_t backend, int32_t count) {
  for (int32_t d = 0; d < count; ++d) {
    dsk_device_props p;
    dsk_device_props_init(&p);
    if (dsk_device_get_props(backend, d, &p) != DSK_OK) {
      printf("    device %d: %s\n", d, dsk_last_error_message());
      continue;
    }
    printf("    device %d: %s\n", d, p.name);
    if (backend == DSK_BACKEND_CUDA) {
      printf(
          "      compute capability %d.%d, %d SMs, %.1f GiB, %d-bit bus at %d MHz, "
          "%.0f GB/s peak\n",
          p.compute_capability_major, p.compute_capability_minor, p.multiprocessor_count,
          (double)p.total_memory_bytes / (1024.0 * 1024.0 * 1024.0), p.memory_bus_width_bits,
          p.memory_clock_khz / 1000, p.memory_bandwidth_gbps);
    } else {
      printf("      %d logical cores, %.1f GiB memory\n", p.multiprocessor_count,
             (double)p.total_memory_bytes / (1024.0 * 1024.0 * 1024.0));
    }
  }
}

/* Host f32 tensor -> backend tensor (bf16) -> host f32; the values are exact in bf16. */
static int round_trip(int32_t backend) {
  dsk_context_options o;
  dsk_context* ctx = NULL;
  dsk_context* host = NULL;
  dsk_tensor* src = NULL;
  dsk_tensor* dev = NULL;
  dsk_tensor* back = NULL;
  DLDataType f32, bf16;
  const int64_t shape[2] = {3, 4};
  int rc = 1;
  dsk_status s;
  dsk_dtype_from_id(DSK_DTYPE_F32, &f32);
  dsk_dtype_from_id(DSK_DTYPE_BF16, &bf16);
  dsk_context_options_init(&o);
  o.backend = backend;
  if ((s = dsk_context_create(&o, &ctx)) != DSK_OK) return fail("dsk_context_create", s);
  o.backend = DSK_BACKEND_CPU;
  if ((s = dsk_context_create(&o, &host)) != DSK_OK) {
    rc = fail("dsk_context_create", s);
    goto done;
  }
  if ((s = dsk_tensor_create(host, 2, shape, f32, &src)) != DSK_OK) {
    rc = fail("dsk_tensor_create", s);
    goto done;
  }
  {
    float* v = (float*)dsk_tensor_dltensor(src)->data;
    for (int i = 0; i < 12; ++i) v[i] = (float)(i - 6) * 0.5f;
  }
  if ((s = dsk_tensor_clone(ctx, dsk_tensor_dltensor(src), bf16, &dev)) != DSK_OK) {
    rc = fail("dsk_tensor_clone to the backend", s);
    goto done;
  }
  /* Back into host memory through ctx: a CPU context cannot read CUDA memory. */
  if ((s = dsk_tensor_create(host, 2, shape, f32, &back)) != DSK_OK) {
    rc = fail("dsk_tensor_create", s);
    goto done;
  }
  if ((s = dsk_copy(ctx, dsk_tensor_dltensor(dev), dsk_tensor_dltensor(back))) != DSK_OK) {
    rc = fail("dsk_copy back to the host", s);
    goto done;
  }
  if ((s = dsk_context_synchronize(ctx)) != DSK_OK) {
    rc = fail("dsk_context_synchronize", s);
    goto done;
  }
  rc = memcmp(dsk_tensor_dltensor(src)->data, dsk_tensor_dltensor(back)->data, 12 * sizeof(float));
  printf("    round trip f32 -> bf16 on %s -> f32: %s\n",
         backend == DSK_BACKEND_CUDA ? "cuda" : "cpu", rc == 0 ? "ok" : "MISMATCH");
done:
  dsk_tensor_release(back);
  dsk_tensor_release(dev);
  dsk_tensor_release(src);
  dsk_context_destroy(host);
  dsk_context_destroy(ctx);
  return rc != 0;
}

int main(void) {
  int failures = 0;
  printf("dsk %s (version number %u, ABI %u; headers %s, ABI %d)\n", dsk_version_string(),
         dsk_version_number(), dsk_abi_version(), DSK_VERSION_STRING, DSK_ABI_VERSION);
  printf("default backend: %s\n", dsk_backend_default() == DSK_BACKEND_CUDA ? "cuda" : "cpu");
  for (int32_t b = DSK_BACKEND_CPU; b < DSK_BACKEND_COUNT; ++b) {
    dsk_backend_info info;
    dsk_backend_info_init(&info);
    if (dsk_backend_get_info(b, &info) != DSK_OK) return fail("dsk_backend_get_info", 1);
    if (!info.available) {
      printf("backend %s: unavailable (%s)\n", info.name, info.reason);
      continue;
    }
    printf("backend %s: available, score %d, %d device(s)\n", info.name, info.score,
           info.device_count);
    print_devices(b, info.device_count);
    failures += round_trip(b);
  }
  return failures == 0 ? 0 : 1;
}
