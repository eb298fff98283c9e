#include "cpu/elementwise.h"

#include <algorithm>
#include <cstring>

#include "common/convert.h"
#include "common/random_value.h"
#include "cpu/convert_run.h"
#include "cpu/strided_walk.h"

namespace dsk {
namespace cpu {

void copy(const Layout& src, const Layout& dst) {
  if (dst.numel == 0) return;
  if (src.contiguous && dst.contiguous && src.dtype_id == dst.dtype_id) {
    std::memcpy(dst.data, src.data, static_cast<size_t>(dst.numel) * dst.elem_size);
    return;
  }
  const ConvertRun convert = convert_run(src.dtype_id, dst.dtype_id);
  const auto ss = static_cast<int64_t>(src.elem_size);
  const auto ds = static_cast<int64_t>(dst.elem_size);
  if (src.contiguous && dst.contiguous) {
    convert(src.data, ss, dst.data, ds, dst.numel);
    return;
  }
  // Walk the outer dims; convert each innermost row in one specialized run.
  const int32_t outer = dst.ndim - 1;
  const int64_t row = dst.shape[outer];
  StridedWalk s(outer, src.shape, src.strides);
  StridedWalk d(outer, dst.shape, dst.strides);
  for (int64_t r = 0; r < dst.numel / row; ++r, s.next(), d.next()) {
    convert(src.data + s.offset() * ss, src.strides[outer] * ss, dst.data + d.offset() * ds,
            dst.strides[outer] * ds, row);
  }
}

namespace {

// Stores `value` at n elements spaced `step` elements apart (typed, so the loop vectorizes).
template <typename T>
void fill_run(char* dst, int64_t step, int64_t n, const unsigned char* pattern) {
  T value;
  std::memcpy(&value, pattern, sizeof(T));
  T* p = reinterpret_cast<T*>(dst);
  if (step == 1) {
    std::fill(p, p + n, value);
  } else {
    for (int64_t i = 0; i < n; ++i) p[i * step] = value;
  }
}

}  // namespace

void fill(const Layout& dst, double value) {
  if (dst.numel == 0) return;
  unsigned char pattern[8];
  store_from_f64(dst.dtype_id, value, pattern);
  // Elements are naturally aligned only if the base is; otherwise write byte patterns.
  const bool aligned = reinterpret_cast<uintptr_t>(dst.data) % dst.elem_size == 0;
  auto run = [&](char* p, int64_t step, int64_t n) {
    if (!aligned) {
      for (int64_t i = 0; i < n; ++i) {
        std::memcpy(p + i * step * static_cast<int64_t>(dst.elem_size), pattern, dst.elem_size);
      }
      return;
    }
    switch (dst.elem_size) {
      case 1:
        fill_run<uint8_t>(p, step, n, pattern);
        break;
      case 2:
        fill_run<uint16_t>(p, step, n, pattern);
        break;
      case 4:
        fill_run<uint32_t>(p, step, n, pattern);
        break;
      default:
        fill_run<uint64_t>(p, step, n, pattern);
        break;
    }
  };
  if (dst.contiguous) {
    run(dst.data, 1, dst.numel);
    return;
  }
  const int32_t outer = dst.ndim - 1;
  const int64_t row = dst.shape[outer];
  const auto ds = static_cast<int64_t>(dst.elem_size);
  StridedWalk d(outer, dst.shape, dst.strides);
  for (int64_t r = 0; r < dst.numel / row; ++r, d.next()) {
    run(dst.data + d.offset() * ds, dst.strides[outer], row);
  }
}

void fill_random(const Layout& dst, const dsk_random_params& p) {
  StridedWalk d(dst.ndim, dst.shape, dst.strides);
  const auto ds = static_cast<int64_t>(dst.elem_size);
  const auto a = static_cast<float>(p.a);
  const auto b = static_cast<float>(p.b);
  // Consecutive elements share a Philox block: one call serves 4 (uniform) or 2 (normal) of them.
  const uint32_t per = random_elements_per_block(p.distribution);
  Philox4 block{};
  for (int64_t i = 0; i < dst.numel; ++i, d.next()) {
    const auto index = static_cast<uint64_t>(i);
    const auto lane = static_cast<uint32_t>(index % per);
    if (lane == 0 || i == 0) block = random_block(p.seed, p.offset, index / per);
    float v = random_from_block(p.distribution, block, lane, a, b);
    store_from_f32(dst.dtype_id, v, dst.data + d.offset() * ds);
  }
}

}  // namespace cpu
}  // namespace dsk
