// generator.h - "dsk-tiny-v1": the deterministic weights of the tiny model, defined so that the C++
// runner and the numpy golden script (tests/golden/) produce the same values bit for bit.
#ifndef DSK_EXAMPLES_DEEPSEEK_GENERATOR_H_
#define DSK_EXAMPLES_DEEPSEEK_GENERATOR_H_

#include <cstdint>
#include <string>
#include <vector>

namespace deepseek {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kDefaultWeightSeed = 1234;

uint64_t splitmix64(uint64_t x);
uint64_t fnv1a64(const std::string& name);

// u in [-1, 1) for element `index` of tensor `name`: float32(h >> 40) * 2^-23 - 1 (exact) with
// h = splitmix64((fnv1a64(name) ^ (seed * kGolden)) + index), all mod 2^64.
float generator_uniform(uint64_t name_hash, uint64_t seed, uint64_t index);

// The float32 values of tensor `name` with `in_features` columns (the last dimension of a linear
// weight) and `count` elements: RMSNorm weights 1 + u / 8, e_score_correction_bias u / 32,
// embed_tokens u, every other weight u * float32(1 / sqrt(in_features)).
std::vector<float> generate_tensor(const std::string& name, int64_t in_features, int64_t count,
                                   uint64_t seed);

}  // namespace deepseek

#endif  // DSK_EXAMPLES_DEEPSEEK_GENERATOR_H_
