// generator.cpp - the "dsk-tiny-v1" weight generator (see generator.h and tests/golden/README.md).
#include "generator.h"

#include <cmath>

namespace deepseek {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + kGolden;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t fnv1a64(const std::string& name) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

float generator_uniform(uint64_t name_hash, uint64_t seed, uint64_t index) {
  const uint64_t h = splitmix64((name_hash ^ (seed * kGolden)) + index);
  // 24 random bits: the product and the difference are exact in f32.
  return static_cast<float>(h >> 40) * 0x1p-23f - 1.0f;
}

std::vector<float> generate_tensor(const std::string& name, int64_t in_features, int64_t count,
                                   uint64_t seed) {
  const uint64_t hash = fnv1a64(name);
  std::vector<float> out(static_cast<size_t>(count));
  enum class Kind { kNorm, kBias, kEmbedding, kLinear } kind = Kind::kLinear;
  if (ends_with(name, "layernorm.weight") || name == "model.norm.weight") {
    kind = Kind::kNorm;
  } else if (ends_with(name, "e_score_correction_bias")) {
    kind = Kind::kBias;
  } else if (name == "model.embed_tokens.weight") {
    kind = Kind::kEmbedding;
  }
  // The scale is computed in double and rounded once to f32, as numpy's float32(1 / sqrt(in)).
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(in_features)));
  for (int64_t i = 0; i < count; ++i) {
    const float u = generator_uniform(hash, seed, static_cast<uint64_t>(i));
    float v = u;
    switch (kind) {
      case Kind::kNorm:
        v = 1.0f + u * 0.125f;
        break;
      case Kind::kBias:
        v = u * 0.03125f;
        break;
      case Kind::kEmbedding:
        break;
      case Kind::kLinear:
        v = u * scale;
        break;
    }
    out[static_cast<size_t>(i)] = v;
  }
  return out;
}

}  // namespace deepseek
