#include <dsk/dsk.h>
#include <stdio.h>

int main(void) {
  dsk_context* ctx = NULL;
  dsk_tensor* x = NULL;
  DLDataType f32;
  const int64_t shape[2] = {2, 3};
  dsk_dtype_from_id(DSK_DTYPE_F32, &f32);

  /* NULL options: DSK_BACKEND_AUTO, i.e. CUDA when a GPU is usable, else CPU. */
  if (dsk_context_create(NULL, &ctx) != DSK_OK ||
      dsk_tensor_create(ctx, 2, shape, f32, &x) != DSK_OK ||
      dsk_fill(ctx, dsk_tensor_dltensor(x), 1.5) != DSK_OK) {
    fprintf(stderr, "dsk: %s\n", dsk_last_error_message());
    dsk_tensor_release(x);
    dsk_context_destroy(ctx);
    return 1;
  }
  printf("dsk %s: filled %lld elements\n", dsk_version_string(), (long long)dsk_tensor_numel(x));
  dsk_tensor_release(x);
  dsk_context_destroy(ctx);
  return 0;
}
