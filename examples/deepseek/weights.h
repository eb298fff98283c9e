// weights.h - the model's weights on the compute device, loaded by Hugging Face name from a
// safetensors checkpoint (one file, a directory or a sharded index) through dsk_safetensors.
#ifndef DSK_EXAMPLES_DEEPSEEK_WEIGHTS_H_
#define DSK_EXAMPLES_DEEPSEEK_WEIGHTS_H_

#include <dsk/dsk.hpp>
#include <functional>
#include <string>
#include <vector>

#include "config.h"
#include "precision.h"

namespace deepseek {

// The tensor's DLTensor, or nullptr for an empty tensor (an absent optional operand).
inline const DLTensor* or_null(const dsk::Tensor& t) {
  return t.get() != nullptr ? &t.dl() : nullptr;
}

// A projection y = x @ w^T: w [out, in] in a float dtype, or fp8 e4m3fn with `scale`
// [ceil(out / 128), ceil(in / 128)] f32 (DeepSeek-V3's weight_scale_inv).
struct Linear {
  dsk::Tensor w;
  dsk::Tensor scale;  // empty for float weights
  bool fp8() const { return scale.get() != nullptr; }
  const DLTensor* scale_or_null() const { return or_null(scale); }
};

struct AttentionWeights {
  Linear q_a, q_b, kv_a, kv_b, o;
  dsk::Tensor q_a_norm, kv_a_norm;
};

struct DenseMlpWeights {
  Linear gate, up, down;
};

// Routed experts stacked for dsk_moe_*: w1 (gate), w3 (up) [E, I, D], w2 (down) [E, D, I], with
// [E, ceil(rows / 128), ceil(cols / 128)] scales when fp8.
struct MoeWeights {
  dsk::Tensor router;  // [E, D], the activation dtype
  dsk::Tensor bias;    // [E] f32, empty without noaux_tc
  dsk::Tensor w1, w3, w2, w1_scale, w3_scale, w2_scale;
  bool has_shared = false;
  Linear shared_gate, shared_up, shared_down;
};

struct LayerWeights {
  dsk::Tensor input_norm, post_attention_norm;
  AttentionWeights attn;
  bool moe = false;
  DenseMlpWeights mlp;  // when !moe
  MoeWeights experts;   // when moe
};

struct ModelWeights {
  dsk::Tensor embed;  // [V, D]
  std::vector<LayerWeights> layers;
  dsk::Tensor final_norm;
  Linear lm_head;            // always a float dtype
  int64_t bytes = 0;         // all weights
  int64_t mapped_bytes = 0;  // of which used in place from the mapped checkpoint (CPU)
};

// Called after each tensor with (tensors done, tensors in total).
using LoadProgress = std::function<void(size_t, size_t)>;

// Loads every tensor of checkpoint_tensors(config) from `checkpoint` (a directory, an index json
// or a .safetensors file) onto ctx's device, converted as `precision` says: float tensors of any
// float dtype are converted; fp8 tensors need their `<name>_scale_inv`; fp8 precision quantizes
// float linear weights with dsk_quant_fp8_weight (128 x 128 blocks) and keeps fp8 ones as they are;
// float precisions dequantize fp8 ones. Throws std::runtime_error naming the tensor and its
// expected shape when a tensor is missing, has another shape or an unusable dtype, and the
// dsk_safetensors message for an unreadable or malformed file.
ModelWeights load_weights(dsk::Context& ctx, const std::string& checkpoint,
                          const ModelConfig& config, const Precision& precision,
                          const LoadProgress& progress = nullptr);

}  // namespace deepseek

#endif  // DSK_EXAMPLES_DEEPSEEK_WEIGHTS_H_
