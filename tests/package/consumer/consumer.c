/* consumer - a C program built against an installed dsk (via find_package or pkg-config).
 *
 * Prints the backends the installed library finds, then runs a small CPU computation. With
 * --cuda-module=absent it also insists that CUDA is reported unavailable with a reason (the prefix
 * has no libdsk-cuda.so), with --cuda-module=present that the installed module was found. */
#include <dsk/dsk.h>
#include <stdio.h>
#include <string.h>

static int fail(const char* what) {
  fprintf(stderr, "consumer: %s failed: %s\n", what, dsk_last_error_message());
  return 1;
}

static int print_backends(const char* expect) {
  int32_t kind;
  for (kind = DSK_BACKEND_CPU; kind < DSK_BACKEND_COUNT; ++kind) {
    dsk_backend_info info;
    dsk_backend_info_init(&info);
    if (dsk_backend_get_info(kind, &info) != DSK_OK) return fail("dsk_backend_get_info");
    if (info.available) {
      printf("backend %s: available, %d device(s)\n", info.name, info.device_count);
    } else {
      printf("backend %s: unavailable: %s\n", info.name, info.reason);
    }
    if (kind != DSK_BACKEND_CUDA) continue;
    if (strcmp(expect, "absent") == 0 && (info.available || info.reason[0] == '\0')) {
      fprintf(stderr, "consumer: CUDA should be unavailable, with a reason, without the module\n");
      return 1;
    }
    /* "could not be loaded" is how lib/core/registry.cpp reports a module it did not find (or
     * could not dlopen); any other reason means the module was loaded and found no device. */
    if (strcmp(expect, "present") == 0 && strstr(info.reason, "could not be loaded") != NULL) {
      fprintf(stderr, "consumer: the installed CUDA module was not found\n");
      return 1;
    }
  }
  return 0;
}

/* f32 -> bf16 copy on the CPU backend; the values are exact in bf16. */
static int cpu_op(void) {
  dsk_context_options o;
  dsk_context* ctx = NULL;
  dsk_tensor* a = NULL;
  dsk_tensor* b = NULL;
  DLDataType f32, bf16;
  float back[6];
  const int64_t shape[2] = {2, 3};
  int rc = 1, i;
  dsk_dtype_from_id(DSK_DTYPE_F32, &f32);
  dsk_dtype_from_id(DSK_DTYPE_BF16, &bf16);
  dsk_context_options_init(&o);
  o.backend = DSK_BACKEND_CPU;
  if (dsk_context_create(&o, &ctx) != DSK_OK) return fail("dsk_context_create");
  if (dsk_tensor_create(ctx, 2, shape, f32, &a) != DSK_OK) {
    fail("dsk_tensor_create");
  } else if (dsk_fill(ctx, dsk_tensor_dltensor(a), -3.25) != DSK_OK) {
    fail("dsk_fill");
  } else if (dsk_tensor_clone(ctx, dsk_tensor_dltensor(a), bf16, &b) != DSK_OK) {
    fail("dsk_tensor_clone");
  } else if (dsk_convert_host(bf16, dsk_tensor_dltensor(b)->data, f32, back, 6) != DSK_OK) {
    fail("dsk_convert_host");
  } else {
    rc = 0;
    for (i = 0; i < 6; ++i) {
      if (back[i] != -3.25f) rc = 1;
    }
    printf("cpu op: %s\n", rc == 0 ? "ok" : "WRONG VALUES");
  }
  dsk_tensor_release(b);
  dsk_tensor_release(a);
  dsk_context_destroy(ctx);
  return rc;
}

int main(int argc, char** argv) {
  const char* expect = "any";
  int i;
  for (i = 1; i < argc; ++i) {
    if (strncmp(argv[i], "--cuda-module=", 14) == 0) expect = argv[i] + 14;
  }
  /* The header this was compiled with and the library it loaded must agree. */
  if (dsk_abi_version() != DSK_ABI_VERSION || dsk_version_number() != DSK_VERSION_NUMBER) {
    fprintf(stderr, "consumer: headers are %s (ABI %d), library is %s (ABI %u)\n",
            DSK_VERSION_STRING, DSK_ABI_VERSION, dsk_version_string(), (unsigned)dsk_abi_version());
    return 1;
  }
  printf("dsk %s (ABI %u)\n", dsk_version_string(), (unsigned)dsk_abi_version());
  if (print_backends(expect) != 0) return 1;
  return cpu_op();
}
