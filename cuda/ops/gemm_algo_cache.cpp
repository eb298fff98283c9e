// The process-wide cuBLASLt algorithm cache (gemm_algo_cache.h).
#include "cuda/ops/gemm_algo_cache.h"

#include <map>
#include <mutex>
#include <new>

namespace dsk {
namespace cuda {
namespace {

// Distinct GEMM problems of a model are few (a few per layer type and token count); the bound
// only protects against unbounded growth from ever-changing shapes.
constexpr size_t kMaxEntries = 4096;

std::mutex g_mutex;
std::map<LtAlgoKey, LtAlgo>* g_cache = nullptr;  // never freed: outlives every caller

}  // namespace

bool lt_algo_lookup(const LtAlgoKey& key, LtAlgo* out) noexcept {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_cache == nullptr) return false;
  const auto it = g_cache->find(key);
  if (it == g_cache->end()) return false;
  *out = it->second;
  return true;
}

void lt_algo_store(const LtAlgoKey& key, const LtAlgo& algo) noexcept {
  std::lock_guard<std::mutex> lock(g_mutex);
  try {
    if (g_cache == nullptr) g_cache = new std::map<LtAlgoKey, LtAlgo>();
    if (g_cache->size() >= kMaxEntries) g_cache->clear();
    (*g_cache)[key] = algo;
  } catch (const std::bad_alloc&) {
    // Only a lost optimization: the next call runs the heuristic again.
  }
}

}  // namespace cuda
}  // namespace dsk
