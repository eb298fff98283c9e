// CPU reference of speculative verification (dsk_speculative_verify): chain verification of
// draft tokens, every float step through lib/common/sampling_math.h.
#include <stdint.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/convert.h"
#include "common/sampling_math.h"
#include "core/backend_iface.h"
#include "core/layout.h"
#include "cpu/backend_guard.h"
#include "cpu/convert_run.h"
#include "cpu/index_io.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"
#include "dsk/dsk_sampling.h"

namespace dsk {
namespace cpu {
namespace {

// A [B, rows, V] probability tensor (or logits for the greedy target).
struct Probs {
  const char* data = nullptr;
  int64_t s0 = 0, s1 = 0, s2 = 0;  // bytes
  int32_t dtype = 0;
  explicit operator bool() const { return data != nullptr; }
  float at(int64_t b, int64_t i, int64_t j) const {
    return load_as_f32(dtype, data + b * s0 + i * s1 + j * s2);
  }
};

Probs probs_of(const DLTensor* t, const char* name) {
  Probs p;
  if (t == nullptr) return p;
  const Layout l = check_tensor(t, name, Access::kRead);
  const auto es = static_cast<int64_t>(l.elem_size);
  p.data = l.data;
  p.s0 = l.strides[0] * es;
  p.s1 = l.strides[1] * es;
  p.s2 = l.strides[2] * es;
  p.dtype = l.dtype_id;
  return p;
}

// Row (b, i) of t converted to f32 into out[0 .. vocab).
void load_row(const Probs& t, int64_t b, int64_t i, int64_t vocab, float* out) {
  convert_run(t.dtype, DSK_DTYPE_F32)(t.data + b * t.s0 + i * t.s1, t.s2,
                                      reinterpret_cast<char*>(out), 4, vocab);
}

// Argmax of a row: ties to the lower id, NaN never the max, 0 when all are NaN.
int32_t row_argmax(const float* row, int64_t vocab) {
  uint32_t best = 0;
  int64_t id = 0;
  bool any = false;
  for (int64_t j = 0; j < vocab; ++j) {
    const float v = row[j];
    if (v != v) continue;
    const uint32_t k = sample_key(v);
    if (!any || k > best) {
      best = k;
      id = j;
      any = true;
    }
  }
  return static_cast<int32_t>(id);
}

// A weight r below race_floor(best, g_max) cannot reach the race score `best` with noise at most
// g_max: its log is below best - g_max - 0.01 + (det_exp's 1 ulp, in log terms 1e-7, and the
// roundings of the subtractions, below 1e-5), det_log(r) errs by at most 2 ulp of |log r| <= 104
// (2e-5), so fl(det_log(r) + g) <= fl(det_log(r) + g_max) < best. (An argument past det_exp's
// range gives +inf: then every finite r is below the real bound too.) A skipped token could not
// have won or tied, so the race's result is the unpruned one.
float race_floor(float best, float g_max) {
  return det_exp((StrictF32{best} - StrictF32{g_max} - StrictF32{0.01f}).v);
}

// The largest Gumbel noise of a Philox word in each of the 32 buckets of its top 5 bits:
// sample_gumbel depends on word >> 9 and never decreases with it (checked over all 2^23 values in
// tests/core/test_sampling_math.cpp), so the bucket's last word bounds it.
struct NoiseBounds {
  float g[32];
  NoiseBounds() {
    for (uint32_t bkt = 0; bkt < 32; ++bkt) g[bkt] = sample_gumbel(((bkt + 1u) << 27) - 1u);
  }
};

const NoiseBounds& noise_bounds() {
  static const NoiseBounds bounds;
  return bounds;
}

}  // namespace

dsk_status speculative_verify(const dsk_exec* /*ex*/, const dsk_verify_args* a) noexcept {
  return guarded([&] {
    const Layout d = check_tensor(a->draft_ids, "draft_ids", Access::kRead);
    const Probs target = probs_of(a->target, "target");
    const Probs draft =
        a->mode == DSK_VERIFY_GREEDY ? Probs{} : probs_of(a->draft_probs, "draft_probs");
    const Layout tl = check_tensor(a->target, "target", Access::kRead);
    const Layout oi = check_tensor(a->out_ids, "out_ids", Access::kWrite);
    const Layout acc_l = check_tensor(a->accepted, "accepted", Access::kWrite);
    Layout em_l;
    const bool has_emitted = a->emitted != nullptr;
    if (has_emitted) em_l = check_tensor(a->emitted, "emitted", Access::kWrite);
    const int64_t rows = tl.shape[0];
    const int64_t vocab = tl.shape[2];
    const int64_t n = d.ndim >= 2 ? d.shape[1] : 0;
    const auto de = static_cast<int64_t>(d.elem_size);
    auto draft_at = [&](int64_t b, int64_t i) {
      return load_index(d.dtype_id, d.data + (b * d.strides[0] + i * d.strides[1]) * de);
    };
    for (int64_t b = 0; b < rows; ++b) {
      for (int64_t i = 0; i < n; ++i) {
        const int64_t t = draft_at(b, i);
        check_arg(t >= -1 && t < vocab, "draft_ids[{}, {}] = {}, expected [-1, {})", b, i, t,
                  vocab);
      }
    }
    Layout sl, ol;
    const bool has_seeds = a->seed != nullptr;
    const bool has_offsets = a->offset != nullptr;
    if (has_seeds) sl = check_tensor(a->seed, "params->seeds", Access::kRead);
    if (has_offsets) ol = check_tensor(a->offset, "params->offsets", Access::kRead);
    auto u64_at = [](const Layout& l, int64_t b) {
      uint64_t v;
      std::memcpy(&v, l.data + b * l.strides[0] * static_cast<int64_t>(l.elem_size), 8);
      return v;
    };
    const auto oie = static_cast<int64_t>(oi.elem_size);
    auto out_at = [&](int64_t b, int64_t i) {
      return oi.data + (b * oi.strides[0] + i * oi.strides[1]) * oie;
    };
    auto store = [](char* p, int32_t v) { std::memcpy(p, &v, 4); };

    parallel_for(
        rows, std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(vocab, 1)),
        [&](int64_t lo, int64_t hi) {
          // The target row and the residual weights of the position being sampled, in f32.
          std::vector<float> p_row(static_cast<size_t>(vocab));
          std::vector<float> r_row(static_cast<size_t>(vocab));
          for (int64_t b = lo; b < hi; ++b) {
            const uint64_t seed = has_seeds ? u64_at(sl, b) : a->seed_value;
            const uint64_t offset = has_offsets ? u64_at(ol, b) : a->offset_value;
            // A sample from weights w[0 .. vocab) (w_j > 0 counts) at offset + i: the largest
            // log(w_j) + g_j.
            // Tokens are skipped in two steps: below the floor for the largest noise of any word
            // (no Philox needed), then below the floor for the largest noise of their word's
            // bucket, so logs run only for the few tokens that can still win.
            const NoiseBounds& nb = noise_bounds();
            auto race = [&](int64_t i, const float* w, bool& found) {
              const uint64_t off = offset + static_cast<uint64_t>(i);
              float best = 0.0f;
              float floor = 0.0f;      // weights below it cannot win with any noise
              float bucket_floor[32];  // ... with the noise of a word of that bucket
              int64_t id = 0;
              int64_t ph_block = -1;
              Philox4 ph{};
              found = false;
              for (int64_t j = 0; j < vocab; ++j) {
                const float r = w[j];
                if (!(r > 0.0f) || r < floor) continue;
                if ((j >> 2) != ph_block) {
                  ph_block = j >> 2;
                  ph = sample_philox(seed, off, kSampleStreamGumbel,
                                     static_cast<uint32_t>(ph_block));
                }
                const uint32_t word = ph.v[j & 3];
                if (found && r < bucket_floor[word >> 27]) continue;
                const float s = verify_score(r, sample_gumbel(word));
                if (!found || s > best) {  // j ascending: ties keep the lower id
                  best = s;
                  id = j;
                  found = true;
                  floor = race_floor(best, kGumbelUpper);
                  for (int bkt = 0; bkt < 32; ++bkt)
                    bucket_floor[bkt] = race_floor(best, nb.g[bkt]);
                }
              }
              return static_cast<int32_t>(id);
            };
            int64_t acc = 0;
            int32_t emit = 0;
            for (int64_t i = 0; i <= n; ++i) {
              const int64_t t = i < n ? draft_at(b, i) : -1;
              if (a->mode == DSK_VERIFY_GREEDY) {
                load_row(target, b, i, vocab, p_row.data());
                const int32_t am = row_argmax(p_row.data(), vocab);
                if (t >= 0 && t == am) {
                  ++acc;
                  continue;
                }
                emit = am;
                break;
              }
              bool found = false;
              if (t < 0) {
                load_row(target, b, i, vocab, p_row.data());
                emit = race(i, p_row.data(), found);
                break;
              }
              const float pt = target.at(b, i, t);
              const float q = draft ? draft.at(b, i, t) : 1.0f;
              const float u = sample_accept_uniform(seed, offset, static_cast<uint32_t>(i));
              if (verify_accepts(u, q, pt)) {
                ++acc;
                continue;
              }
              load_row(target, b, i, vocab, p_row.data());
              if (draft) {
                load_row(draft, b, i, vocab, r_row.data());
                for (int64_t j = 0; j < vocab; ++j) r_row[j] = verify_residual(p_row[j], r_row[j]);
              } else {
                for (int64_t j = 0; j < vocab; ++j)
                  r_row[j] = verify_residual(p_row[j], j == t ? 1.0f : 0.0f);
              }
              emit = race(i, r_row.data(), found);
              if (!found) emit = race(i, p_row.data(), found);
              break;
            }
            for (int64_t i = 0; i <= n; ++i) {
              int32_t v = -1;
              if (i < acc) v = static_cast<int32_t>(draft_at(b, i));
              if (i == acc) v = emit;
              store(out_at(b, i), v);
            }
            store(acc_l.data + b * acc_l.strides[0] * static_cast<int64_t>(acc_l.elem_size),
                  static_cast<int32_t>(acc));
            if (has_emitted)
              store(em_l.data + b * em_l.strides[0] * static_cast<int64_t>(em_l.elem_size),
                    static_cast<int32_t>(acc + 1));
          }
        });
  });
}

}  // namespace cpu
}  // namespace dsk
