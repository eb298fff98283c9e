// CPU grouped GEMM of the MoE experts (dsk_backend_iface::moe_grouped_gemm):
//   y[offsets[g] .. offsets[g + 1]) = x[same rows] @ w[g]^T   for every group g.
//
// Each non-empty group is handed to the CPU GEMM entry (lib/cpu/gemm.cpp) as the very problem
// dsk_linear would give it (A = the group's rows of x, B = w[g]^T by a stride swap, D = the rows
// of y), so the results are bit for bit those of a loop of dsk_linear calls, one per expert, at
// the same thread count (f32 accumulation, one rounding to y's dtype).
//
// Threads: a group with enough work to split is run on its own and the GEMM spreads it over the
// threads itself; the small groups (those the GEMM would run on one thread anyway) are spread
// over the threads whole, in contiguous ranges balanced by their rows. Either way every group is
// computed by one unchanged gemm() call, so the split never changes a result.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu/backend_guard.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace dsk {
namespace cpu {
namespace {

// Flops below which gemm() keeps a problem on the calling thread (kMinFlopsPerThread times two:
// it starts a second thread from there on). Only the split depends on this value.
constexpr double kSingleThreadFlops = 2 * kMinFlopsPerThread;

// A [rows, cols] window of a 2-D tensor, or matrix g of a 3-D one, with element strides.
struct Window {
  DLTensor t{};
  int64_t shape[2] = {};
  int64_t strides[2] = {};
};

// Rows [r0, r0 + nr) of the 2-D tensor `src` (explicit strides).
void rows_of(const DLTensor* src, int64_t r0, int64_t nr, Window* w) {
  w->t = *src;
  w->shape[0] = nr;
  w->shape[1] = src->shape[1];
  w->strides[0] = src->strides[0];
  w->strides[1] = src->strides[1];
  const int64_t elem = (src->dtype.bits * src->dtype.lanes + 7) / 8;
  w->t.data = static_cast<char*>(src->data) + src->byte_offset + r0 * src->strides[0] * elem;
  w->t.byte_offset = 0;
  w->t.ndim = 2;
  w->t.shape = w->shape;
  w->t.strides = w->strides;
}

// w[g]^T as [K, N] for w [G, N, K]: matrix g with its two strides swapped.
void transposed_matrix(const DLTensor* src, int64_t g, Window* w) {
  w->t = *src;
  w->shape[0] = src->shape[2];
  w->shape[1] = src->shape[1];
  w->strides[0] = src->strides[2];
  w->strides[1] = src->strides[1];
  const int64_t elem = (src->dtype.bits * src->dtype.lanes + 7) / 8;
  w->t.data = static_cast<char*>(src->data) + src->byte_offset + g * src->strides[0] * elem;
  w->t.byte_offset = 0;
  w->t.ndim = 2;
  w->t.shape = w->shape;
  w->t.strides = w->strides;
}

}  // namespace

dsk_status moe_grouped_gemm(const dsk_exec* ex, const DLTensor* x, const DLTensor* w,
                            const int64_t* offsets, const DLTensor* y) noexcept {
  return guarded([&] {
    const int64_t groups = w->shape[0];
    const int64_t n = w->shape[1];
    const int64_t k = w->shape[2];
    if (groups == 0 || n == 0) return;
    // The groups to compute: small ones (whole per thread) and large ones (split by gemm()).
    std::vector<int64_t> small;
    std::vector<int64_t> large;
    int64_t small_rows = 0;
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t rows = offsets[g + 1] - offsets[g];
      if (rows <= 0) continue;
      const double flops = 2.0 * static_cast<double>(rows) * static_cast<double>(n) *
                           static_cast<double>(std::max<int64_t>(k, 1));
      if (flops < kSingleThreadFlops) {
        small.push_back(g);
        small_rows += rows;
      } else {
        large.push_back(g);
      }
    }
    // One group through the GEMM entry, exactly as dsk_linear calls it.
    auto run_group = [&](int64_t g) {
      Window a, b, d;
      rows_of(x, offsets[g], offsets[g + 1] - offsets[g], &a);
      transposed_matrix(w, g, &b);
      rows_of(y, offsets[g], offsets[g + 1] - offsets[g], &d);
      const dsk_status st = gemm(ex, &a.t, &b.t, nullptr, nullptr, &d.t, 1.0f, 0.0f);
      if (st != DSK_OK) fail(st, "moe_grouped_gemm: group {}: {}", g, last_error());
    };
    for (int64_t g : large) run_group(g);
    if (small.empty()) return;
    // Small groups: contiguous runs of groups per thread, cut where the running row count
    // crosses an equal share of the rows (deterministic; any cut gives the same results).
    const double total_flops = 2.0 * static_cast<double>(small_rows) * static_cast<double>(n) *
                               static_cast<double>(std::max<int64_t>(k, 1));
    const int64_t threads = std::max<int64_t>(
        1, std::min<int64_t>({static_cast<int64_t>(configured_threads()),
                              static_cast<int64_t>(small.size()),
                              static_cast<int64_t>(total_flops / (kSingleThreadFlops / 2))}));
    std::vector<size_t> cut(static_cast<size_t>(threads) + 1, small.size());
    cut[0] = 0;
    {
      int64_t seen = 0;
      int64_t next = 1;
      for (size_t i = 0; i < small.size() && next < threads; ++i) {
        const int64_t g = small[i];
        seen += offsets[g + 1] - offsets[g];
        while (next < threads && seen * threads >= small_rows * next) {
          cut[static_cast<size_t>(next++)] = i + 1;
        }
      }
    }
    run_shares(threads, [&](int64_t t) {
      for (size_t i = cut[static_cast<size_t>(t)]; i < cut[static_cast<size_t>(t) + 1]; ++i) {
        run_group(small[i]);
      }
    });
  });
}

}  // namespace cpu
}  // namespace dsk
