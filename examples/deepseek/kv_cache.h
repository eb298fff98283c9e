// kv_cache.h - the MLA paged latent cache: per layer [pages, page_size, 1, kv_lora + rope] in the
// attention dtype, one block table for all layers, and each request's length.
#ifndef DSK_EXAMPLES_DEEPSEEK_KV_CACHE_H_
#define DSK_EXAMPLES_DEEPSEEK_KV_CACHE_H_

#include <cstdint>
#include <dsk/dsk.hpp>
#include <vector>

namespace deepseek {

class KvCache {
 public:
  static constexpr int64_t kPageSize = 64;  // FlashMLA's page size (dsk needs a multiple of 16)

  // Room for `capacity[b]` tokens of request b in each of `layers` layers of `width` values.
  KvCache(dsk::Context& ctx, int64_t layers, int64_t width, int32_t dtype_id,
          const std::vector<int64_t>& capacity);

  int64_t batch() const { return static_cast<int64_t>(lengths_.size()); }
  int64_t length(int64_t b) const { return lengths_[static_cast<size_t>(b)]; }
  int64_t bytes() const { return bytes_; }
  const dsk::Tensor& layer(int64_t i) const { return layers_[static_cast<size_t>(i)]; }
  const dsk::Tensor& block_table() const { return block_table_; }  // [B, max_pages] int32
  const dsk::Tensor& seqlens() const { return seqlens_; }          // [B] int32 on the device

  // The cache slot (page * page_size + offset) of token `pos` of request b.
  int64_t slot(int64_t b, int64_t pos) const;

  // Records n more tokens for every request (host lengths and the device seqlens); the caller has
  // appended them to every layer. Throws when a request would exceed its capacity.
  void advance(dsk::Context& ctx, const std::vector<int64_t>& n);

 private:
  std::vector<dsk::Tensor> layers_;
  dsk::Tensor block_table_, seqlens_;
  std::vector<std::vector<int32_t>> pages_;  // host copy of the block table
  std::vector<int64_t> lengths_, capacity_;
  int64_t bytes_ = 0;
};

}  // namespace deepseek

#endif  // DSK_EXAMPLES_DEEPSEEK_KV_CACHE_H_
