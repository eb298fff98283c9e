// Malformed checkpoints must give clear errors that name the tensor (or the config field) and
// what was expected: a missing tensor, a wrong shape, a truncated file, a bad config field, an fp8
// weight without its scales, a wrong dtype.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "checkpoint_spec.h"
#include "generator.h"
#include "runner.h"
#include "tiny_model.h"

using namespace deepseek;

namespace {

// The message of loading `dir` as an f32 model, or "" when it loads.
std::string load_error(const std::string& dir, const std::string& dtype = "f32") {
  dsk::Context cpu(DSK_BACKEND_CPU);
  OpTimer timer(cpu, false);
  try {
    load_model(cpu, dir, make_precision(dtype), timer, 64, MoeMode::kPieces);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

struct Fixture {
  ModelConfig config = parse_config(tiny_config_json(), "tiny");
  std::vector<SafetensorsEntry> entries = generate_checkpoint(config, kDefaultWeightSeed, false);
  TempDir dir;

  SafetensorsEntry& entry(const std::string& name) {
    auto it = std::find_if(entries.begin(), entries.end(),
                           [&](const SafetensorsEntry& e) { return e.name == name; });
    REQUIRE(it != entries.end());
    return *it;
  }
  void write(const std::string& config_json = tiny_config_json()) {
    write_checkpoint_dir(dir.path(), config_json, entries);
  }
};

void check_contains(const std::string& message, const std::vector<std::string>& parts) {
  INFO("message: " << message);
  REQUIRE(!message.empty());
  for (const std::string& p : parts) CHECK(message.find(p) != std::string::npos);
}

}  // namespace

TEST_CASE("malformed checkpoint: a missing tensor is named with its expected shape") {
  Fixture f;
  const std::string name = "model.layers.2.mlp.experts.7.up_proj.weight";
  f.entries.erase(std::find_if(f.entries.begin(), f.entries.end(),
                               [&](const SafetensorsEntry& e) { return e.name == name; }));
  f.write();
  check_contains(load_error(f.dir.path()),
                 {"no tensor \"" + name + "\"", "expected shape [128, 256]",
                  "[moe_intermediate_size, hidden_size]"});
}

TEST_CASE("malformed checkpoint: a wrong shape names the tensor, its shape and the expected one") {
  Fixture f;
  const std::string name = "model.layers.1.self_attn.q_b_proj.weight";
  SafetensorsEntry& e = f.entry(name);
  e.shape = {1536, 64};
  e.bytes.resize(1536 * 64 * 4);
  f.write();
  check_contains(load_error(f.dir.path()), {"\"" + name + "\"", "has shape [1536, 64]",
                                            "expected shape [1536, 128]", "q_lora_rank"});
}

TEST_CASE("malformed checkpoint: a truncated file names the file and the cut tensor") {
  Fixture f;
  f.write();
  const std::string file = f.dir.path() + "/model.safetensors";
  const auto size = std::filesystem::file_size(file);
  std::filesystem::resize_file(file, size - 1000);  // the last tensor is lm_head.weight
  check_contains(load_error(f.dir.path()), {"model.safetensors", "lm_head.weight"});
}

TEST_CASE("malformed checkpoint: a bad header is reported with the file") {
  Fixture f;
  f.write();
  const std::string file = f.dir.path() + "/model.safetensors";
  {
    std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(8);
    io.write("[", 1);  // the header must be a JSON object
  }
  check_contains(load_error(f.dir.path()), {"model.safetensors"});
}

TEST_CASE("malformed checkpoint: bad config fields are named") {
  const std::vector<std::pair<std::string, nlohmann::json>> cases = {
      {"num_attention_heads", "eight"},
      {"kv_lora_rank", nullptr},  // missing
      {"n_group", 3},             // does not divide 16 experts
      {"hidden_act", "gelu"},
      {"model_type", "llama"},
  };
  for (const auto& [field, value] : cases) {
    INFO("field " << field);
    Fixture f;
    nlohmann::json j = nlohmann::json::parse(tiny_config_json());
    if (value.is_null()) {
      j.erase(field);
    } else {
      j[field] = value;
    }
    f.write(j.dump());
    check_contains(load_error(f.dir.path()), {"config.json", "\"" + field + "\""});
  }
  Fixture f;
  nlohmann::json j = nlohmann::json::parse(tiny_config_json());
  j["rope_scaling"]["factor"] = "four";
  f.write(j.dump());
  check_contains(load_error(f.dir.path()), {"rope_scaling.factor"});
  f.write("{ not json");
  check_contains(load_error(f.dir.path()), {"config.json", "not valid JSON"});
}

TEST_CASE("malformed checkpoint: an fp8 weight needs its weight_scale_inv") {
  Fixture f;
  const std::string name = "model.layers.0.mlp.down_proj.weight";
  SafetensorsEntry& e = f.entry(name);
  e.dtype = "F8_E4M3";
  e.bytes.resize(e.bytes.size() / 4, 0);
  f.write();
  check_contains(load_error(f.dir.path(), "fp8"),
                 {"no tensor \"" + name + "_scale_inv\"", "expected shape [2, 4]"});
}

TEST_CASE("malformed checkpoint: an integer weight is rejected with its dtype") {
  Fixture f;
  const std::string name = "model.norm.weight";
  f.entry(name).dtype = "I32";
  f.write();
  check_contains(load_error(f.dir.path()), {"\"" + name + "\"", "dtype I32", "expected F32"});
}
