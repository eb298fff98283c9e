// MLA latent cache append on the CPU (dsk_mla.h): dsk_mla_cache_append writes each token's c_kv
// and k_pe at its slot, rounded to the cache dtype to nearest even (ties and f16 subnormals
// included, checked with encoders written here), skips slot -1, leaves every other byte alone;
// 3-D and 2-D (Hkv 1) inputs of any float dtype and strides (c_kv and k_pe as column slices of
// one [T, D] buffer); an empty append; every bad argument, with the cache untouched.
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "mla_test_util.h"
#include "test_util.h"

namespace {

using dsk_test::CpuContext;
using mla_test::Act;
using mla_test::expect_invalid;
using mla_test::Form;
using mla_test::Host;
using mla_test::ints;
using mla_test::rounded;

// Values that round in interesting ways: bf16 ties (1 + 2^-8 -> 1, 1 + 3 * 2^-8 -> 1 + 2^-6),
// f16 ties, the largest f16 below the overflow threshold, f16 subnormals.
const double kSpecial[] = {1.0 + std::ldexp(1.0, -8),
                           1.0 + 3 * std::ldexp(1.0, -8),
                           -(1.0 + std::ldexp(1.0, -8)),
                           1.0 + std::ldexp(1.0, -11),
                           1.0 + 3 * std::ldexp(1.0, -11),
                           65519.0,
                           std::ldexp(1.5, -24),
                           std::ldexp(1.0, -20) / 3,
                           -0.0,
                           0.1};

// Checks the cache after an append: written rows hold the rounded inputs, every other element
// keeps its bytes from `before`.
void check_cache(const Host& cache, const std::vector<uint8_t>& before,
                 const std::vector<double>& c_kv, const std::vector<double>& k_pe,
                 const std::vector<int64_t>& slots, int64_t hkv, int64_t dv, int64_t dr) {
  const int64_t d = dv + dr;
  const size_t es = mla_test::dtype_bytes(cache.dtype());
  std::vector<char> written(static_cast<size_t>(cache.size()), 0);
  size_t bad_value = 0;
  for (size_t t = 0; t < slots.size(); ++t) {
    if (slots[t] < 0) continue;
    for (int64_t h = 0; h < hkv; ++h) {
      for (int64_t x = 0; x < d; ++x) {
        const int64_t idx = (slots[t] * hkv + h) * d + x;
        written[static_cast<size_t>(idx)] = 1;
        const double in = x < dv ? c_kv[static_cast<size_t>((int64_t(t) * hkv + h) * dv + x)]
                                 : k_pe[static_cast<size_t>((int64_t(t) * hkv + h) * dr + x - dv)];
        const double want = rounded(in, cache.dtype());
        const double got = cache.get(idx);
        if (!(got == want && std::signbit(got) == std::signbit(want))) {
          if (bad_value++ == 0) {
            FAIL_CHECK("token " << t << " slot " << slots[t] << " head " << h << " element " << x
                                << ": " << got << ", expected " << want << " (input " << in << ")");
          }
        }
      }
    }
  }
  CHECK_MESSAGE(bad_value == 0, bad_value, " written values differ");
  const std::vector<uint8_t> after = cache.raw();
  size_t touched = 0;
  for (int64_t i = 0; i < cache.size(); ++i) {
    if (written[static_cast<size_t>(i)]) continue;
    if (std::memcmp(&after[static_cast<size_t>(i) * es], &before[static_cast<size_t>(i) * es],
                    es) != 0) {
      ++touched;
    }
  }
  CHECK_MESSAGE(touched == 0, touched, " elements outside the slots changed");
}

}  // namespace

TEST_CASE("mla cache_append writes rounded values at the slots and nothing else") {
  CpuContext ctx;
  const int64_t pages = 5, page = 16, T = 9;
  const std::vector<int64_t> slots = {17, -1, 0, 79, 40, -1, 63, 64, 3};
  for (int32_t cache_dtype : {DSK_DTYPE_BF16, DSK_DTYPE_F16}) {
    for (int32_t in_dtype : {DSK_DTYPE_F32, DSK_DTYPE_BF16, DSK_DTYPE_F16}) {
      for (int64_t hkv : {1, 2}) {
        for (Form form : {Form::kContiguous, Form::kHeadMajor, Form::kInterleaved}) {
          const int64_t dv = 40, dr = 16;
          const std::string what = std::string("cache ") + mla_test::dtype_label(cache_dtype) +
                                   " inputs " + mla_test::dtype_label(in_dtype) + " h_kv " +
                                   std::to_string(hkv) + " " + mla_test::form_label(form);
          INFO(what);
          Host cache({pages, page, hkv, dv + dr}, cache_dtype);
          cache.fill_random(static_cast<uint64_t>(hkv) * 31 + 5, -3.0, 3.0);
          const std::vector<uint8_t> before = cache.raw();
          Act c_kv({T, hkv, dv}, in_dtype, form), k_pe({T, hkv, dr}, in_dtype, form);
          c_kv.fill_random(11, -2.0, 2.0);
          k_pe.fill_random(12, -2.0, 2.0);
          if (in_dtype == DSK_DTYPE_F32) {
            std::vector<double> v = c_kv.values();
            for (size_t i = 0; i < sizeof(kSpecial) / sizeof(kSpecial[0]); ++i) v[i] = kSpecial[i];
            c_kv.set(v);
          }
          Host slot_mapping = ints({T}, DSK_DTYPE_INT64, slots);
          MLA_REQUIRE_OK(
              dsk_mla_cache_append(ctx, c_kv.dl(), k_pe.dl(), slot_mapping.dl(), cache.dl()));
          check_cache(cache, before, c_kv.values(), k_pe.values(), slots, hkv, dv, dr);
        }
      }
    }
  }
}

TEST_CASE("mla cache_append with 2-D inputs sliced from one latent buffer") {
  CpuContext ctx;
  // DeepSeek's layout: wkv_a's output kv [T, 576] = latent 512 | k_pe 64, normalized and rotated
  // in place, then appended from its two column slices.
  const int64_t T = 6, dv = 512, dr = 64, d = dv + dr, page = 64, pages = 3;
  for (int32_t cache_dtype : {DSK_DTYPE_BF16, DSK_DTYPE_F16}) {
    const std::string what = std::string("cache ") + mla_test::dtype_label(cache_dtype);
    INFO(what);
    Host kv({T, d}, DSK_DTYPE_F32);
    kv.fill_random(21, -4.0, 4.0);
    mla_test::View c_kv = kv.view({T, dv}, {d, 1}, 0);
    mla_test::View k_pe = kv.view({T, dr}, {d, 1}, dv);
    Host cache({pages, page, 1, d}, cache_dtype);
    cache.fill_nan();
    const std::vector<uint8_t> before = cache.raw();
    const std::vector<int64_t> slots = {191, 0, -1, 64, 65, 127};
    Host slot_mapping = ints({T}, DSK_DTYPE_INT64, slots);
    MLA_REQUIRE_OK(
        dsk_mla_cache_append(ctx, c_kv.get(), k_pe.get(), slot_mapping.dl(), cache.dl()));
    std::vector<double> cv, pv;
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t x = 0; x < dv; ++x) cv.push_back(kv.get(t * d + x));
      for (int64_t x = 0; x < dr; ++x) pv.push_back(kv.get(t * d + dv + x));
    }
    check_cache(cache, before, cv, pv, slots, 1, dv, dr);
  }
  // 2-D bf16 inputs into a contiguous-form cache with an odd row split (Dv 48, Dr 24).
  Host c2({4, 48}, DSK_DTYPE_BF16), p2({4, 24}, DSK_DTYPE_BF16);
  c2.fill_random(3);
  p2.fill_random(4);
  Host cache({2, 16, 1, 72}, DSK_DTYPE_BF16);
  cache.fill(7.0);
  const std::vector<uint8_t> before = cache.raw();
  const std::vector<int64_t> slots = {-1, 31, 16, -1};
  Host slot_mapping = ints({4}, DSK_DTYPE_INT64, slots);
  MLA_REQUIRE_OK(dsk_mla_cache_append(ctx, c2.dl(), p2.dl(), slot_mapping.dl(), cache.dl()));
  check_cache(cache, before, c2.values(), p2.values(), slots, 1, 48, 24);
  // Every slot -1: nothing changes. No tokens at all: nothing changes.
  const std::vector<uint8_t> appended = cache.raw();
  Host skip = ints({4}, DSK_DTYPE_INT64, {-1, -1, -1, -1});
  MLA_REQUIRE_OK(dsk_mla_cache_append(ctx, c2.dl(), p2.dl(), skip.dl(), cache.dl()));
  CHECK(cache.raw() == appended);
  Host c0({0, 48}, DSK_DTYPE_F32), p0({0, 24}, DSK_DTYPE_F32), s0({0}, DSK_DTYPE_INT64);
  MLA_REQUIRE_OK(dsk_mla_cache_append(ctx, c0.dl(), p0.dl(), s0.dl(), cache.dl()));
  CHECK(cache.raw() == appended);
}

// ---- bad input ----

TEST_CASE("mla cache_append rejects bad arguments and leaves the cache untouched") {
  CpuContext ctx;
  // T 3, Hkv 2, Dv 32, Dr 8, 4 pages of 16.
  const int32_t bf = DSK_DTYPE_BF16;
  Host c_kv({3, 2, 32}, DSK_DTYPE_F32), k_pe({3, 2, 8}, DSK_DTYPE_F32);
  c_kv.fill(1.0);
  k_pe.fill(2.0);
  Host slots = ints({3}, DSK_DTYPE_INT64, {0, 17, 63});
  Host cache({4, 16, 2, 40}, bf);
  cache.fill(-5.0);
  const std::vector<uint8_t> before = cache.raw();
  struct Args {
    const DLTensor *c, *p, *s, *kv;
  };
  const Args good{c_kv.dl(), k_pe.dl(), slots.dl(), cache.dl()};
  auto with = [&](auto change) {
    Args a = good;
    change(a);
    return dsk_mla_cache_append(ctx, a.c, a.p, a.s, a.kv);
  };
  // Slots out of [-1, num_pages * page_size) = [-1, 64): checked before anything is written.
  for (int64_t bad : {int64_t{64}, int64_t{-2}, int64_t{1} << 40}) {
    Host s = ints({3}, DSK_DTYPE_INT64, {0, bad, 5});
    const std::string value = std::to_string(bad);
    expect_invalid(with([&](auto& a) { a.s = s.dl(); }), {"slot_mapping"}, {value.c_str()});
    CHECK(cache.raw() == before);
  }
  // Shapes.
  Host c_wide({3, 2, 40}, DSK_DTYPE_F32);  // Dv + Dr != D
  expect_invalid(with([&](auto& a) { a.c = c_wide.dl(); }), {"c_kv|k_pe|kv_cache"});
  Host p_wide({3, 2, 16}, DSK_DTYPE_F32);
  expect_invalid(with([&](auto& a) { a.p = p_wide.dl(); }), {"k_pe|c_kv|kv_cache"});
  Host c_h({3, 1, 32}, DSK_DTYPE_F32);
  expect_invalid(with([&](auto& a) { a.c = c_h.dl(); }), {"c_kv|kv_cache"});
  Host c_2d({3, 32}, DSK_DTYPE_F32);  // 2-D needs Hkv 1
  expect_invalid(with([&](auto& a) { a.c = c_2d.dl(); }), {"c_kv|kv_cache"});
  Host p_t({4, 2, 8}, DSK_DTYPE_F32);
  expect_invalid(with([&](auto& a) { a.p = p_t.dl(); }), {"k_pe|c_kv"});
  Host s4 = ints({4}, DSK_DTYPE_INT64, {0, 1, 2, 3});
  expect_invalid(with([&](auto& a) { a.s = s4.dl(); }), {"slot_mapping|c_kv"});
  Host cache_odd({4, 24, 2, 40}, bf);
  expect_invalid(with([&](auto& a) { a.kv = cache_odd.dl(); }), {"kv_cache|page_size"});
  Host cache_3d({64, 2, 40}, bf);
  expect_invalid(with([&](auto& a) { a.kv = cache_3d.dl(); }), {"kv_cache"});
  // dtypes.
  Host s32 = ints({3}, DSK_DTYPE_INT32, {0, 17, 63});
  expect_invalid(with([&](auto& a) { a.s = s32.dl(); }), {"slot_mapping"});
  Host cache_f32({4, 16, 2, 40}, DSK_DTYPE_F32);
  expect_invalid(with([&](auto& a) { a.kv = cache_f32.dl(); }), {"kv_cache"});
  Host c_int({3, 2, 32}, DSK_DTYPE_INT32);
  expect_invalid(with([&](auto& a) { a.c = c_int.dl(); }), {"c_kv"});
  // NULLs.
  expect_invalid(with([&](auto& a) { a.c = nullptr; }), {"c_kv"});
  expect_invalid(with([&](auto& a) { a.p = nullptr; }), {"k_pe"});
  expect_invalid(with([&](auto& a) { a.s = nullptr; }), {"slot_mapping"});
  expect_invalid(with([&](auto& a) { a.kv = nullptr; }), {"kv_cache"});
  expect_invalid(dsk_mla_cache_append(nullptr, c_kv.dl(), k_pe.dl(), slots.dl(), cache.dl()),
                 {"ctx"});
  CHECK(cache.raw() == before);
  // The fixture itself is valid.
  MLA_REQUIRE_OK(with([](auto&) {}));
  CHECK(cache.raw() != before);
}
