// sampling.h - libdsk side of token sampling (dsk_sampling.h): checks of every argument, the
// normalized dsk_sampling_args / dsk_verify_args of the backend entries, and dispatch. Each
// function throws dsk::Error on invalid arguments or a backend failure.
#ifndef DSK_LIB_OPS_SAMPLING_H_
#define DSK_LIB_OPS_SAMPLING_H_

#include "core/context.h"
#include "dsk/dsk_dlpack.h"
#include "dsk/dsk_sampling.h"

namespace dsk {
namespace ops {

void sampling_params_init(dsk_sampling_params* params);
void sampling_outputs_init(dsk_sampling_outputs* outputs);
void verify_params_init(dsk_verify_params* params);

void sample(dsk_context& ctx, const dsk_sampling_params& params, const DLTensor* logits,
            const dsk_sampling_outputs& outputs);

// dsk_sampling_logits (probs == false) and dsk_sampling_probs (probs == true).
void sampling_transform(dsk_context& ctx, const dsk_sampling_params& params, const DLTensor* logits,
                        const DLTensor* out, const DLTensor* status, bool probs);

void speculative_verify(dsk_context& ctx, const dsk_verify_params& params,
                        const DLTensor* draft_ids, const DLTensor* draft_probs,
                        const DLTensor* target, const DLTensor* out_ids, const DLTensor* accepted,
                        const DLTensor* emitted);

}  // namespace ops
}  // namespace dsk

#endif  // DSK_LIB_OPS_SAMPLING_H_
