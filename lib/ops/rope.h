// rope.h - libdsk side of the RoPE functions: the YaRN frequency table (computed here, on the
// host, for every backend) and dsk_rope_apply's validation and dispatch.
#ifndef DSK_LIB_OPS_ROPE_H_
#define DSK_LIB_OPS_ROPE_H_

#include <vector>

#include "core/context.h"
#include "dsk/dsk_dlpack.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace ops {

// Throws DSK_ERR_INVALID_ARGUMENT naming the field ("config->dim", ...) unless `config` is usable.
void check_rope_config(const dsk_rope_config& config);

// The dim/2 rotation frequencies of DeepSeek-V3's precompute_freqs_cis (YaRN blend included), with
// its f32 steps; config must be valid.
std::vector<float> rope_frequencies(const dsk_rope_config& config);

// The factor cos/sin are multiplied by: m(mscale) / m(mscale_all_dim), rounded to f32.
float rope_attention_scale(const dsk_rope_config& config);

// Fills cos and sin [P, dim/2] f32 (any device). config must be valid (check_rope_config).
void rope_table(dsk_context& ctx, const dsk_rope_config& config, const DLTensor* cos,
                const DLTensor* sin);

void rope_apply(const dsk_context& ctx, const DLTensor* x, const DLTensor* positions,
                const DLTensor* cos, const DLTensor* sin, const DLTensor* y, int32_t layout);

}  // namespace ops
}  // namespace dsk

#endif  // DSK_LIB_OPS_ROPE_H_
