#include "cpu/convert_run.h"

#include <array>
#include <utility>

#include "common/convert.h"

namespace dsk {
namespace cpu {
namespace {

template <int32_t S, int32_t D>
void run(const char* src, int64_t src_step, char* dst, int64_t dst_step, int64_t n) {
  for (int64_t i = 0; i < n; ++i) convert_element(S, src + i * src_step, D, dst + i * dst_step);
}

template <size_t... I>
constexpr auto make_table(std::index_sequence<I...>) {
  // Entry k converts from id k / COUNT to id k % COUNT; row and column 0 (no dtype) are unused.
  return std::array<ConvertRun, sizeof...(I)>{{&run<static_cast<int32_t>(I / DSK_DTYPE_COUNT),
                                                    static_cast<int32_t>(I % DSK_DTYPE_COUNT)>...}};
}

}  // namespace

ConvertRun convert_run(int32_t src_id, int32_t dst_id) noexcept {
  static constexpr auto kTable =
      make_table(std::make_index_sequence<DSK_DTYPE_COUNT * DSK_DTYPE_COUNT>{});
  return kTable[static_cast<size_t>(src_id * DSK_DTYPE_COUNT + dst_id)];
}

}  // namespace cpu
}  // namespace dsk
