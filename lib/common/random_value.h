// random_value.h - the value dsk_fill_random stores at a given element, on every backend.
//
// This is the executable form of the formula documented at dsk_fill_random in
// include/dsk/dsk_tensor.h; the CPU loop and the CUDA kernel both call random_value() per element,
// so the contract is kept by construction. Its float steps rely on detmath.h (same build rules).
#ifndef DSK_LIB_COMMON_RANDOM_VALUE_H_
#define DSK_LIB_COMMON_RANDOM_VALUE_H_

#include <stdint.h>

#include "common/detmath.h"
#include "common/hd.h"
#include "common/philox.h"
#include "dsk/dsk_tensor.h"

namespace dsk {

// Top 24 bits of a word as a float on the 2^-24 grid: exact, since it has at most 24 bits.
DSK_HD float philox_word_to_unit(uint32_t word) { return static_cast<float>(word >> 8) * 0x1p-24f; }

// f32 value of element `index` (row-major) of a dsk_fill_random fill with the given distribution
// (DSK_RANDOM_UNIFORM or DSK_RANDOM_NORMAL; anything else gives 0), Philox key `seed`, counter
// offset `offset` and parameters a, b (already rounded to f32). Philox runs with key
// (lo32(seed), hi32(seed)) and counter (lo32(j), hi32(j), lo32(offset), hi32(offset)).
//
// Uniform: j = index / 4, word w = out[index % 4], u = (w >> 8) * 2^-24 in [0, 1),
//   value = a + ((b - a) * u)                     (each operation rounded to f32 in this order);
//   that rounding can give exactly b when ulp(b) > (b - a) * 2^-24, so values lie in [a, b].
// Normal (Box-Muller): j = index / 2, w0 = out[2 (index % 2)], w1 = out[2 (index % 2) + 1],
//   u1 = ((w0 >> 8) + 1) * 2^-24 in (0, 1], u2 = (w1 >> 8) * 2^-24 in [0, 1),
//   value = a + (b * (sqrt(-2 * det_log(u1)) * det_cos_2pi(u2)))   (f32, in this order;
//   sqrt is the correctly rounded IEEE square root).
DSK_HD float random_value(int32_t distribution, uint64_t seed, uint64_t offset, float a, float b,
                          uint64_t index);

// Elements served by one Philox call: 4 for uniform, 2 for normal (0 for anything else).
DSK_HD uint32_t random_elements_per_block(int32_t distribution) {
  return distribution == DSK_RANDOM_UNIFORM ? 4u : distribution == DSK_RANDOM_NORMAL ? 2u : 0u;
}

// The Philox output block j of a fill keyed by (seed, offset).
DSK_HD Philox4 random_block(uint64_t seed, uint64_t offset, uint64_t j) {
  return philox4x32_10(static_cast<uint32_t>(j), static_cast<uint32_t>(j >> 32),
                       static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32),
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// The value of the element at position `lane` (< random_elements_per_block) of block `w`. Loops
// that visit consecutive elements call random_block once per block and this per element;
// random_value() is the same computation for a single element.
DSK_HD float random_from_block(int32_t distribution, const Philox4& w, uint32_t lane, float a,
                               float b) {
  using S = StrictF32;
  if (distribution == DSK_RANDOM_UNIFORM) {
    const S u{philox_word_to_unit(w.v[lane])};
    return (S{a} + (S{b} - S{a}) * u).v;
  }
  if (distribution == DSK_RANDOM_NORMAL) {
    // +1 moves u1 off zero, where the log would be -inf.
    const float u1 = static_cast<float>((w.v[2 * lane] >> 8) + 1u) * 0x1p-24f;
    const float u2 = philox_word_to_unit(w.v[2 * lane + 1]);
    const S radius = strict_sqrt(S{-2.0f} * S{det_log(u1)});
    return (S{a} + S{b} * (radius * S{det_cos_2pi(u2)})).v;
  }
  return 0.0f;
}

DSK_HD float random_value(int32_t distribution, uint64_t seed, uint64_t offset, float a, float b,
                          uint64_t index) {
  const uint32_t per = random_elements_per_block(distribution);
  if (per == 0) return 0.0f;
  return random_from_block(distribution, random_block(seed, offset, index / per),
                           static_cast<uint32_t>(index % per), a, b);
}

}  // namespace dsk

#endif  // DSK_LIB_COMMON_RANDOM_VALUE_H_
