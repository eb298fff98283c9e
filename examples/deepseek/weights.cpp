// weights.cpp - loading and converting the checkpoint's tensors (see weights.h).
#include "weights.h"

#include <dsk/dsk.h>

#include <map>
#include <memory>
#include <stdexcept>

#include "checkpoint_spec.h"

namespace deepseek {
namespace {

int64_t blocks(int64_t n) { return (n + DSK_FP8_BLOCK - 1) / DSK_FP8_BLOCK; }

std::string error_text(const std::string& what) { return what + ": " + dsk_last_error_message(); }

// The open checkpoint: borrowed, validated views of its tensors.
class Checkpoint {
 public:
  explicit Checkpoint(const std::string& path) : path_(path) {
    if (dsk_safetensors_open(path.c_str(), &st_) != DSK_OK) {
      throw std::runtime_error(error_text("cannot open checkpoint " + path));
    }
  }
  Checkpoint(const Checkpoint&) = delete;
  Checkpoint& operator=(const Checkpoint&) = delete;
  ~Checkpoint() { dsk_safetensors_close(st_); }

  const dsk_safetensors* get() const { return st_; }

  // The view of `name`, which must have `shape`; `dims` explains the shape in messages.
  DLTensor view(const std::string& name, const std::vector<int64_t>& shape,
                const std::string& dims) const {
    DLTensor t{};
    const dsk_status s = dsk_safetensors_tensor(st_, name.c_str(), &t);
    const std::string expected = "expected shape " + shape_text(shape) + " = " + dims;
    if (s == DSK_ERR_NOT_FOUND) {
      throw std::runtime_error("checkpoint " + path_ + " has no tensor \"" + name + "\" (" +
                               expected + ")");
    }
    if (s != DSK_OK) throw std::runtime_error(error_text("tensor \"" + name + "\""));
    const std::vector<int64_t> got(t.shape, t.shape + t.ndim);
    if (got != shape) {
      throw std::runtime_error("tensor \"" + name + "\" in " + file_of(name) + " has shape " +
                               shape_text(got) + ", " + expected);
    }
    return t;
  }

  std::string file_of(const std::string& name) const {
    dsk_safetensors_info info;
    dsk_safetensors_info_init(&info);
    if (dsk_safetensors_tensor_info(st_, name.c_str(), &info) != DSK_OK) return path_;
    return info.file;
  }

 private:
  std::string path_;
  dsk_safetensors* st_ = nullptr;
};

int32_t dtype_id(const DLTensor& t) {
  int32_t id = 0;
  return dsk_dtype_to_id(t.dtype, &id) == DSK_OK ? id : 0;
}

bool is_float(int32_t id) {
  return id == DSK_DTYPE_F32 || id == DSK_DTYPE_F16 || id == DSK_DTYPE_BF16;
}

class Loader {
 public:
  Loader(dsk::Context& ctx, const std::string& path, const ModelConfig& config,
         const Precision& precision, const LoadProgress& progress)
      : ctx_(ctx), ck_(path), precision_(precision), progress_(progress) {
    for (TensorSpec& s : checkpoint_tensors(config)) specs_.emplace(s.name, std::move(s));
    cpu_ = ctx.backend() == DSK_BACKEND_CPU;
  }

  int64_t bytes() const { return bytes_; }
  int64_t mapped_bytes() const { return mapped_; }

  // A non-linear float tensor (norm, embedding, router, bias) in dtype `id`.
  dsk::Tensor float_tensor(const std::string& name, int32_t id) {
    const TensorSpec& spec = find(name);
    const DLTensor v = ck_.view(name, spec.shape, spec.dims);
    if (!is_float(dtype_id(v))) bad_dtype(name, v, "F32, F16 or BF16");
    dsk::Tensor t = borrow_or_clone(name, v, id);
    done(t);
    return t;
  }

  // A projection: fp8 with scales when the precision says so, else the float weight dtype.
  Linear linear(const std::string& name, bool allow_fp8 = true) {
    const TensorSpec& spec = find(name);
    const bool fp8 = precision_.fp8 && allow_fp8;
    const DLTensor v = ck_.view(name, spec.shape, spec.dims);
    Linear l;
    if (fp8 && dtype_id(v) == DSK_DTYPE_FP8_E4M3FN) {
      // Already in the target format: borrow (CPU) or copy as it is.
      l.w = borrow_or_clone(name, v, DSK_DTYPE_FP8_E4M3FN);
      l.scale = borrow_or_clone(name + "_scale_inv", scale_view(name, spec), DSK_DTYPE_F32);
    } else if (!fp8 && dtype_id(v) == precision_.weights) {
      l.w = borrow_or_clone(name, v, precision_.weights);
    } else {
      const int64_t rows = spec.shape[0], cols = spec.shape[1];
      l.w = dsk::Tensor::empty(ctx_, {rows, cols},
                               dsk::dtype(fp8 ? DSK_DTYPE_FP8_E4M3FN : precision_.weights));
      if (fp8) {
        l.scale = dsk::Tensor::empty(ctx_, {blocks(rows), blocks(cols)}, dsk::dtype(DSK_DTYPE_F32));
      }
      load_into(name, spec, v, l.w, l.scale);
    }
    if (l.fp8()) bytes_ += l.scale.nbytes();
    done(l.w);
    return l;
  }

  // Routed experts' `proj` weights of layer `layer` stacked into [E, rows, cols] (+ scales).
  void experts(int64_t layer, int64_t num, const std::string& proj, dsk::Tensor& w,
               dsk::Tensor& scale) {
    const TensorSpec& first = find(expert_name(layer, 0, proj));
    const int64_t rows = first.shape[0], cols = first.shape[1];
    const bool fp8 = precision_.fp8;
    w = dsk::Tensor::empty(ctx_, {num, rows, cols},
                           dsk::dtype(fp8 ? DSK_DTYPE_FP8_E4M3FN : precision_.weights));
    if (fp8) {
      scale =
          dsk::Tensor::empty(ctx_, {num, blocks(rows), blocks(cols)}, dsk::dtype(DSK_DTYPE_F32));
    }
    for (int64_t e = 0; e < num; ++e) {
      const std::string name = expert_name(layer, e, proj);
      const TensorSpec& spec = find(name);
      const DLTensor v = ck_.view(name, spec.shape, spec.dims);
      dsk::Tensor ws = w.view({rows, cols}, {}, e * rows * cols);
      dsk::Tensor ss;
      if (fp8) ss = scale.view({blocks(rows), blocks(cols)}, {}, e * blocks(rows) * blocks(cols));
      load_into(name, spec, v, ws, ss);
      ++count_;
      report();
    }
    bytes_ += w.nbytes() + (fp8 ? scale.nbytes() : 0);
  }

 private:
  const TensorSpec& find(const std::string& name) const {
    auto it = specs_.find(name);
    if (it == specs_.end()) throw std::logic_error("no spec for " + name);
    return it->second;
  }

  [[noreturn]] void bad_dtype(const std::string& name, const DLTensor& v,
                              const std::string& expected) const {
    dsk_safetensors_info info;
    dsk_safetensors_info_init(&info);
    dsk_safetensors_tensor_info(ck_.get(), name.c_str(), &info);
    throw std::runtime_error("tensor \"" + name + "\" in " + ck_.file_of(name) + " has dtype " +
                             (info.dtype != nullptr ? info.dtype : dsk_dtype_name(v.dtype)) +
                             ", expected " + expected);
  }

  DLTensor scale_view(const std::string& name, const TensorSpec& spec) const {
    const std::string scale_name = name + "_scale_inv";
    const DLTensor s = ck_.view(scale_name, {blocks(spec.shape[0]), blocks(spec.shape[1])},
                                "the 128 x 128 block scales of " + spec.dims);
    if (dtype_id(s) != DSK_DTYPE_F32) bad_dtype(scale_name, s, "F32");
    return s;
  }

  // Converts view `v` of `name` into w (and scale, for an fp8 w), both already allocated.
  void load_into(const std::string& name, const TensorSpec& spec, const DLTensor& v,
                 const dsk::Tensor& w, const dsk::Tensor& scale) {
    const int32_t src = dtype_id(v);
    const bool to_fp8 = scale.get() != nullptr;
    try {
      if (src == DSK_DTYPE_FP8_E4M3FN) {
        const DLTensor s = scale_view(name, spec);
        if (to_fp8) {
          dsk::copy(ctx_, &v, w);
          dsk::copy(ctx_, &s, scale);
        } else {
          // A float precision from an fp8 checkpoint: w = q * scale per 128 x 128 block.
          dsk::Tensor q = dsk::Tensor::clone(ctx_, v, v.dtype);
          dsk::Tensor sc = dsk::Tensor::clone(ctx_, s, s.dtype);
          dsk::dequant_fp8_weight(ctx_, q, sc, w);
        }
      } else if (is_float(src)) {
        if (to_fp8) {
          // DeepSeek-V3's block quantization of a bf16/f32 weight (scale = amax / 448 per block).
          dsk::Tensor x = dsk::Tensor::clone(ctx_, v, v.dtype);
          dsk::quant_fp8_weight(ctx_, x, w, scale, 0);
        } else {
          dsk::copy(ctx_, &v, w);
        }
      } else {
        bad_dtype(name, v, "F32, F16, BF16, or F8_E4M3 with " + name + "_scale_inv");
      }
    } catch (const dsk::Error& e) {
      throw std::runtime_error("loading \"" + name + "\": " + e.what());
    }
  }

  // On the CPU a tensor already in the wanted dtype is used in place (zero-copy: the mapping
  // stays alive as long as the tensor); the format does not align data, so only element-aligned
  // views qualify. Everything else is copied (and converted) to the device.
  dsk::Tensor borrow_or_clone(const std::string& name, const DLTensor& v, int32_t id) {
    const size_t elem = dsk_dtype_size(v.dtype);
    if (cpu_ && dtype_id(v) == id && elem > 0 && reinterpret_cast<uintptr_t>(v.data) % elem == 0) {
      DLManagedTensorVersioned* m = nullptr;
      if (dsk_safetensors_to_dlpack(ck_.get(), name.c_str(), &m) == DSK_OK) {
        dsk_tensor* t = nullptr;
        if (dsk_tensor_from_dlpack_versioned(m, &t) == DSK_OK) {
          mapped_ += dsk_tensor_nbytes(t);
          return dsk::Tensor(t);
        }
        m->deleter(m);  // on failure the export is still ours
      }
    }
    try {
      return dsk::Tensor::clone(ctx_, v, dsk::dtype(id));
    } catch (const dsk::Error& e) {
      throw std::runtime_error("loading \"" + name + "\": " + e.what());
    }
  }

  void done(const dsk::Tensor& t) {
    bytes_ += t.nbytes();
    ++count_;
    report();
  }
  void report() {
    if (progress_) progress_(count_, specs_.size());
  }

  dsk::Context& ctx_;
  Checkpoint ck_;
  const Precision& precision_;
  LoadProgress progress_;
  std::map<std::string, TensorSpec> specs_;
  bool cpu_ = false;
  int64_t bytes_ = 0;
  int64_t mapped_ = 0;
  size_t count_ = 0;
};

AttentionWeights load_attention(Loader& ld, int64_t i, int32_t norm_dtype) {
  auto n = [i](const char* suffix) { return layer_name(i, std::string("self_attn.") + suffix); };
  AttentionWeights a;
  a.q_a = ld.linear(n("q_a_proj.weight"));
  a.q_a_norm = ld.float_tensor(n("q_a_layernorm.weight"), norm_dtype);
  a.q_b = ld.linear(n("q_b_proj.weight"));
  a.kv_a = ld.linear(n("kv_a_proj_with_mqa.weight"));
  a.kv_a_norm = ld.float_tensor(n("kv_a_layernorm.weight"), norm_dtype);
  a.kv_b = ld.linear(n("kv_b_proj.weight"));
  a.o = ld.linear(n("o_proj.weight"));
  return a;
}

MoeWeights load_moe(Loader& ld, const ModelConfig& c, const Precision& p, int64_t i) {
  MoeWeights m;
  // The router's GEMM takes x's dtype (dsk_moe_gate_router); DeepSeek keeps it unquantized.
  m.router = ld.float_tensor(layer_name(i, "mlp.gate.weight"), p.act);
  if (c.score_bias) {
    m.bias = ld.float_tensor(layer_name(i, "mlp.gate.e_score_correction_bias"), DSK_DTYPE_F32);
  }
  ld.experts(i, c.n_routed_experts, "gate_proj", m.w1, m.w1_scale);
  ld.experts(i, c.n_routed_experts, "up_proj", m.w3, m.w3_scale);
  ld.experts(i, c.n_routed_experts, "down_proj", m.w2, m.w2_scale);
  m.has_shared = c.n_shared_experts > 0;
  if (m.has_shared) {
    m.shared_gate = ld.linear(layer_name(i, "mlp.shared_experts.gate_proj.weight"));
    m.shared_up = ld.linear(layer_name(i, "mlp.shared_experts.up_proj.weight"));
    m.shared_down = ld.linear(layer_name(i, "mlp.shared_experts.down_proj.weight"));
  }
  return m;
}

}  // namespace

ModelWeights load_weights(dsk::Context& ctx, const std::string& checkpoint,
                          const ModelConfig& config, const Precision& precision,
                          const LoadProgress& progress) {
  Loader ld(ctx, checkpoint, config, precision, progress);
  ModelWeights w;
  const int32_t fdt = precision.weights;
  w.embed = ld.float_tensor("model.embed_tokens.weight", fdt);
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    LayerWeights l;
    l.input_norm = ld.float_tensor(layer_name(i, "input_layernorm.weight"), fdt);
    l.attn = load_attention(ld, i, fdt);
    l.post_attention_norm = ld.float_tensor(layer_name(i, "post_attention_layernorm.weight"), fdt);
    l.moe = config.is_moe_layer(i);
    if (l.moe) {
      l.experts = load_moe(ld, config, precision, i);
    } else {
      l.mlp.gate = ld.linear(layer_name(i, "mlp.gate_proj.weight"));
      l.mlp.up = ld.linear(layer_name(i, "mlp.up_proj.weight"));
      l.mlp.down = ld.linear(layer_name(i, "mlp.down_proj.weight"));
    }
    w.layers.push_back(std::move(l));
  }
  w.final_norm = ld.float_tensor("model.norm.weight", fdt);
  if (config.tie_word_embeddings) {
    w.lm_head.w = w.embed;
  } else {
    // DeepSeek's fp8 checkpoints keep lm_head in bf16; so does the fp8 precision.
    w.lm_head = ld.linear("lm_head.weight", /*allow_fp8=*/false);
  }
  w.bytes = ld.bytes();
  w.mapped_bytes = ld.mapped_bytes();
  return w;
}

}  // namespace deepseek
