// FP8: the tiny model's linear weights block-quantized by dsk_quant_fp8_weight (128 x 128, e4m3)
// against the bf16 run of the same bf16 checkpoint, teacher-forced on the bf16 tokens.
#include <doctest/doctest.h>

#include <algorithm>

#include "golden.h"
#include "test_util.h"

using namespace deepseek;
using deepseek_test::by_step;
using deepseek_test::run_tiny;
using deepseek_test::TinyCheckpoint;
using deepseek_test::two_prompts;

TEST_CASE("fp8: quantized linear weights stay close to the bf16 run") {
  TinyCheckpoint tiny(true);
  const GenerateResult bf16 = tiny.run("bf16", two_prompts(), 8);
  const auto forced = by_step(bf16.tokens);
  const GenerateResult fp8 = tiny.run("fp8", two_prompts(), 8, &forced);
  const LogitDiff d = compare_logits(fp8.logits, bf16.logits);
  int64_t total = 0;
  const int64_t same = matching_tokens(fp8.tokens, forced, &total);
  MESSAGE("fp8 vs bf16: max |err| " << d.max_abs_err << " (" << d.max_abs_err / d.max_abs_ref
                                    << " of max |logit|), rms |err| " << d.rms_err << " ("
                                    << d.rms_err / d.rms_ref << " of rms |logit|), tokens " << same
                                    << " / " << total);
  CHECK(fp8_close(d));
  CHECK(4 * same >= 3 * total);
}

TEST_CASE("fp8: an fp8 checkpoint with weight_scale_inv loads as it is and dequantizes") {
  // Quantize the tiny model once on the CPU through dsk, write it as an fp8 checkpoint in
  // DeepSeek-V3's layout (e4m3 weights + <name>_scale_inv), and load it both ways.
  dsk::Context cpu(DSK_BACKEND_CPU);
  const ModelConfig c = parse_config(tiny_config_json(), "tiny");
  auto entries = generate_checkpoint(c, kDefaultWeightSeed, true);
  std::vector<SafetensorsEntry> out;
  for (const TensorSpec& spec : checkpoint_tensors(c)) {
    auto it = std::find_if(entries.begin(), entries.end(),
                           [&](const SafetensorsEntry& e) { return e.name == spec.name; });
    REQUIRE(it != entries.end());
    if (spec.role != TensorRole::kLinear) {
      out.push_back(*it);
      continue;
    }
    const int64_t rows = spec.shape[0], cols = spec.shape[1];
    const int64_t br = (rows + 127) / 128, bc = (cols + 127) / 128;
    std::vector<int64_t> shape = spec.shape;
    DLTensor src{};
    src.data = it->bytes.data();
    src.device = {kDLCPU, 0};
    src.ndim = 2;
    src.dtype = dsk::dtype(DSK_DTYPE_BF16);
    src.shape = shape.data();
    dsk::Tensor q = dsk::Tensor::empty(cpu, {rows, cols}, dsk::dtype(DSK_DTYPE_FP8_E4M3FN));
    dsk::Tensor s = dsk::Tensor::empty(cpu, {br, bc}, dsk::dtype(DSK_DTYPE_F32));
    dsk::quant_fp8_weight(cpu, &src, q, s);
    SafetensorsEntry w{spec.name, "F8_E4M3", spec.shape, {}};
    w.bytes.assign(q.data<uint8_t>(), q.data<uint8_t>() + q.nbytes());
    SafetensorsEntry sc{spec.name + "_scale_inv", "F32", {br, bc}, {}};
    sc.bytes.assign(s.data<uint8_t>(), s.data<uint8_t>() + s.nbytes());
    out.push_back(std::move(w));
    out.push_back(std::move(sc));
  }
  TempDir fp8_dir;
  TinyCheckpoint bf16(true);
  std::string config = tiny_config_json();
  config.insert(config.rfind('}'),
                ",\n  \"quantization_config\": {\"activation_scheme\": \"dynamic\", \"fmt\": "
                "\"e4m3\", \"quant_method\": \"fp8\", \"weight_block_size\": [128, 128]}\n");
  write_checkpoint_dir(fp8_dir.path(), config, out);

  // fp8 checkpoint at --dtype fp8 == bf16 checkpoint quantized at load time (same quantizer).
  const GenerateResult a = run_tiny(cpu, fp8_dir.path(), "fp8", two_prompts(), 3);
  const auto forced = by_step(a.tokens);
  const GenerateResult b = bf16.run("fp8", two_prompts(), 3, &forced);
  const LogitDiff same = compare_logits(a.logits, b.logits);
  CHECK(same.max_abs_err == 0.0);
  // fp8 checkpoint at --dtype bf16: dequantized weights, so close to the fp8 run.
  const GenerateResult deq = run_tiny(cpu, fp8_dir.path(), "bf16", two_prompts(), 3, &forced);
  const LogitDiff d = compare_logits(deq.logits, a.logits);
  INFO("dequantized vs fp8: max |err| " << d.max_abs_err << " of " << d.max_abs_ref << ", rms "
                                        << d.rms_err << " of " << d.rms_ref);
  CHECK(fp8_close(d));
}
