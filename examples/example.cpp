#include <cstdio>
#include <dsk/dsk.hpp>

int main() try {
  dsk::Context cpu(DSK_BACKEND_CPU);
  dsk::Tensor x = dsk::Tensor::empty(cpu, {4, 8}, dsk::dtype(DSK_DTYPE_F32));
  dsk::fill_normal(cpu, x, /*seed=*/42);  // the same numbers on every backend

  // Round the values to bf16 on the default device (CUDA if present), then bring them back.
  dsk::Context dev;
  dsk::Tensor y = dsk::Tensor::clone(dev, x.dl(), dsk::dtype(DSK_DTYPE_BF16));
  // Host memory is written by the context of the device the data is on (a CPU context cannot read
  // CUDA memory).
  dsk::Tensor back = dsk::Tensor::empty(cpu, {4, 8}, dsk::dtype(DSK_DTYPE_F32));
  dsk::copy(dev, &y.dl(), &back.dl());
  dev.synchronize();
  std::printf("x[0] = %f, bf16(x[0]) = %f\n", x.data<float>()[0], back.data<float>()[0]);
  return 0;
} catch (const dsk::Error& e) {
  std::fprintf(stderr, "dsk error %d: %s\n", e.status(), e.what());
  return 1;
}
