// mla_decode_kernels.h - the inner loops of the CPU absorbed MLA decode (lib/cpu/mla_decode.cpp),
// one set per instruction set, chosen once at run time.
//
// The decode works on one "work item" at a time: the query rows of one request that read one
// cached head (R = S * Hq / Hkv rows, or a block of at most kMlaMaxRows of them) against one
// contiguous range of that request's keys, in tiles of kMlaTile keys. pack_q converts the item's
// query rows once; then, per tile,
// - load_tile converts the tile's cached rows to f32: kf[j][d] (ldk floats per row);
// - qk computes the scores in "lanes over rows" form: st[j][r] = scale * sum_d qt[d][r] kf[j][d];
// - softmax updates every row's online softmax (m, l, alpha) and turns st into p = exp(s - m);
// - pv accumulates o[r][:] = alpha[r] * o[r][:] + sum_j st[j][r] * kf[j][:].
// qt is the query block transposed to [D][ldr] f32 (ldr = rows rounded up to 16, the padding rows
// zero); every per-row array (m, l, alpha, lim) has ldr entries. All math is f32 and the order of
// every sum is fixed by these loops (never by threads), so a kernel set always gives the same bits.
// The AVX-512 set uses FMA, the portable set separate multiplies and adds; both use Cephes' expf
// polynomial, so the two sets may differ in the last bits (both are within f32 rounding of the
// exact result).
#ifndef DSK_LIB_CPU_MLA_DECODE_KERNELS_H_
#define DSK_LIB_CPU_MLA_DECODE_KERNELS_H_

#include <cstdint>

namespace dsk {
namespace cpu {

// Keys per tile; a multiple of every kernel's key block (4 portable, 6 and 12 AVX-512).
constexpr int64_t kMlaTile = 48;
// Key blocks of qk: the tile's key count is padded (zero rows of kf) up to a multiple of this.
constexpr int64_t kMlaKeyBlock = 12;
// Most query rows in one work item (the f32 query block and accumulator then fit in L2).
constexpr int64_t kMlaMaxRows = 128;

struct MlaKernels {
  const char* name;
  // qt[c * ldr + i] = q_i[c] in f32 for i < nr (qrows[i]: D contiguous values of dtype bf16 or
  // f16) and 0 for nr <= i < ldr (ldr a multiple of 16).
  void (*pack_q)(const char* const* qrows, int64_t nr, int64_t d, int32_t dtype, float* qt,
                 int64_t ldr);
  // Converts n cached rows (rows[j], D elements of dtype bf16 or f16, contiguous) into
  // kf[j * ldk + d]; columns D .. ldk-1 of those rows and rows n .. n_fill-1 become zero.
  void (*load_tile)(const char* const* rows, int64_t n, int64_t n_fill, int32_t dtype, int64_t d,
                    float* kf, int64_t ldk);
  // st[j * ldr + r] = scale * sum_{d < D} qt[d * ldr + r] * kf[j * ldk + d] for j < nk (a multiple
  // of kMlaKeyBlock) and r < ldr (a multiple of 16).
  void (*qk)(const float* qt, int64_t ldr, const float* kf, int64_t ldk, int64_t d, int64_t nk,
             float scale, float* st);
  // Online softmax over keys key0 .. key0+nk-1 (nk >= 1) of rows r < ldr: key key0 + j counts for
  // row r only when key0 + j < lim[r] (checked only when `masked`, else every key counts). Sets
  // m[r] to the new running max, alpha[r] = exp(m_old - m_new) (0 when m_old = -inf), st[j][r] to
  // p = exp(s - m_new) (0 for keys that do not count) and l[r] = l[r] * alpha[r] + sum_j p. Rows
  // whose max is still -inf keep m = -inf, get p = 0 and alpha = 0 (l and o stay 0).
  void (*softmax)(float* st, int64_t ldr, int64_t nk, int64_t key0, const int32_t* lim, bool masked,
                  float* m, float* l, float* alpha);
  // o[r * ldo + c] = alpha[r] * o[r * ldo + c] + sum_{j < nk} st[j * ldr + r] * kf[j * ldk + c]
  // (j in order) for r < rows and c < dvp (a multiple of 16, <= ldk).
  void (*pv)(float* o, int64_t ldo, int64_t rows, const float* alpha, const float* st, int64_t ldr,
             const float* kf, int64_t ldk, int64_t nk, int64_t dvp);
};

// The portable set (any architecture).
const MlaKernels& mla_kernels_generic();
// The AVX-512 (F, BW, VL, DQ, FMA) set, or nullptr when this build or this CPU has none.
const MlaKernels* mla_kernels_avx512();

// Which set mla_decode uses: the fastest this CPU runs, unless a test forced one.
enum class MlaIsa { kAuto, kGeneric, kAvx512 };
// For tests; a set the CPU lacks falls back to the next slower one.
void mla_decode_force_isa(MlaIsa isa);
const MlaKernels& mla_kernels();

}  // namespace cpu
}  // namespace dsk

#endif  // DSK_LIB_CPU_MLA_DECODE_KERNELS_H_
