// Checkpoint layouts: a sharded checkpoint with model.safetensors.index.json (how Hugging Face
// publishes DeepSeek-V3) loads to the same model as one file, through the directory or the index.
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "golden.h"
#include "test_util.h"

using namespace deepseek;
using deepseek_test::run_tiny;
using deepseek_test::two_prompts;

TEST_CASE("checkpoint: a sharded index loads like a single file") {
  const ModelConfig c = parse_config(tiny_config_json(), "tiny");
  const auto entries = generate_checkpoint(c, kDefaultWeightSeed, true);
  TempDir single, sharded;
  write_checkpoint_dir(single.path(), tiny_config_json(), entries);

  // Three shards, tensors dealt out in turn, and the index that maps each name to its shard.
  std::vector<std::vector<SafetensorsEntry>> shards(3);
  nlohmann::json index = {{"metadata", {{"total_size", 0}}},
                          {"weight_map", nlohmann::json::object()}};
  for (size_t i = 0; i < entries.size(); ++i) {
    shards[i % 3].push_back(entries[i]);
    index["weight_map"][entries[i].name] =
        "model-0000" + std::to_string(i % 3 + 1) + "-of-00003.safetensors";
  }
  for (size_t s = 0; s < 3; ++s) {
    write_safetensors(
        sharded.path() + "/model-0000" + std::to_string(s + 1) + "-of-00003.safetensors",
        shards[s]);
  }
  std::ofstream(sharded.path() + "/model.safetensors.index.json") << index.dump(1);
  std::ofstream(sharded.path() + "/config.json") << tiny_config_json();

  dsk::Context cpu(DSK_BACKEND_CPU);
  const GenerateResult a = run_tiny(cpu, single.path(), "bf16", two_prompts(), 3);
  const GenerateResult b = run_tiny(cpu, sharded.path(), "bf16", two_prompts(), 3);
  const GenerateResult d =
      run_tiny(cpu, sharded.path() + "/model.safetensors.index.json", "bf16", two_prompts(), 3);
  CHECK(compare_logits(b.logits, a.logits).max_abs_err == 0.0);
  CHECK(compare_logits(d.logits, a.logits).max_abs_err == 0.0);
  CHECK(b.tokens == a.tokens);
}
