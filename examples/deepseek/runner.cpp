// runner.cpp - model loading and the golden check (see runner.h).
#include "runner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include "config.h"
#include "generate.h"
#include "tiny_model.h"

namespace deepseek {

std::string config_path_for(const std::string& checkpoint) {
  namespace fs = std::filesystem;
  const fs::path p(checkpoint);
  if (!fs::exists(p)) throw std::runtime_error("checkpoint " + checkpoint + " does not exist");
  return ((fs::is_directory(p) ? p : p.parent_path()) / "config.json").string();
}

std::unique_ptr<Model> load_model(dsk::Context& ctx, const std::string& checkpoint,
                                  const Precision& precision, OpTimer& timer, int64_t max_positions,
                                  MoeMode moe, const LoadProgress& progress) {
  ModelConfig config = load_config(config_path_for(checkpoint));
  Precision p = precision;
  if (config.ue8m0_scales) p.act_quant_flags = DSK_QUANT_SCALE_POW2;  // V3.1's activation scales
  ModelWeights weights = load_weights(ctx, checkpoint, config, p, progress);
  return std::make_unique<Model>(ctx, config, p, std::move(weights), timer, max_positions, moe);
}

namespace {

std::string format(const char* fmt, double a, double b, double c) {
  char buf[256];
  std::snprintf(buf, sizeof buf, fmt, a, b, c);
  return buf;
}

// The fixture's own bf16 noise: max |float32 - bfloat16| over the leading steps in which both
// Hugging Face runs fed the same tokens (after a divergence the two are different sequences).
double fixture_bf16_spread(const GoldenFixture& g) {
  const GoldenRun& f = g.runs.at("float32");
  const GoldenRun& h = g.runs.at("bfloat16");
  double spread = 0.0;
  for (size_t s = 0; s < f.logits.size(); ++s) {
    if (s > 0 && f.tokens[s - 1] != h.tokens[s - 1]) break;
    for (size_t b = 0; b < f.logits[s].size(); ++b) {
      for (size_t v = 0; v < f.logits[s][b].size(); ++v) {
        spread =
            std::max(spread, std::fabs(static_cast<double>(f.logits[s][b][v]) - h.logits[s][b][v]));
      }
    }
  }
  return spread;
}

}  // namespace

GoldenReport run_golden(dsk::Context& ctx, const GoldenFixture& fixture, const std::string& dtype,
                        MoeMode moe, OpTimer& timer) {
  GoldenReport rep;
  rep.reference = dtype == "f32" ? "float32" : "bfloat16";
  auto run_it = fixture.runs.find(rep.reference);
  if (run_it == fixture.runs.end()) {
    throw std::runtime_error("the golden fixture has no \"" + rep.reference + "\" run");
  }
  const GoldenRun& ref = run_it->second;

  // The fixture's config drives both the generator and the model, exactly as in the script.
  const ModelConfig config = parse_config(fixture.config_json, "golden fixture config");
  TempDir dir("dsk-golden-");
  write_checkpoint_dir(dir.path(), fixture.config_json,
                       generate_checkpoint(config, fixture.seed, /*bf16=*/dtype != "f32"));

  GenerateOptions opt;
  opt.tokens = fixture.decode_steps + 1;
  opt.forced = &ref.tokens;
  opt.keep_logits = true;
  int64_t longest = 0;
  for (const auto& r : fixture.requests) longest = std::max<int64_t>(longest, r.size());
  std::unique_ptr<Model> model =
      load_model(ctx, dir.path(), make_precision(dtype), timer, longest + opt.tokens, moe);
  const GenerateResult res = generate(*model, timer, fixture.requests, opt);

  rep.diff = compare_logits(res.logits, ref.logits);
  rep.tokens_same = matching_tokens(res.tokens, ref.tokens, &rep.tokens_total);
  std::string rule;
  if (dtype == "f32") {
    rep.tolerance = kF32RelTol * rep.diff.max_abs_ref;
    rep.tokens_needed = rep.tokens_total;
    rule = "1e-3 * max|logit|";
  } else if (dtype == "bf16") {
    const double spread = fixture_bf16_spread(fixture);
    rep.tolerance = 2.0 * spread;
    rep.tokens_needed = rep.tokens_total;
    rule = format("2 * fixture's max|float32 - bfloat16| = 2 * %.4g", spread, 0, 0);
  } else {
    rep.tolerance = kFp8MaxTol * rep.diff.max_abs_ref;
    rep.tokens_needed = (3 * rep.tokens_total + 3) / 4;
    rule = "0.3 * max|logit|, and rms |err| <= 0.15 * rms |logit|";
  }
  const bool logits_ok = rep.diff.finite && rep.diff.max_abs_err <= rep.tolerance &&
                         (dtype != "fp8" || fp8_close(rep.diff));
  const bool tokens_ok = rep.tokens_same >= rep.tokens_needed;
  rep.pass = logits_ok && tokens_ok;
  rep.text = "golden (" + fixture.versions + "): dsk " + dtype + " vs Hugging Face " +
             rep.reference + ", " + std::to_string(fixture.requests.size()) + " requests, " +
             std::to_string(ref.logits.size()) + " steps\n";
  rep.text +=
      format("  logits: max |err| = %.4g (%.3g of max |logit| = %.4g)", rep.diff.max_abs_err,
             rep.diff.max_abs_err / std::max(rep.diff.max_abs_ref, 1e-30), rep.diff.max_abs_ref);
  rep.text += format(", tolerance %.4g", rep.tolerance, 0, 0) + " (" + rule + ")";
  rep.text += logits_ok ? ": ok\n" : ": FAIL\n";
  rep.text += format("  rms |err| = %.4g (%.3g of rms |logit| = %.4g)\n", rep.diff.rms_err,
                     rep.diff.rms_err / std::max(rep.diff.rms_ref, 1e-30), rep.diff.rms_ref);
  rep.text += "  greedy tokens: " + std::to_string(rep.tokens_same) + " / " +
              std::to_string(rep.tokens_total) + " equal (need " +
              std::to_string(rep.tokens_needed) + ")" + (tokens_ok ? ": ok\n" : ": FAIL\n");
  return rep;
}

}  // namespace deepseek
