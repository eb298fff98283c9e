// kv_cache.cpp - page allocation and the block table of the latent cache.
#include "kv_cache.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "device_io.h"

namespace deepseek {

KvCache::KvCache(dsk::Context& ctx, int64_t layers, int64_t width, int32_t dtype_id,
                 const std::vector<int64_t>& capacity)
    : lengths_(capacity.size(), 0), capacity_(capacity) {
  // Each request owns whole pages, numbered consecutively: a simple allocator is enough for one
  // batch run; a server would hand out pages from a free list as sequences grow.
  int64_t max_pages = 1, total = 0;
  for (int64_t c : capacity) max_pages = std::max(max_pages, (c + kPageSize - 1) / kPageSize);
  std::vector<int32_t> table;
  for (int64_t c : capacity) {
    const int64_t n = (c + kPageSize - 1) / kPageSize;
    std::vector<int32_t> row;
    for (int64_t p = 0; p < n; ++p) row.push_back(static_cast<int32_t>(total + p));
    total += n;
    pages_.push_back(row);
    row.resize(static_cast<size_t>(max_pages), 0);  // never read: past the request's length
    table.insert(table.end(), row.begin(), row.end());
  }
  total = std::max<int64_t>(total, 1);
  for (int64_t i = 0; i < layers; ++i) {
    layers_.push_back(dsk::Tensor::empty(ctx, {total, kPageSize, 1, width}, dsk::dtype(dtype_id)));
    bytes_ += layers_.back().nbytes();
  }
  const int64_t b = static_cast<int64_t>(capacity.size());
  block_table_ = to_device(ctx, table, {b, max_pages});
  seqlens_ = to_device(ctx, std::vector<int32_t>(capacity.size(), 0), {b});
}

int64_t KvCache::slot(int64_t b, int64_t pos) const {
  if (pos < 0 || pos >= capacity_[static_cast<size_t>(b)]) {
    throw std::runtime_error("position " + std::to_string(pos) + " of request " +
                             std::to_string(b) + " is outside its cache capacity of " +
                             std::to_string(capacity_[static_cast<size_t>(b)]) + " tokens");
  }
  const auto& row = pages_[static_cast<size_t>(b)];
  return row[static_cast<size_t>(pos / kPageSize)] * kPageSize + pos % kPageSize;
}

void KvCache::advance(dsk::Context& ctx, const std::vector<int64_t>& n) {
  std::vector<int32_t> lens;
  for (size_t b = 0; b < lengths_.size(); ++b) {
    lengths_[b] += n[b];
    if (lengths_[b] > capacity_[b]) {
      throw std::runtime_error("request " + std::to_string(b) + " exceeds its cache capacity of " +
                               std::to_string(capacity_[b]) + " tokens");
    }
    lens.push_back(static_cast<int32_t>(lengths_[b]));
  }
  write_device(ctx, lens, seqlens_);
}

}  // namespace deepseek
