#include "cpu/elementwise.h"

#include <cstring>

#include "common/convert.h"
#include "common/random_value.h"
#include "cpu/strided_walk.h"

namespace dsk {
namespace cpu {

void copy(const Layout& src, const Layout& dst) {
  if (dst.numel == 0) return;
  if (src.contiguous && dst.contiguous && src.dtype_id == dst.dtype_id) {
    std::memcpy(dst.data, src.data, static_cast<size_t>(dst.numel) * dst.elem_size);
    return;
  }
  StridedWalk s(src.ndim, src.shape, src.strides);
  StridedWalk d(dst.ndim, dst.shape, dst.strides);
  const auto ss = static_cast<int64_t>(src.elem_size);
  const auto ds = static_cast<int64_t>(dst.elem_size);
  for (int64_t i = 0; i < dst.numel; ++i, s.next(), d.next()) {
    convert_element(src.dtype_id, src.data + s.offset() * ss, dst.dtype_id,
                    dst.data + d.offset() * ds);
  }
}

void fill(const Layout& dst, double value) {
  if (dst.numel == 0) return;
  unsigned char pattern[8];
  store_from_f64(dst.dtype_id, value, pattern);
  StridedWalk d(dst.ndim, dst.shape, dst.strides);
  const auto ds = static_cast<int64_t>(dst.elem_size);
  for (int64_t i = 0; i < dst.numel; ++i, d.next()) {
    std::memcpy(dst.data + d.offset() * ds, pattern, dst.elem_size);
  }
}

void fill_random(const Layout& dst, const dsk_random_params& p) {
  StridedWalk d(dst.ndim, dst.shape, dst.strides);
  const auto ds = static_cast<int64_t>(dst.elem_size);
  const auto a = static_cast<float>(p.a);
  const auto b = static_cast<float>(p.b);
  for (int64_t i = 0; i < dst.numel; ++i, d.next()) {
    float v = random_value(p.distribution, p.seed, p.offset, a, b, static_cast<uint64_t>(i));
    store_from_f32(dst.dtype_id, v, dst.data + d.offset() * ds);
  }
}

}  // namespace cpu
}  // namespace dsk
