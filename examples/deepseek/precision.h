// precision.h - which dtypes the runner uses where, for each --dtype.
#ifndef DSK_EXAMPLES_DEEPSEEK_PRECISION_H_
#define DSK_EXAMPLES_DEEPSEEK_PRECISION_H_

#include <cstdint>
#include <string>

namespace deepseek {

struct Precision {
  std::string name;  // "f32", "bf16" or "fp8"
  int32_t weights;   // float weights (embedding, norms, router, lm_head, non-fp8 linears)
  int32_t act;       // activations and the residual stream
  int32_t attn;      // MLA attention operands and the latent cache
  bool fp8 = false;  // linear weights as fp8 e4m3fn with 128 x 128 block scales
  uint32_t act_quant_flags = 0;  // DSK_QUANT_SCALE_POW2 for checkpoints with ue8m0 scales
};

// f32:  f32 weights and activations. dsk's MLA kernels take bf16 or f16 only, so attention runs
//       in f16 (11-bit mantissa, the closer of the two to f32) with f32 accumulation.
// bf16: bf16 everywhere (Hugging Face's torch_dtype=bfloat16).
// fp8:  as bf16, with every linear projection of the layers in fp8 (DeepSeek-V3's published
//       format: embedding, lm_head, norms and the router stay bf16).
// Throws std::runtime_error for another name.
Precision make_precision(const std::string& name);

}  // namespace deepseek

#endif  // DSK_EXAMPLES_DEEPSEEK_PRECISION_H_
