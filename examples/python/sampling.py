"""dsk from Python: one decode step of seeded token sampling for a batch, then MTP verification."""
import numpy as np

import dsk

with dsk.Context("cpu") as ctx:                        # or "auto" / "cuda"
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (4, 1000)).astype(np.float32)      # [B, V] from the model's head
    # Per-request settings (scalars apply to every row): greedy, plain, top-k + top-p, min-p.
    step = dict(temperature=[0.0, 1.0, 0.7, 0.9], top_k=[0, 0, 50, 0], top_p=[1.0, 1.0, 0.9, 1.0],
                min_p=[0.0, 0.0, 0.0, 0.05], repetition_penalty=[1.0, 1.1, 1.1, 1.1],
                output_ids=[[1, 2], [], [7], [3, 3]],        # generated so far, per request
                seed=[11, 22, 33, 44], offset=5)             # offset: the decode step
    r = dsk.sample(ctx, logits, **step, logprobs=True, top_logprobs=3)
    ids = r.ids.numpy()
    print(ids, r.logprobs.numpy().round(3), r.top_ids.numpy()[:, 0])
    print(ids[0] == np.argmax(logits[0]))                          # temperature 0 is greedy
    print((dsk.sample(ctx, logits, **step).numpy() == ids).all())  # same seeds and step, same ids

    # Two MTP drafts per request against the target's logits at 3 positions.
    target = rng.normal(0, 2, (4, 3, 1000)).astype(np.float32)
    drafts = target[:, :2].argmax(-1).astype(np.int32)           # drafts the target agrees with
    drafts[1, 1] = -1                                            # request 1 drafted only one
    v = dsk.speculative_verify(ctx, drafts, target, mode="greedy")
    print(v.accepted.numpy(), v.out_ids.numpy())
    print((v.accepted.numpy() == [2, 1, 2, 2]).all())
    # Sampled verification takes probabilities: the target's processed distribution.
    probs = dsk.sampling_probs(ctx, target.reshape(12, 1000), temperature=0.8)
    v = dsk.speculative_verify(ctx, drafts, probs.numpy().reshape(4, 3, 1000), seed=7, offset=6)
    print(v.accepted.numpy(), v.out_ids.numpy())
