// The CPU GEMM's register tiles (lib/cpu/gemm_tile.h): every kernel this CPU runs gives exactly
// the bits of the documented order, written out independently here in scalar code, for every
// tile size, k tails, k blocks continued through the lane-sum buffer, and bf16 and fp8 columns.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "common/convert.h"
#include "cpu/gemm_tile.h"

namespace {

using dsk::cpu::GemmRowTile;
using dsk::cpu::GemmTile;
using dsk::cpu::GemmTileKernel;

// The order of gemm_tile.h: 16 lane sums over k = l, l + 16, ... (product rounded, then added),
// then p[l] += p[l + 8], += p[l + 4], += p[l + 2], += p[l + 1].
float canonical_dot(const float* a, const float* b, int64_t k) {
  float p[16] = {};
  for (int64_t i = 0; i < k; ++i) {
    const float prod = a[i] * b[i];
    p[i % 16] = p[i % 16] + prod;
  }
  // Lanes past K add +0 * +0 in the kernels: p + (+0) turns a -0 lane into +0.
  const int64_t padded = (k + 15) / 16 * 16;
  for (int64_t i = k; i < padded; ++i) p[i % 16] = p[i % 16] + 0.0f;
  for (int w = 8; w >= 1; w /= 2) {
    for (int l = 0; l < w; ++l) p[l] = p[l] + p[l + w];
  }
  return p[0];
}

bool same_bits(float x, float y) { return std::memcmp(&x, &y, sizeof(float)) == 0; }

TEST_CASE("core.gemm_tile every kernel follows the canonical order bit for bit") {
  const GemmTileKernel* kernels[4];
  const int count = dsk::cpu::gemm_tile_kernels(kernels, 4);
  REQUIRE(count >= 1);
  MESSAGE("kernels on this CPU: " << count << ", best " << kernels[0]->name);
  std::mt19937 rng(5);
  // Wide exponents so that rounding differences would show.
  std::uniform_real_distribution<float> mant(-1.0f, 1.0f);
  std::uniform_int_distribution<int> expo(-12, 12);
  for (int q = 0; q < count; ++q) {
    const GemmTileKernel& kern = *kernels[q];
    CAPTURE(kern.name);
    for (int btype : {dsk::cpu::kGemmBF32, dsk::cpu::kGemmBBf16, dsk::cpu::kGemmBFp8}) {
      for (int64_t k : {1, 7, 16, 17, 64, 255, 256, 257, 600}) {
        for (int mr = 1; mr <= kern.rows; ++mr) {
          for (int nr = 1; nr <= kern.cols; ++nr) {
            CAPTURE(btype);
            CAPTURE(k);
            CAPTURE(mr);
            CAPTURE(nr);
            std::vector<float> a(static_cast<size_t>(mr * k));
            std::vector<float> b(static_cast<size_t>(nr * k));
            std::vector<uint16_t> bh(b.size());
            std::vector<uint8_t> bq(b.size());
            // fp8: one scale per 128 k of each column (all columns share a 128-column block).
            std::vector<float> scale(static_cast<size_t>((k + 127) / 128));
            for (float& v : scale) v = std::ldexp(std::fabs(mant(rng)) + 0.5f, expo(rng));
            std::uniform_int_distribution<int> code(0, 253);
            for (float& v : a) v = std::ldexp(mant(rng), expo(rng));
            for (size_t i = 0; i < b.size(); ++i) {
              b[i] = std::ldexp(mant(rng), expo(rng));
              bh[i] = dsk::f32_to_bf16(b[i]);
              if (btype == dsk::cpu::kGemmBBf16) b[i] = dsk::bf16_to_f32(bh[i]);
              // Every code but the two NaNs (0x7F, 0xFF): subnormals and both zeros included.
              const int c = code(rng);
              bq[i] = static_cast<uint8_t>(c >= 0x7F ? c + 1 : c);
              if (btype == dsk::cpu::kGemmBFp8) {
                b[i] = dsk::e4m3fn_to_f32(bq[i]) * scale[i % static_cast<size_t>(k) / 128];
              }
            }
            // k blocks of 256 through the lane-sum buffer, as lib/cpu/gemm.cpp runs them.
            std::vector<float> partial(static_cast<size_t>(mr * nr * 16));
            std::vector<float> sums(static_cast<size_t>(mr * nr), -1.0f);
            for (int64_t kb = 0; kb < k; kb += 256) {
              GemmTile t;
              for (int i = 0; i < mr; ++i) t.a[i] = a.data() + i * k + kb;
              for (int j = 0; j < nr; ++j) {
                t.b[j] = btype == dsk::cpu::kGemmBBf16
                             ? reinterpret_cast<const char*>(bh.data() + j * k + kb)
                         : btype == dsk::cpu::kGemmBFp8
                             ? reinterpret_cast<const char*>(bq.data() + j * k + kb)
                             : reinterpret_cast<const char*>(b.data() + j * k + kb);
                t.b_scale[j] = scale.data();
              }
              t.b_scale_step = 1;
              t.k0 = kb;
              t.kc = std::min<int64_t>(256, k - kb);
              t.first = kb == 0;
              t.last = kb + t.kc >= k;
              t.partial = partial.data();
              t.sums = sums.data();
              t.ld = nr;
              kern.run(t, mr, nr, btype);
            }
            int bad = 0;
            for (int i = 0; i < mr; ++i) {
              for (int j = 0; j < nr; ++j) {
                const float want = canonical_dot(a.data() + i * k, b.data() + j * k, k);
                if (!same_bits(sums[static_cast<size_t>(i * nr + j)], want)) ++bad;
              }
            }
            CHECK(bad == 0);
          }
        }
      }
    }
  }
}

// Every one of the 256 e4m3fn codes, NaNs included, through the fp8 column and row tiles of each
// kernel: a one-term dot product 1 * (value * 1) is the value itself (+0 for -0: the lane tree adds
// +0), so each code's conversion shows alone.
TEST_CASE("core.gemm_tile every fp8 code converts to e4m3fn_to_f32 in every kernel") {
  const GemmTileKernel* kernels[4];
  const int count = dsk::cpu::gemm_tile_kernels(kernels, 4);
  const float one = 1.0f;
  const float scale = 1.0f;
  for (int q = 0; q < count; ++q) {
    const GemmTileKernel& kern = *kernels[q];
    CAPTURE(kern.name);
    int bad = 0;
    for (int c0 = 0; c0 < 256; c0 += 16) {
      uint8_t codes[16];
      for (int j = 0; j < 16; ++j) codes[j] = static_cast<uint8_t>(c0 + j);
      // Row tile: one row of 16 codes (k = 1).
      GemmRowTile r;
      r.a = &one;
      r.b = reinterpret_cast<const char*>(codes);
      r.b_ld = 16;
      r.k = 1;
      r.cols = 16;
      float row_sums[16];
      r.sums = row_sums;
      r.b_scale = &scale;
      r.b_scale_step = 1;
      kern.run_row(r, dsk::cpu::kGemmBFp8);
      for (int j = 0; j < 16; ++j) {
        const float v = dsk::e4m3fn_to_f32(codes[j]);
        const float want = canonical_dot(&one, &v, 1);
        // Column tile: one column holding the code (k = 1).
        GemmTile t;
        t.a[0] = &one;
        t.b[0] = reinterpret_cast<const char*>(codes + j);
        t.b_scale[0] = &scale;
        t.b_scale_step = 1;
        t.kc = 1;
        float col_sum = -1.0f;
        t.sums = &col_sum;
        t.ld = 1;
        kern.run(t, 1, 1, dsk::cpu::kGemmBFp8);
        for (float got : {row_sums[j], col_sum}) {
          // NaN codes too: 0x7FC00000 with the code's sign, times a finite scale, keeps its bits.
          const bool ok = same_bits(got, want);
          if (!ok) {
            ++bad;
            MESSAGE("code " << int{codes[j]} << ": " << got << ", expected " << want);
          }
        }
      }
    }
    CHECK(bad == 0);
  }
}

TEST_CASE("core.gemm_tile fp8 column conversion gives dsk_dequant_fp8_weight's values") {
  const GemmTileKernel* kernels[4];
  const int count = dsk::cpu::gemm_tile_kernels(kernels, 4);
  std::mt19937 rng(8);
  std::uniform_int_distribution<int> code(0, 255);
  std::uniform_real_distribution<float> mant(0.5f, 1.0f);
  std::uniform_int_distribution<int> expo(-20, 20);
  for (int q = 0; q < count; ++q) {
    const GemmTileKernel& kern = *kernels[q];
    CAPTURE(kern.name);
    for (int64_t n : {1, 15, 16, 17, 300}) {
      for (int64_t phase : {0, 16, 112}) {
        CAPTURE(n);
        CAPTURE(phase);
        std::vector<uint8_t> codes(static_cast<size_t>(n));
        for (uint8_t& c : codes) c = static_cast<uint8_t>(code(rng));
        const int64_t step = 3;
        std::vector<float> scales(static_cast<size_t>((phase + n + 127) / 128 * step));
        for (float& v : scales) v = std::ldexp(mant(rng), expo(rng));
        std::vector<float> out(static_cast<size_t>(n + 1), -7.0f);
        kern.dequant_fp8(codes.data(), n, scales.data(), step, phase, out.data());
        int bad = 0;
        for (int64_t i = 0; i < n; ++i) {
          const float want = dsk::e4m3fn_to_f32(codes[static_cast<size_t>(i)]) *
                             scales[static_cast<size_t>((phase + i) / 128 * step)];
          const float got = out[static_cast<size_t>(i)];
          if (!same_bits(got, want)) ++bad;  // NaN codes included (their bits, sign and all)
        }
        CHECK(bad == 0);
        CHECK(out[static_cast<size_t>(n)] == -7.0f);  // nothing past n
      }
    }
  }
}

TEST_CASE("core.gemm_tile row tiles over a B with unit stride along N give the same bits") {
  const GemmTileKernel* kernels[4];
  const int count = dsk::cpu::gemm_tile_kernels(kernels, 4);
  std::mt19937 rng(6);
  std::uniform_real_distribution<float> mant(-1.0f, 1.0f);
  std::uniform_int_distribution<int> expo(-12, 12);
  std::uniform_int_distribution<int> code(0, 255);
  for (int q = 0; q < count; ++q) {
    const GemmTileKernel& kern = *kernels[q];
    CAPTURE(kern.name);
    for (int btype : {dsk::cpu::kGemmBF32, dsk::cpu::kGemmBBf16, dsk::cpu::kGemmBFp8}) {
      for (int64_t k : {1, 2, 15, 16, 33, 300}) {
        for (int cols : {1, 5, 16}) {
          // fp8: row k's scale is that of weight row k_phase + k's 128-row block.
          for (int64_t k_phase : {0, 77}) {
            if (btype != dsk::cpu::kGemmBFp8 && k_phase != 0) continue;
            CAPTURE(btype);
            CAPTURE(k);
            CAPTURE(cols);
            CAPTURE(k_phase);
            const int64_t ldb = cols + 3;  // B [k, ldb] row-major, columns [0, cols) used
            std::vector<float> a(static_cast<size_t>(k));
            std::vector<float> b(static_cast<size_t>(k * ldb));
            std::vector<uint16_t> bh(b.size());
            std::vector<uint8_t> bq(b.size());
            // Scales 2 apart in memory (b_scale_step), one per 128 weight rows.
            const int64_t step = 2;
            std::vector<float> scales(static_cast<size_t>((k_phase + k + 127) / 128 * step));
            for (float& v : scales) v = std::ldexp(mant(rng), expo(rng));
            for (float& v : a) v = std::ldexp(mant(rng), expo(rng));
            // Exact zeros of both signs too: a lane sum of -0 products must come out as the
            // column tiles give it.
            for (size_t i = 0; i < b.size(); ++i) {
              b[i] = i % 7 == 3 ? -0.0f : std::ldexp(mant(rng), expo(rng));
              bh[i] = dsk::f32_to_bf16(b[i]);
              if (btype == dsk::cpu::kGemmBBf16) b[i] = dsk::bf16_to_f32(bh[i]);
              if (btype == dsk::cpu::kGemmBFp8) {
                // Every finite code (NaN codes 0x7F / 0xFF would make every sum NaN).
                int c = code(rng);
                if ((c & 0x7F) == 0x7F) c ^= 1;
                bq[i] = static_cast<uint8_t>(c);
                const int64_t row = static_cast<int64_t>(i) / ldb;
                b[i] = dsk::e4m3fn_to_f32(bq[i]) *
                       scales[static_cast<size_t>((k_phase + row) / 128 * step)];
              }
            }
            GemmRowTile t;
            t.a = a.data();
            t.b = btype == dsk::cpu::kGemmBBf16  ? reinterpret_cast<const char*>(bh.data())
                  : btype == dsk::cpu::kGemmBFp8 ? reinterpret_cast<const char*>(bq.data())
                                                 : reinterpret_cast<const char*>(b.data());
            t.b_ld = ldb * (btype == dsk::cpu::kGemmBBf16  ? 2
                            : btype == dsk::cpu::kGemmBFp8 ? 1
                                                           : 4);
            t.k = k;
            t.cols = cols;
            t.b_scale = scales.data();
            t.b_scale_step = step;
            t.k_phase = k_phase;
            std::vector<float> sums(16, -1.0f);
            t.sums = sums.data();
            kern.run_row(t, btype);
            int bad = 0;
            for (int j = 0; j < cols; ++j) {
              std::vector<float> col(static_cast<size_t>(k));
              for (int64_t i = 0; i < k; ++i)
                col[static_cast<size_t>(i)] = b[static_cast<size_t>(i * ldb + j)];
              if (!same_bits(sums[static_cast<size_t>(j)], canonical_dot(a.data(), col.data(), k)))
                ++bad;
            }
            CHECK(bad == 0);
            // Only `cols` sums are written.
            if (cols < 16) CHECK(sums[static_cast<size_t>(cols)] == -1.0f);
          }
        }
      }
    }
  }
}

}  // namespace
