// config.cpp - config.json parsing with nlohmann/json; every check names the field it rejects.
#include "config.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace deepseek {
namespace {

using nlohmann::json;

class Reader {
 public:
  Reader(const json& root, std::string source) : root_(root), source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw std::runtime_error(source_ + ": field \"" + field + "\" " + what);
  }

  const json* find(const json& obj, const std::string& field) const {
    auto it = obj.find(field);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }

  // obj[field], or nullptr when it is absent (or null) and `optional`; absent and required fails.
  const json* value(const json& obj, const std::string& field, const std::string& path,
                    bool optional) const {
    const json* v = find(obj, field);
    if (v == nullptr && !optional) fail(path, "is missing");
    return v;
  }

  // An integer in [lo, hi]; `fallback` when absent (no fallback: required).
  int64_t integer(const std::string& field, int64_t lo, int64_t hi,
                  const int64_t* fallback = nullptr) const {
    const json* v = value(root_, field, field, fallback != nullptr);
    if (v == nullptr) return *fallback;
    if (!v->is_number_integer()) fail(field, "must be an integer, got " + v->dump());
    const int64_t x = v->get<int64_t>();
    if (x < lo || x > hi) {
      fail(field, "= " + std::to_string(x) + ", expected a value in [" + std::to_string(lo) + ", " +
                      std::to_string(hi) + "]");
    }
    return x;
  }

  // A finite number >= lo; `fallback` when absent (no fallback: required).
  double number(const json& obj, const std::string& field, const std::string& path, double lo,
                const double* fallback = nullptr) const {
    const json* v = value(obj, field, path, fallback != nullptr);
    if (v == nullptr) return *fallback;
    if (!v->is_number()) fail(path, "must be a number, got " + v->dump());
    const double x = v->get<double>();
    if (!std::isfinite(x) || x < lo) fail(path, "= " + v->dump() + ", expected >= " + num(lo));
    return x;
  }

  bool boolean(const std::string& field, bool fallback) const {
    const json* v = find(root_, field);
    if (v == nullptr) return fallback;
    if (!v->is_boolean()) fail(field, "must be true or false, got " + v->dump());
    return v->get<bool>();
  }

  std::string string(const std::string& field, const std::string& fallback) const {
    const json* v = find(root_, field);
    if (v == nullptr) return fallback;
    if (!v->is_string()) fail(field, "must be a string, got " + v->dump());
    return v->get<std::string>();
  }

  const json& root() const { return root_; }

 private:
  static std::string num(double x) {
    std::ostringstream s;
    s << x;
    return s.str();
  }
  const json& root_;
  std::string source_;
};

constexpr int64_t kBig = int64_t{1} << 40;  // any real size is far below; keeps products in int64

void parse_rope(const Reader& r, ModelConfig& c) {
  const json* rs = r.find(r.root(), "rope_scaling");
  if (rs == nullptr) return;
  if (!rs->is_object()) r.fail("rope_scaling", "must be an object or null, got " + rs->dump());
  // transformers reads "rope_type" and falls back to the older "type".
  std::string type;
  for (const char* key : {"rope_type", "type"}) {
    const json* t = r.find(*rs, key);
    if (t != nullptr && t->is_string()) {
      type = t->get<std::string>();
      break;
    }
  }
  if (type != "yarn") {
    r.fail("rope_scaling.type", "is \"" + type + "\", expected \"yarn\" (DeepSeek-V3's only kind)");
  }
  RopeScaling& y = c.rope;
  y.yarn = true;
  y.factor = r.number(*rs, "factor", "rope_scaling.factor", 1.0);
  const double omp = r.number(*rs, "original_max_position_embeddings",
                              "rope_scaling.original_max_position_embeddings", 1.0);
  if (omp != std::floor(omp) || omp > static_cast<double>(kBig)) {
    r.fail("rope_scaling.original_max_position_embeddings", "must be a positive integer");
  }
  y.original_max_position_embeddings = static_cast<int64_t>(omp);
  const double beta_fast = 32.0, beta_slow = 1.0, one = 1.0, zero = 0.0;
  y.beta_fast = r.number(*rs, "beta_fast", "rope_scaling.beta_fast", 0.0, &beta_fast);
  y.beta_slow = r.number(*rs, "beta_slow", "rope_scaling.beta_slow", 0.0, &beta_slow);
  y.mscale = r.number(*rs, "mscale", "rope_scaling.mscale", 0.0, &one);
  y.mscale_all_dim = r.number(*rs, "mscale_all_dim", "rope_scaling.mscale_all_dim", 0.0, &zero);
  if (!(y.beta_fast > y.beta_slow && y.beta_slow > 0.0)) {
    r.fail("rope_scaling.beta_fast", "must be greater than beta_slow > 0");
  }
}

void parse_quantization(const Reader& r, ModelConfig& c) {
  const json* q = r.find(r.root(), "quantization_config");
  if (q == nullptr) return;
  if (!q->is_object()) r.fail("quantization_config", "must be an object, got " + q->dump());
  const json* method = r.find(*q, "quant_method");
  if (method == nullptr || !method->is_string() || method->get<std::string>() != "fp8") {
    r.fail("quantization_config.quant_method",
           "must be \"fp8\" (DeepSeek-V3's block-scaled e4m3 weights)");
  }
  const json* block = r.find(*q, "weight_block_size");
  if (block != nullptr && *block != json::array({128, 128})) {
    r.fail("quantization_config.weight_block_size",
           "= " + block->dump() + ", expected [128, 128] (dsk's block size)");
  }
  const json* fmt = r.find(*q, "fmt");
  if (fmt != nullptr && (!fmt->is_string() || fmt->get<std::string>() != "e4m3")) {
    r.fail("quantization_config.fmt", "= " + fmt->dump() + ", expected \"e4m3\"");
  }
  const json* scale_fmt = r.find(*q, "scale_fmt");
  c.fp8_checkpoint = true;
  c.ue8m0_scales =
      scale_fmt != nullptr && scale_fmt->is_string() && scale_fmt->get<std::string>() == "ue8m0";
}

}  // namespace

ModelConfig parse_config(const std::string& json_text, const std::string& source) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    throw std::runtime_error(source + ": not valid JSON: " + e.what());
  }
  if (!root.is_object()) throw std::runtime_error(source + ": expected a JSON object");
  const Reader r(root, source);

  const std::string model_type = r.string("model_type", "");
  if (model_type != "deepseek_v3") {
    r.fail("model_type", "is \"" + model_type + "\", expected \"deepseek_v3\"");
  }
  ModelConfig c;
  const int64_t one = 1, zero = 0;
  c.vocab_size = r.integer("vocab_size", 1, std::numeric_limits<int32_t>::max());
  c.hidden_size = r.integer("hidden_size", 1, kBig);
  c.intermediate_size = r.integer("intermediate_size", 1, kBig);
  c.num_hidden_layers = r.integer("num_hidden_layers", 1, 100000);
  c.num_attention_heads = r.integer("num_attention_heads", 1, 100000);
  c.q_lora_rank = r.integer("q_lora_rank", 1, kBig);
  c.kv_lora_rank = r.integer("kv_lora_rank", 1, kBig);
  c.qk_nope_head_dim = r.integer("qk_nope_head_dim", 1, kBig);
  c.qk_rope_head_dim = r.integer("qk_rope_head_dim", 2, kBig);
  if (c.qk_rope_head_dim % 2 != 0) r.fail("qk_rope_head_dim", "must be even");
  c.v_head_dim = r.integer("v_head_dim", 1, kBig);
  c.n_routed_experts = r.integer("n_routed_experts", 0, 1 << 20, &zero);
  c.first_k_dense_replace = r.integer("first_k_dense_replace", 0, c.num_hidden_layers, &zero);
  c.moe_layer_freq = r.integer("moe_layer_freq", 1, 100000, &one);
  if (c.n_routed_experts > 0) {
    c.moe_intermediate_size = r.integer("moe_intermediate_size", 1, kBig);
    c.n_shared_experts = r.integer("n_shared_experts", 0, 1024, &zero);
    c.num_experts_per_tok = r.integer("num_experts_per_tok", 1, c.n_routed_experts);
    c.n_group = r.integer("n_group", 1, c.n_routed_experts, &one);
    if (c.n_routed_experts % c.n_group != 0) {
      r.fail("n_group", "= " + std::to_string(c.n_group) + " must divide n_routed_experts = " +
                            std::to_string(c.n_routed_experts));
    }
    c.topk_group = r.integer("topk_group", 1, c.n_group, &one);
    const double scale = 1.0;
    c.routed_scaling_factor =
        r.number(root, "routed_scaling_factor", "routed_scaling_factor", 0.0, &scale);
    c.norm_topk_prob = r.boolean("norm_topk_prob", false);
    const std::string scoring = r.string("scoring_func", "sigmoid");
    if (scoring != "sigmoid" && scoring != "softmax") {
      r.fail("scoring_func", "is \"" + scoring + "\", expected \"sigmoid\" or \"softmax\"");
    }
    c.sigmoid_scores = scoring == "sigmoid";
    const std::string method = r.string("topk_method", "noaux_tc");
    if (method == "greedy") {
      c.n_group = c.topk_group = 1;  // no group limit
    } else if (method != "noaux_tc" && method != "group_limited_greedy") {
      r.fail(
          "topk_method",
          "is \"" + method + "\", expected \"noaux_tc\", \"group_limited_greedy\" or \"greedy\"");
    }
    c.score_bias = method == "noaux_tc";
    if (c.num_experts_per_tok > c.topk_group * (c.n_routed_experts / c.n_group)) {
      r.fail("num_experts_per_tok", "exceeds the experts of topk_group groups");
    }
  }
  const std::string act = r.string("hidden_act", "silu");
  if (act != "silu") r.fail("hidden_act", "is \"" + act + "\", expected \"silu\"");
  if (r.boolean("attention_bias", false)) r.fail("attention_bias", "must be false");
  const double eps = 1e-6, theta = 10000.0;
  c.rms_norm_eps = r.number(root, "rms_norm_eps", "rms_norm_eps", 0.0, &eps);
  c.rope_theta = r.number(root, "rope_theta", "rope_theta", 1.0, &theta);
  if (c.rope_theta <= 1.0) r.fail("rope_theta", "must be > 1");
  c.max_position_embeddings = r.integer("max_position_embeddings", 1, kBig);
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
  parse_rope(r, c);
  parse_quantization(r, c);
  return c;
}

ModelConfig load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot be read (a checkpoint needs config.json)");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path);
}

}  // namespace deepseek
