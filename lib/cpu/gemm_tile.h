// gemm_tile.h - register tiles of the CPU GEMM and the fixed order of their float operations.
//
// Every element D[i, j] = sum_k A[i, k] B[k, j] is computed the same way, whatever the shape of
// the call, the tile it lands in, the thread that runs it or the instruction set:
//  - 16 lane sums: lane l adds the products of k = l, l + 16, l + 32, ... in increasing k, each
//    step `p = p + a * b` with the product rounded to f32 first (no FMA), starting from +0; past K
//    the operands count as +0;
//  - then the fixed tree p[l] += p[l + 8], p[l] += p[l + 4], p[l] += p[l + 2], p[l] += p[l + 1];
//    lane 0 is the sum.
// So a row of D never depends on the other rows or columns of the call (batch invariance, as
// design.md asks of every op), on DSK_NUM_THREADS, or on the machine: the AVX-512, AVX2 and
// baseline (SSE2) clones below run the same IEEE operations per element.
#ifndef DSK_LIB_CPU_GEMM_TILE_H_
#define DSK_LIB_CPU_GEMM_TILE_H_

#include <stdint.h>

namespace dsk {
namespace cpu {

constexpr int64_t kGemmLanes = 16;
constexpr int kGemmMaxTileRows = 4;
constexpr int kGemmMaxTileCols = 6;

// How B's elements are stored. fp8: e4m3fn codes with one f32 scale per 128 k (a weight's
// 128 x 128 block scales), each element taken as e4m3fn_to_f32(q) * scale rounded to f32 — the
// value dsk_dequant_fp8_weight gives — before the dot product.
enum GemmBType { kGemmBF32 = 0, kGemmBBf16 = 1, kGemmBFp8 = 2 };

// One k block of an mr x nr tile of dot products (mr, nr up to the kernel's tile size).
struct GemmTile {
  const float* a[kGemmMaxTileRows];  // row i's first element of the block; unit stride along k
  const char* b[kGemmMaxTileCols];   // column j's first element; unit stride along k
  // fp8 B: column j's scale of k in [128 q, 128 q + 128) (k counted from the whole product's
  // first k) is b_scale[j][q * b_scale_step]; the block starts at k = k0 (a multiple of 16).
  const float* b_scale[kGemmMaxTileCols] = {};
  int64_t b_scale_step = 0;
  int64_t k0 = 0;
  int64_t kc = 0;            // the block's length: a multiple of 16 unless it is the last
  bool first = true;         // start the lane sums from +0 (else from `partial`)
  bool last = true;          // reduce into `sums` (else keep the lane sums in `partial`)
  float* partial = nullptr;  // [mr][nr][16] lane sums between k blocks
  float* sums = nullptr;     // sums[i * ld + j] = the finished dot product
  int64_t ld = 0;
};

// One row of A against up to 16 columns of a B with unit stride along N (B[k, j0 .. j0 + 16)
// contiguous): the same lane sums, held per lane l as a vector over the 16 columns (lane l of
// column j is acc_l[j]), so every element gets exactly the operations of GemmTile.
struct GemmRowTile {
  const float* a = nullptr;  // the row; unit stride along k
  const char* b = nullptr;   // B[0, j0] (f32, bf16 or fp8)
  int64_t b_ld = 0;          // bytes from B[k, j] to B[k + 1, j]
  int64_t k = 0;
  int cols = 16;          // 1..16
  float* sums = nullptr;  // sums[j], j < cols
  // fp8 B: the 16 columns share one scale per 128 rows of the weight; row k's is
  // b_scale[((k_phase + k) >> 7) * b_scale_step] (k_phase: k = 0's offset in its 128-row block).
  const float* b_scale = nullptr;
  int64_t b_scale_step = 0;
  int64_t k_phase = 0;
};

struct GemmTileKernel {
  const char* name;  // "avx512", "avx2" or "base"
  int rows;          // the register tile it is fastest with
  int cols;
  void (*run)(const GemmTile& t, int mr, int nr, int b_type);  // b_type: GemmBType
  void (*run_row)(const GemmRowTile& t, int b_type);           // GemmBType
  // out[i] = e4m3fn_to_f32(q[i]) * scale[((phase + i) >> 7) * step] for i < n (the value
  // dsk_dequant_fp8_weight gives), phase % 16 == 0: a column of an fp8 B, converted for blocks.
  void (*dequant_fp8)(const uint8_t* q, int64_t n, const float* scale, int64_t step, int64_t phase,
                      float* out);
  // The f32 values a bf16 or fp8 row tile multiplies (row k of t's columns; fp8 times its scale)
  // into out[16 k + j] for k < t.k, j < 16 (columns past t.cols hold whatever), so that several
  // rows of A run f32 row tiles over one conversion. b_type: kGemmBBf16 or kGemmBFp8.
  void (*row_panel)(const GemmRowTile& t, int b_type, float* out);
};

// The fastest kernel this CPU runs.
const GemmTileKernel& gemm_tile_kernel();

// Every kernel this CPU runs (tests check that they agree bit for bit); returns the count.
int gemm_tile_kernels(const GemmTileKernel** out, int max);

}  // namespace cpu
}  // namespace dsk

#endif  // DSK_LIB_CPU_GEMM_TILE_H_
