// The "dsk-tiny-v1" generator against the test vectors of tests/golden/README.md (computed there
// with numpy and cross-checked by an independent C implementation): hashes, the first and last
// float32 bits of several tensors, the bf16 rounding, and bit-pattern sums over the whole
// checkpoint, which catch any single differing value.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>

#include "checkpoint_spec.h"
#include "generator.h"
#include "tiny_model.h"

using namespace deepseek;

namespace {

uint32_t bits(float f) {
  uint32_t u = 0;
  std::memcpy(&u, &f, 4);
  return u;
}

struct Vector {
  const char* name;
  bool last;  // the tensor's last 4 values, else its first 4
  uint32_t bits[4];
};

const Vector kVectors[] = {
    {"model.layers.0.self_attn.q_a_proj.weight",
     false,
     {0x3c2f2db0, 0xbd7f23b0, 0x3d43d746, 0x3c85bff0}},
    {"model.norm.weight", false, {0x3f6264ff, 0x3f82af0a, 0x3f88ba13, 0x3f88a098}},
    {"model.layers.1.mlp.gate.e_score_correction_bias",
     false,
     {0xbabb2e00, 0x3c754410, 0xbca22452, 0xbce9c6f6}},
    {"model.embed_tokens.weight", false, {0xbe8f8564, 0x3f41e498, 0x3f1dbbe2, 0xbf7f2264}},
    {"lm_head.weight", false, {0xbd641122, 0xbcceb354, 0xbc34b658, 0xbceb0900}},
    {"model.layers.3.mlp.experts.15.down_proj.weight",
     true,
     {0x3cf123a3, 0x3da976d0, 0xbcc874c5, 0xbdaaf0db}},
    {"model.layers.2.self_attn.kv_b_proj.weight",
     true,
     {0x3cd286d4, 0xbc907598, 0x3b82d817, 0x3d198054}},
};

}  // namespace

TEST_CASE("generator: hashes of the README") {
  CHECK(splitmix64(0) == 0xe220a8397b1dcdafull);
  const uint64_t fnv = fnv1a64("model.layers.0.self_attn.q_a_proj.weight");
  CHECK(fnv == 0x409d2f67fd0a53b7ull);
  CHECK(splitmix64(fnv ^ (kDefaultWeightSeed * kGolden)) == 0x95e5b6db17a3de83ull);
}

TEST_CASE("generator: first and last values of the README, bit for bit") {
  const ModelConfig c = parse_config(tiny_config_json(), "tiny");
  const auto specs = checkpoint_tensors(c);
  for (const Vector& v : kVectors) {
    auto spec = std::find_if(specs.begin(), specs.end(),
                             [&](const TensorSpec& s) { return s.name == v.name; });
    REQUIRE(spec != specs.end());
    int64_t n = 1;
    for (int64_t d : spec->shape) n *= d;
    const std::vector<float> got =
        generate_tensor(v.name, spec->shape.back(), n, kDefaultWeightSeed);
    for (size_t i = 0; i < 4; ++i) {
      INFO(v.name << (v.last ? " last" : " first") << " value " << i);
      CHECK(bits(got[v.last ? got.size() - 4 + i : i]) == v.bits[i]);
    }
  }
}

TEST_CASE("generator: whole-checkpoint bit sums of the README (f32 and bf16)") {
  const ModelConfig c = parse_config(tiny_config_json(), "tiny");
  uint64_t f32_sum = 0, bf16_sum = 0, values = 0;
  for (const SafetensorsEntry& e : generate_checkpoint(c, kDefaultWeightSeed, false)) {
    for (size_t i = 0; i + 4 <= e.bytes.size(); i += 4) {
      uint32_t u = 0;
      std::memcpy(&u, e.bytes.data() + i, 4);
      f32_sum += u;
      ++values;
    }
  }
  const auto bf16 = generate_checkpoint(c, kDefaultWeightSeed, true);
  for (const SafetensorsEntry& e : bf16) {
    if (e.dtype != "BF16") continue;  // the three f32 biases are not in the bf16 sum
    for (size_t i = 0; i + 2 <= e.bytes.size(); i += 2) {
      uint16_t u = 0;
      std::memcpy(&u, e.bytes.data() + i, 2);
      bf16_sum += u;
    }
  }
  CHECK(values == 12698416);
  CHECK(f32_sum == 26568701735335835ull);
  CHECK(bf16_sum == 405404820877ull);
  // bf16 (RNE) of the first 4 q_a_proj values.
  for (const SafetensorsEntry& e : bf16) {
    if (e.name != "model.layers.0.self_attn.q_a_proj.weight") continue;
    const uint16_t want[4] = {0x3c2f, 0xbd7f, 0x3d44, 0x3c86};
    for (size_t i = 0; i < 4; ++i) {
      uint16_t u = 0;
      std::memcpy(&u, e.bytes.data() + 2 * i, 2);
      CHECK(u == want[i]);
    }
  }
}

TEST_CASE("tiny checkpoint: the spec's tensors, f32 and bf16") {
  const ModelConfig c = parse_config(tiny_config_json(), "tiny");
  const auto specs = checkpoint_tensors(c);
  // 1 embedding + 4 layers x 9 attention/norm tensors + 3 dense + 3 x (router, bias, 48 experts,
  // 3 shared) + final norm + lm_head.
  CHECK(specs.size() == 1 + 4 * 9 + 3 + 3 * (2 + 48 + 3) + 2);
  const auto f32 = generate_checkpoint(c, kDefaultWeightSeed, false);
  const auto bf16 = generate_checkpoint(c, kDefaultWeightSeed, true);
  REQUIRE(f32.size() == specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    CHECK(f32[i].name == specs[i].name);
    CHECK(f32[i].dtype == "F32");
    const bool bias = specs[i].role == TensorRole::kBias;
    CHECK(bf16[i].dtype == (bias ? "F32" : "BF16"));
    CHECK(bf16[i].bytes.size() * (bias ? 1 : 2) == f32[i].bytes.size());
  }
}
