// consumer - a C++17 program built against an installed dsk through the dsk.hpp RAII layer.
#include <cstdio>
#include <dsk/dsk.hpp>

int main() {
  try {
    dsk::Context ctx(DSK_BACKEND_CPU);
    dsk::Tensor t = dsk::Tensor::empty(ctx, {4, 8}, dsk::dtype(DSK_DTYPE_F32));
    dsk::fill_uniform(ctx, t, /*seed=*/7, -1.0, 1.0);
    const float* v = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (!(v[i] >= -1.0f && v[i] < 1.0f)) {
        std::fprintf(stderr, "consumer_cpp: element %lld = %g is outside [-1, 1)\n",
                     static_cast<long long>(i), static_cast<double>(v[i]));
        return 1;
      }
    }
    // Errors surface as dsk::Error carrying the status.
    try {
      dsk::Tensor::empty(ctx, {1, 1, 1, 1, 1, 1, 1, 1, 1}, dsk::dtype(DSK_DTYPE_F32));
      std::fprintf(stderr, "consumer_cpp: a 9-d tensor was accepted\n");
      return 1;
    } catch (const dsk::Error& e) {
      if (e.status() != DSK_ERR_INVALID_ARGUMENT) {
        std::fprintf(stderr, "consumer_cpp: wrong status for a 9-d tensor: %s\n", e.what());
        return 1;
      }
    }
    std::printf("consumer_cpp: dsk %s, cpu op ok\n", dsk_version_string());
    return 0;
  } catch (const dsk::Error& e) {
    std::fprintf(stderr, "consumer_cpp: %s (%s)\n", e.what(), dsk_status_string(e.status()));
    return 1;
  }
}
