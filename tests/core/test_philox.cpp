// Known-answer tests for lib/common/philox.h: the philox4x32_10 vectors published with Random123
// (kat_vectors), which pin the round function, the multipliers and the key schedule.
#include <doctest/doctest.h>

#include <cstdint>

#include "common/philox.h"

namespace {

void check_kat(const uint32_t counter[4], const uint32_t key[2], const uint32_t want[4]) {
  const dsk::Philox4 got =
      dsk::philox4x32_10(counter[0], counter[1], counter[2], counter[3], key[0], key[1]);
  for (int i = 0; i < 4; ++i) {
    CAPTURE(i);
    CHECK(got.v[i] == want[i]);
  }
}

}  // namespace

TEST_CASE("philox: Random123 known answers for philox4x32_10") {
  {
    const uint32_t counter[4] = {0, 0, 0, 0};
    const uint32_t key[2] = {0, 0};
    const uint32_t want[4] = {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u};
    check_kat(counter, key, want);
  }
  {
    const uint32_t counter[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
    const uint32_t key[2] = {0xffffffffu, 0xffffffffu};
    const uint32_t want[4] = {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu};
    check_kat(counter, key, want);
  }
  {
    const uint32_t counter[4] = {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u};
    const uint32_t key[2] = {0xa4093822u, 0x299f31d0u};
    const uint32_t want[4] = {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u};
    check_kat(counter, key, want);
  }
}

TEST_CASE("philox: every counter and key word changes the output") {
  const dsk::Philox4 base = dsk::philox4x32_10(1, 2, 3, 4, 5, 6);
  const uint32_t in[6] = {1, 2, 3, 4, 5, 6};
  for (int which = 0; which < 6; ++which) {
    CAPTURE(which);
    uint32_t w[6];
    for (int i = 0; i < 6; ++i) w[i] = in[i] + (i == which ? 1u : 0u);
    const dsk::Philox4 other = dsk::philox4x32_10(w[0], w[1], w[2], w[3], w[4], w[5]);
    int differing = 0;
    for (int i = 0; i < 4; ++i) differing += other.v[i] != base.v[i] ? 1 : 0;
    CHECK(differing == 4);
  }
}
