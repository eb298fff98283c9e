// device_io.h - small host <-> device transfers of index and logit arrays through dsk_copy.
#ifndef DSK_EXAMPLES_DEEPSEEK_DEVICE_IO_H_
#define DSK_EXAMPLES_DEEPSEEK_DEVICE_IO_H_

#include <cstdint>
#include <dsk/dsk.hpp>
#include <vector>

namespace deepseek {

template <typename T>
int32_t dtype_id_of();
template <>
inline int32_t dtype_id_of<int32_t>() {
  return DSK_DTYPE_INT32;
}
template <>
inline int32_t dtype_id_of<int64_t>() {
  return DSK_DTYPE_INT64;
}
template <>
inline int32_t dtype_id_of<float>() {
  return DSK_DTYPE_F32;
}

// A DLTensor describing host memory (contiguous, row-major).
template <typename T>
DLTensor host_view(const T* data, std::vector<int64_t>& shape) {
  DLTensor t{};
  t.data = const_cast<T*>(data);  // DLTensor has no const; dsk only reads copy sources
  t.device = {kDLCPU, 0};
  t.ndim = static_cast<int32_t>(shape.size());
  t.dtype = dsk::dtype(dtype_id_of<T>());
  t.shape = shape.data();
  return t;
}

// Copies host values into dst (a tensor of dst's shape on ctx's device).
template <typename T>
void write_device(dsk::Context& ctx, const std::vector<T>& values, const dsk::Tensor& dst) {
  const DLTensor& d = dst.dl();
  std::vector<int64_t> shape(d.shape, d.shape + d.ndim);
  const DLTensor src = host_view(values.data(), shape);
  dsk::copy(ctx, &src, dst);
}

// A new device tensor of `shape` holding `values`.
template <typename T>
dsk::Tensor to_device(dsk::Context& ctx, const std::vector<T>& values,
                      const std::vector<int64_t>& shape) {
  dsk::Tensor t = dsk::Tensor::empty(ctx, shape, dsk::dtype(dtype_id_of<T>()));
  write_device(ctx, values, t);
  return t;
}

// The values of src (any device, converted to T), in row-major order. dsk_copy into pageable host
// memory returns once the data is there.
template <typename T>
std::vector<T> read_device(dsk::Context& ctx, const DLTensor& src) {
  std::vector<int64_t> shape(src.shape, src.shape + src.ndim);
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  std::vector<T> out(static_cast<size_t>(n));
  const DLTensor dst = host_view(out.data(), shape);
  dsk::copy(ctx, &src, &dst);
  return out;
}

}  // namespace deepseek

#endif  // DSK_EXAMPLES_DEEPSEEK_DEVICE_IO_H_
