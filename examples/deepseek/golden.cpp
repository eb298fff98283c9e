// golden.cpp - fixture reading and logit comparison (see golden.h).
#include "golden.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace deepseek {

GoldenFixture load_golden(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot be read (the golden fixture)");
  std::ostringstream text;
  text << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": not valid JSON: " + e.what());
  }
  auto fail = [&path](const std::string& what) -> std::runtime_error {
    return std::runtime_error(path + ": " + what);
  };
  try {
    if (j.value("format", "") != "dsk-golden-1") throw fail("format is not \"dsk-golden-1\"");
    if (j.value("generator", "") != "dsk-tiny-v1") throw fail("generator is not \"dsk-tiny-v1\"");
    GoldenFixture g;
    g.config_json = j.at("config").dump();
    g.seed = j.at("seed").get<uint64_t>();
    g.requests = j.at("requests").get<std::vector<std::vector<int32_t>>>();
    g.decode_steps = j.at("decode_steps").get<int64_t>();
    g.versions = "transformers " + j.value("transformers_version", std::string("?")) + ", torch " +
                 j.value("torch_version", std::string("?"));
    const int64_t vocab = j.at("config").at("vocab_size").get<int64_t>();
    const size_t steps = static_cast<size_t>(g.decode_steps + 1), batch = g.requests.size();
    if (batch == 0 || g.decode_steps < 0) throw fail("no requests or negative decode_steps");
    for (const auto& [name, run] : j.at("runs").items()) {
      GoldenRun r;
      r.logits = run.at("logits").get<std::vector<std::vector<std::vector<float>>>>();
      r.tokens = run.at("tokens").get<std::vector<std::vector<int32_t>>>();
      bool ok = r.logits.size() == steps && r.tokens.size() == steps;
      for (size_t s = 0; ok && s < steps; ++s) {
        ok = r.logits[s].size() == batch && r.tokens[s].size() == batch;
        for (size_t b = 0; ok && b < batch; ++b) {
          ok = static_cast<int64_t>(r.logits[s][b].size()) == vocab;
        }
      }
      if (!ok) {
        throw fail("runs." + name + " must hold decode_steps + 1 = " + std::to_string(steps) +
                   " steps of " + std::to_string(batch) + " requests x " + std::to_string(vocab) +
                   " logits and tokens");
      }
      g.runs.emplace(name, std::move(r));
    }
    return g;
  } catch (const nlohmann::json::exception& e) {
    throw fail(std::string("unexpected content: ") + e.what());
  }
}

LogitDiff compare_logits(const std::vector<std::vector<std::vector<float>>>& a,
                         const std::vector<std::vector<std::vector<float>>>& b) {
  LogitDiff d;
  double sum_err = 0.0, sum_ref = 0.0;
  int64_t n = 0;
  const size_t steps = std::min(a.size(), b.size());
  for (size_t s = 0; s < steps; ++s) {
    for (size_t r = 0; r < std::min(a[s].size(), b[s].size()); ++r) {
      const auto& x = a[s][r];
      const auto& y = b[s][r];
      for (size_t v = 0; v < std::min(x.size(), y.size()); ++v) {
        if (!std::isfinite(x[v])) d.finite = false;
        const double err = std::fabs(static_cast<double>(x[v]) - y[v]);
        d.max_abs_ref = std::max(d.max_abs_ref, std::fabs(static_cast<double>(y[v])));
        sum_err += err * err;
        sum_ref += static_cast<double>(y[v]) * y[v];
        ++n;
        if (!(err <= d.max_abs_err)) {  // NaN counts as the worst
          d.max_abs_err = std::isnan(err) ? INFINITY : err;
          d.worst_step = static_cast<int64_t>(s);
          d.worst_request = static_cast<int64_t>(r);
        }
      }
    }
  }
  if (n > 0) {
    d.rms_err = std::sqrt(sum_err / static_cast<double>(n));
    d.rms_ref = std::sqrt(sum_ref / static_cast<double>(n));
  }
  return d;
}

int64_t matching_tokens(const std::vector<std::vector<int32_t>>& tokens,
                        const std::vector<std::vector<int32_t>>& ref, int64_t* total) {
  int64_t same = 0, n = 0;
  for (size_t s = 0; s < ref.size(); ++s) {
    for (size_t b = 0; b < ref[s].size() && b < tokens.size(); ++b) {
      ++n;
      if (s < tokens[b].size() && tokens[b][s] == ref[s][b]) ++same;
    }
  }
  if (total != nullptr) *total = n;
  return same;
}

}  // namespace deepseek
