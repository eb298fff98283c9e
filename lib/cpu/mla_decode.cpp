// CPU absorbed MLA decode over the paged latent cache (dsk_backend_iface::mla_decode_plan and
// ::mla_decode; semantics in include/dsk/dsk_mla.h, contracts in lib/core/backend_iface.h).
//
// Flash-decoding. The query rows that read one cached head of one request (R = S * Hq / Hkv rows:
// every query token and every head of the group, blocked to at most kMlaMaxRows rows) form a row
// block; each request's keys are cut into `num_splits` contiguous chunks. A work item is (request,
// cached head, row block, chunk): it converts its query rows to f32 once, then walks its keys in
// tiles of kMlaTile tokens (each cached row converted to f32 once and used as K for every row and
// as V), with an online softmax in f32 (running max m, sum l, accumulator o of Dv floats per row).
// With one chunk the item writes out and lse itself; with several, every item leaves (m, l, o) in
// scratch and a combine pass merges the chunks of each row in chunk order:
//   M = max_c m_c,  w_c = exp(m_c - M),  L = sum_c w_c l_c,  out = (sum_c w_c o_c) / L,
//   lse = M + log(L)
// (chunks without keys are skipped; a row without any key gets out = 0, lse = -inf).
//
// Determinism: the chunking depends only on the plan's shapes (num_splits) and on the request's
// seqlen, never on the thread count, and the combine order is fixed, so any DSK_NUM_THREADS gives
// the same bits. Threads take work items from a shared counter (longest first); an item's result
// does not depend on which thread runs it.
//
// Validation: every seqlen and every block_table entry a request needs are checked before any
// output is written. Cache positions at or past a request's seqlen are never read, and the keys a
// causal row does not see are excluded by the mask before the softmax (never multiplied by zero),
// so NaN in unused positions cannot leak into a result.
//
// Scratch: the plan's workspace_bytes covers the chunk partials plus per-thread tile buffers for
// the thread count at plan time. mla_decode uses ex->workspace (host memory on the CPU) when it is
// large enough and allocates its scratch otherwise. The CPU backend's worker threads are started
// per call (cpu/parallel.h), so a CPU run is never allocation-free in the strict sense.
//
// Kernels: lib/cpu/mla_decode_kernels.h; an AVX-512 set where the CPU has it, a portable set
// everywhere else (the two may differ in the last bits; each is deterministic).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <vector>

#include "common/convert.h"
#include "core/layout.h"
#include "cpu/backend_guard.h"
#include "cpu/mla_decode_kernels.h"
#include "cpu/norm_io.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"
#include "dsk/dsk_dtype.h"

namespace dsk {
namespace cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Chunking: aim for this many work items per call (enough to balance a few dozen threads and
// long against short requests), but never cut a request's keys into chunks shorter than
// kMinChunk tokens (at plan time, over max_pages * page_size) or kMinRunChunk tokens (at run
// time, over the actual seqlen).
constexpr int64_t kTargetItems = 64;
constexpr int64_t kMinChunk = 256;
constexpr int64_t kMinRunChunk = 64;
// Below this many flops a call runs on the calling thread (waking workers costs more).
constexpr double kMinFlopsForThreads = 2 * kMinFlopsPerThread;
constexpr int64_t kAlign = 64;

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
int64_t ceil_div(int64_t x, int64_t m) { return (x + m - 1) / m; }

// Everything the schedule needs, derived from the plan's shapes only.
struct Schedule {
  int64_t group = 0;       // Hq / Hkv
  int64_t rows = 0;        // R = S * group
  int64_t row_blocks = 0;  // ceil(R / kMlaMaxRows)
  int64_t block_rows = 0;  // rows per block (the last may have fewer)
  int64_t splits = 1;
  int64_t ldr = 0;  // block_rows rounded up to 16
  int64_t ldk = 0;  // D rounded up to 16
  int64_t dvp = 0;  // Dv rounded up to 16
  int64_t items = 0;
  size_t partial_bytes = 0;  // chunk partials (0 without splits)
  size_t thread_bytes = 0;   // one thread's tile buffers
};

Schedule schedule_for(int64_t batch, int64_t s_q, int64_t h_q, int64_t h_kv, int64_t d, int64_t dv,
                      int64_t page_size, int64_t max_pages, int64_t splits) {
  Schedule s;
  s.group = h_q / h_kv;
  s.rows = s_q * s.group;
  s.row_blocks = std::max<int64_t>(1, ceil_div(s.rows, kMlaMaxRows));
  s.block_rows = std::max<int64_t>(1, ceil_div(s.rows, s.row_blocks));
  s.ldr = round_up(s.block_rows, 16);
  s.ldk = round_up(d, 16);
  s.dvp = round_up(dv, 16);
  const int64_t groups = batch * h_kv * s.row_blocks;
  if (splits <= 0) {
    splits = 1;
    const int64_t max_tokens = max_pages * page_size;
    if (groups > 0 && groups < kTargetItems) {
      splits =
          std::min(ceil_div(kTargetItems, groups), std::max<int64_t>(1, max_tokens / kMinChunk));
    }
  }
  s.splits = splits;
  s.items = groups * splits;
  if (splits > 1) {
    const double bytes = static_cast<double>(s.items) * static_cast<double>(s.block_rows) *
                         (static_cast<double>(dv) + 18.0) * 4.0;
    check_arg(bytes < 1e15, "mla_decode: the split-KV scratch ({} bytes) is too large", bytes);
    s.partial_bytes = static_cast<size_t>(s.items * s.block_rows * (s.dvp + 2) * 4);
  }
  const int64_t floats = d * s.ldr + kMlaTile * s.ldk + kMlaTile * s.ldr + s.block_rows * s.dvp +
                         3 * s.ldr + s.ldr /* lim */;
  const int64_t bytes = floats * 4 + std::max(kMlaTile, s.ldr) * 8;
  s.thread_bytes = static_cast<size_t>(round_up(bytes + 9 * kAlign, kAlign));
  s.partial_bytes = static_cast<size_t>(round_up(static_cast<int64_t>(s.partial_bytes), kAlign));
  return s;
}

// One thread's buffers, carved from 64-byte aligned scratch.
struct ThreadScratch {
  float* qt;
  float* kf;
  float* st;
  float* o;
  float* m;
  float* l;
  float* alpha;
  int32_t* lim;
  const char** rows;
};

ThreadScratch carve(char* base, const Schedule& s, int64_t d) {
  auto take = [&base](size_t bytes) {
    char* p = base;
    base += round_up(static_cast<int64_t>(bytes), kAlign);
    return p;
  };
  ThreadScratch t{};
  t.qt = reinterpret_cast<float*>(take(sizeof(float) * d * s.ldr));
  t.kf = reinterpret_cast<float*>(take(sizeof(float) * kMlaTile * s.ldk));
  t.st = reinterpret_cast<float*>(take(sizeof(float) * kMlaTile * s.ldr));
  t.o = reinterpret_cast<float*>(take(sizeof(float) * s.block_rows * s.dvp));
  t.m = reinterpret_cast<float*>(take(sizeof(float) * 3 * s.ldr));
  t.l = t.m + s.ldr;
  t.alpha = t.l + s.ldr;
  t.lim = reinterpret_cast<int32_t*>(take(sizeof(int32_t) * s.ldr));
  t.rows = reinterpret_cast<const char**>(take(sizeof(char*) * std::max(kMlaTile, s.ldr)));
  return t;
}

struct Item {
  int64_t b, g, rb, split;
  int64_t key0, key1;  // keys this item reads (empty when key1 <= key0)
  int64_t cost;
};

int32_t load_i32(const Layout& t, int64_t i0, int64_t i1) {
  int32_t v;
  std::memcpy(&v, t.data + (i0 * t.strides[0] + i1 * (t.ndim > 1 ? t.strides[1] : 0)) * 4, 4);
  return v;
}

struct Decode {
  Layout q, kv, bt, sl, out, lse;
  bool has_lse = false;
  int64_t batch = 0, s_q = 0, h_q = 0, d = 0, pages = 0, page_size = 0, h_kv = 0, max_pages = 0;
  int64_t dv = 0;
  int32_t dtype = 0;
  float scale = 1.0f;
  bool causal = false;
  Schedule s;
  std::vector<int32_t> seqlens;
  const MlaKernels* k = nullptr;

  // Attended keys of row r (of the request's R) for a request of n tokens.
  int64_t row_limit(int64_t r, int64_t n) const {
    if (!causal) return n;
    const int64_t j = r / s.group;
    return std::clamp<int64_t>(n - s_q + j + 1, 0, n);
  }

  const char* token_row(int64_t b, int64_t g, int64_t t) const {
    const int64_t page = load_i32(bt, b, t / page_size);
    const int64_t off = t % page_size;
    return kv.data + (page * kv.strides[0] + off * kv.strides[1] + g * kv.strides[2]) * 2;
  }

  char* out_row(int64_t b, int64_t r, int64_t g) const {
    const int64_t j = r / s.group;
    const int64_t h = g * s.group + r % s.group;
    return out.data + (b * out.strides[0] + j * out.strides[1] + h * out.strides[2]) * 2;
  }

  void write_lse(int64_t b, int64_t r, int64_t g, float v) const {
    if (!has_lse) return;
    const int64_t j = r / s.group;
    const int64_t h = g * s.group + r % s.group;
    std::memcpy(lse.data + (b * lse.strides[0] + h * lse.strides[1] + j * lse.strides[2]) * 4, &v,
                4);
  }

  // out row = o / l rounded once (zeros and lse -inf for a row without keys).
  void write_row(int64_t b, int64_t r, int64_t g, const float* o, float m, float l,
                 float* tmp) const {
    char* dst = out_row(b, r, g);
    if (m == kNegInf) {
      std::memset(dst, 0, static_cast<size_t>(dv) * 2);
      write_lse(b, r, g, kNegInf);
      return;
    }
    for (int64_t c = 0; c < dv; ++c) tmp[c] = o[c] / l;
    store_f32_row(dtype, tmp, dst, 2, dv);
    write_lse(b, r, g, m + std::log(l));
  }

  // One work item; with splits its (m, l, o) go to part_o [block_rows][dvp] and part_ml
  // [block_rows][2] (o accumulates there directly), else to out and lse.
  void run_item(const Item& it, const ThreadScratch& t, float* part_o, float* part_ml) const {
    float* o = part_o != nullptr ? part_o : t.o;
    const int64_t r0 = it.rb * s.block_rows;
    const int64_t nr = std::min(s.rows, r0 + s.block_rows) - r0;
    const int64_t n = seqlens[static_cast<size_t>(it.b)];
    const int64_t ldr = s.ldr;
    int64_t min_lim = n;
    for (int64_t i = 0; i < ldr; ++i) {
      const int64_t lim = i < nr ? row_limit(r0 + i, n) : 0;
      if (i < nr) min_lim = std::min(min_lim, lim);
      t.lim[i] = static_cast<int32_t>(lim);
      t.m[i] = kNegInf;
      t.l[i] = 0.0f;
    }
    if (it.key1 > it.key0) {
      // Query rows, transposed to [D][ldr] f32 (padding rows zero).
      for (int64_t i = 0; i < nr; ++i) {
        const int64_t r = r0 + i;
        const int64_t j = r / s.group;
        const int64_t h = it.g * s.group + r % s.group;
        t.rows[i] = q.data + (it.b * q.strides[0] + j * q.strides[1] + h * q.strides[2]) * 2;
      }
      k->pack_q(t.rows, nr, d, dtype, t.qt, ldr);
      std::fill(o, o + nr * s.dvp, 0.0f);
      for (int64_t key0 = it.key0; key0 < it.key1; key0 += kMlaTile) {
        const int64_t cnt = std::min(kMlaTile, it.key1 - key0);
        const int64_t nfill = round_up(cnt, kMlaKeyBlock);
        for (int64_t j = 0; j < cnt; ++j) t.rows[j] = token_row(it.b, it.g, key0 + j);
        k->load_tile(t.rows, cnt, nfill, dtype, d, t.kf, s.ldk);
        k->qk(t.qt, ldr, t.kf, s.ldk, d, nfill, scale, t.st);
        k->softmax(t.st, ldr, cnt, key0, t.lim, key0 + cnt > min_lim, t.m, t.l, t.alpha);
        k->pv(o, s.dvp, nr, t.alpha, t.st, ldr, t.kf, s.ldk, cnt, s.dvp);
      }
    }
    if (part_o == nullptr) {
      float* tmp = t.kf;  // free again: a row of Dv floats for the rounding
      for (int64_t i = 0; i < nr; ++i) {
        write_row(it.b, r0 + i, it.g, o + i * s.dvp, t.m[i], t.l[i], tmp);
      }
      return;
    }
    for (int64_t i = 0; i < nr; ++i) {
      part_ml[2 * i] = t.m[i];
      part_ml[2 * i + 1] = t.l[i];
    }
  }

  // Merges the chunks of rows of group index gi = (b * Hkv + g) * row_blocks + rb.
  void combine(int64_t gi, const float* part_o, const float* part_ml, float* acc,
               float* tmp) const {
    const int64_t rb = gi % s.row_blocks;
    const int64_t g = gi / s.row_blocks % h_kv;
    const int64_t b = gi / s.row_blocks / h_kv;
    const int64_t r0 = rb * s.block_rows;
    const int64_t nr = std::min(s.rows, r0 + s.block_rows) - r0;
    const int64_t stride_o = s.block_rows * s.dvp;
    const int64_t stride_ml = s.block_rows * 2;
    const float* po = part_o + gi * s.splits * stride_o;
    const float* pml = part_ml + gi * s.splits * stride_ml;
    for (int64_t i = 0; i < nr; ++i) {
      float mx = kNegInf;
      for (int64_t c = 0; c < s.splits; ++c) mx = std::max(mx, pml[c * stride_ml + 2 * i]);
      if (mx == kNegInf) {
        write_row(b, r0 + i, g, acc, kNegInf, 0.0f, tmp);
        continue;
      }
      std::fill(acc, acc + dv, 0.0f);
      float sum = 0.0f;
      for (int64_t c = 0; c < s.splits; ++c) {
        const float mc = pml[c * stride_ml + 2 * i];
        if (mc == kNegInf) continue;
        const float w = std::exp(mc - mx);
        sum += w * pml[c * stride_ml + 2 * i + 1];
        const float* oc = po + c * stride_o + i * s.dvp;
        for (int64_t x = 0; x < dv; ++x) acc[x] += w * oc[x];
      }
      write_row(b, r0 + i, g, acc, mx, sum, tmp);
    }
  }
};

char* align_up(char* p) {
  const auto v = reinterpret_cast<uintptr_t>(p);
  return reinterpret_cast<char*>((v + kAlign - 1) / kAlign * kAlign);
}

}  // namespace

dsk_status mla_decode_plan(int32_t /*device*/, const dsk_mla_decode_shape* shape,
                           dsk_mla_decode_work* work) noexcept {
  return guarded([&] {
    check_arg(shape != nullptr && work != nullptr, "mla_decode_plan: NULL shape or work");
    check_arg(shape->batch >= 0 && shape->s_q >= 1 && shape->h_kv >= 1 && shape->h_q >= 1 &&
                  shape->h_q % shape->h_kv == 0 && shape->head_dim >= 1 && shape->head_dim_v >= 1 &&
                  shape->head_dim_v <= shape->head_dim && shape->page_size >= 1 &&
                  shape->max_pages >= 0,
              "mla_decode_plan: invalid shape");
    const Schedule s =
        schedule_for(shape->batch, shape->s_q, shape->h_q, shape->h_kv, shape->head_dim,
                     shape->head_dim_v, shape->page_size, shape->max_pages, 0);
    work->num_splits = static_cast<int32_t>(s.splits);
    work->reserved = 0;
    const auto threads = static_cast<size_t>(configured_threads());
    work->workspace_bytes = s.partial_bytes + threads * s.thread_bytes + kAlign;
  });
}

dsk_status mla_decode(const dsk_exec* ex, const DLTensor* q_t, const DLTensor* kv_t,
                      const DLTensor* bt_t, const DLTensor* sl_t, const DLTensor* out_t,
                      const DLTensor* lse_t, float scale, int32_t causal,
                      const dsk_mla_decode_work* work) noexcept {
  return guarded([&] {
    Decode x;
    x.q = check_tensor(q_t, "q", Access::kRead);
    x.kv = check_tensor(kv_t, "kv_cache", Access::kRead);
    x.bt = check_tensor(bt_t, "block_table", Access::kRead);
    x.sl = check_tensor(sl_t, "cache_seqlens", Access::kRead);
    x.out = check_tensor(out_t, "out", Access::kWrite);
    x.has_lse = lse_t != nullptr;
    if (x.has_lse) x.lse = check_tensor(lse_t, "lse", Access::kWrite);
    check_arg(x.q.ndim == 4 && x.kv.ndim == 4 && x.bt.ndim == 2 && x.sl.ndim == 1 &&
                  x.out.ndim == 4 && (!x.has_lse || x.lse.ndim == 3),
              "mla_decode: expected q [B, S, Hq, D], kv_cache [P, page, Hkv, D], block_table "
              "[B, max_pages], cache_seqlens [B], out [B, S, Hq, Dv], lse [B, Hq, S]");
    x.batch = x.q.shape[0];
    x.s_q = x.q.shape[1];
    x.h_q = x.q.shape[2];
    x.d = x.q.shape[3];
    x.pages = x.kv.shape[0];
    x.page_size = x.kv.shape[1];
    x.h_kv = x.kv.shape[2];
    x.max_pages = x.bt.shape[1];
    x.dv = x.out.shape[3];
    x.dtype = x.q.dtype_id;
    check_arg((x.dtype == DSK_DTYPE_BF16 || x.dtype == DSK_DTYPE_F16) && x.kv.dtype_id == x.dtype &&
                  x.out.dtype_id == x.dtype && x.bt.dtype_id == DSK_DTYPE_INT32 &&
                  x.sl.dtype_id == DSK_DTYPE_INT32 &&
                  (!x.has_lse || x.lse.dtype_id == DSK_DTYPE_F32),
              "mla_decode: unsupported dtypes");
    check_arg(
        x.kv.shape[3] == x.d && x.h_kv >= 1 && x.h_q % x.h_kv == 0 && x.page_size >= 1 &&
            x.bt.shape[0] == x.batch && x.sl.shape[0] == x.batch && x.out.shape[0] == x.batch &&
            x.out.shape[1] == x.s_q && x.out.shape[2] == x.h_q && x.dv >= 1 && x.dv <= x.d &&
            (!x.has_lse ||
             (x.lse.shape[0] == x.batch && x.lse.shape[1] == x.h_q && x.lse.shape[2] == x.s_q)),
        "mla_decode: inconsistent shapes");
    check_arg((x.q.strides[3] == 1 || x.d == 1) && (x.kv.strides[3] == 1 || x.d == 1) &&
                  (x.out.strides[3] == 1 || x.dv == 1),
              "mla_decode: the last dimension of q, kv_cache and out must be contiguous");
    x.scale = scale;
    x.causal = causal != 0;

    // Every seqlen and every needed block_table entry, before anything is written.
    const int64_t capacity = x.max_pages * x.page_size;
    x.seqlens.resize(static_cast<size_t>(x.batch));
    for (int64_t b = 0; b < x.batch; ++b) {
      const int32_t n = load_i32(x.sl, b, 0);
      check_arg(n >= 0 && n <= capacity,
                "cache_seqlens[{}] = {}, expected [0, {}] (max_pages * page_size)", b, n, capacity);
      x.seqlens[static_cast<size_t>(b)] = n;
    }
    for (int64_t b = 0; b < x.batch; ++b) {
      const int64_t used = ceil_div(x.seqlens[static_cast<size_t>(b)], x.page_size);
      for (int64_t p = 0; p < used; ++p) {
        const int32_t page = load_i32(x.bt, b, p);
        check_arg(page >= 0 && page < x.pages,
                  "block_table[{}, {}] = {}, expected a page in [0, {}) (num_pages)", b, p, page,
                  x.pages);
      }
    }
    if (x.batch == 0 || x.s_q == 0 || x.h_q == 0) return;

    const int64_t splits = work != nullptr && work->num_splits >= 1 ? work->num_splits : 0;
    x.s = schedule_for(x.batch, x.s_q, x.h_q, x.h_kv, x.d, x.dv, x.page_size, x.max_pages, splits);
    x.k = &mla_kernels();
    const Schedule& s = x.s;

    // Work items with their key ranges; chunk boundaries depend on the seqlen only.
    std::vector<Item> items;
    items.reserve(static_cast<size_t>(s.items));
    double flops = 0.0;
    for (int64_t b = 0; b < x.batch; ++b) {
      const int64_t n = x.seqlens[static_cast<size_t>(b)];
      const int64_t chunk =
          s.splits == 1 ? n : std::max(kMinRunChunk, round_up(ceil_div(n, s.splits), 16));
      for (int64_t g = 0; g < x.h_kv; ++g) {
        for (int64_t rb = 0; rb < s.row_blocks; ++rb) {
          const int64_t r0 = rb * s.block_rows;
          const int64_t nr = std::min(s.rows, r0 + s.block_rows) - r0;
          int64_t max_lim = 0;
          for (int64_t i = 0; i < nr; ++i) max_lim = std::max(max_lim, x.row_limit(r0 + i, n));
          for (int64_t c = 0; c < s.splits; ++c) {
            Item it{b, g, rb, c, c * chunk, std::min(max_lim, (c + 1) * chunk), 0};
            it.cost = std::max<int64_t>(0, it.key1 - it.key0) * nr;
            flops += 2.0 * static_cast<double>(it.cost) * static_cast<double>(x.d + x.dv);
            items.push_back(it);
          }
        }
      }
    }
    // Longest first: the dynamic schedule then balances varlen batches.
    std::vector<int64_t> order(items.size());
    std::iota(order.begin(), order.end(), int64_t{0});
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t c) {
      return items[static_cast<size_t>(a)].cost > items[static_cast<size_t>(c)].cost;
    });

    int64_t threads = flops < kMinFlopsForThreads ? 1 : configured_threads();
    threads = std::max<int64_t>(1, std::min<int64_t>(threads, static_cast<int64_t>(items.size())));
    const size_t need = s.partial_bytes + static_cast<size_t>(threads) * s.thread_bytes + kAlign;
    std::unique_ptr<char[]> own;
    char* base = nullptr;
    if (ex != nullptr && ex->workspace != nullptr && ex->workspace_bytes >= need) {
      base = align_up(static_cast<char*>(ex->workspace));
    } else {
      own.reset(new char[need]);
      base = align_up(own.get());
    }
    float* part_o = nullptr;
    float* part_ml = nullptr;
    if (s.splits > 1) {
      part_o = reinterpret_cast<float*>(base);
      part_ml = part_o + s.items * s.block_rows * s.dvp;
    }
    char* thread_base = base + s.partial_bytes;

    std::atomic<int64_t> next{0};
    const auto count = static_cast<int64_t>(items.size());
    run_shares(threads, [&](int64_t t) {
      const ThreadScratch ts =
          carve(thread_base + t * static_cast<int64_t>(s.thread_bytes), s, x.d);
      for (;;) {
        const int64_t i = next.fetch_add(1, std::memory_order_relaxed);
        if (i >= count) break;
        const Item& it = items[static_cast<size_t>(order[static_cast<size_t>(i)])];
        const int64_t slot = ((it.b * x.h_kv + it.g) * s.row_blocks + it.rb) * s.splits + it.split;
        x.run_item(it, ts, part_o == nullptr ? nullptr : part_o + slot * s.block_rows * s.dvp,
                   part_ml == nullptr ? nullptr : part_ml + slot * s.block_rows * 2);
      }
    });
    if (s.splits == 1) return;

    const int64_t groups = x.batch * x.h_kv * s.row_blocks;
    const int64_t per_group = s.block_rows * s.splits * (x.dv + 2);
    parallel_for(groups, min_rows_per_thread(per_group), [&](int64_t lo, int64_t hi) {
      std::vector<float> acc(static_cast<size_t>(2 * x.dv));
      for (int64_t gi = lo; gi < hi; ++gi) {
        x.combine(gi, part_o, part_ml, acc.data(), acc.data() + x.dv);
      }
    });
  });
}

}  // namespace cpu
}  // namespace dsk
