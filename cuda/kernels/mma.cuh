// mma.cuh - the tensor-core MMA shared by the sm80+ attention kernels (MLA decode and prefill).
//
// mma.sync m16n8k16 with f32 accumulation (PTX ISA fragment layouts: groupID g = lane / 4,
// t = lane % 4; A regs: (row g, cols 2t..2t+1), (row g+8, cols 2t..), (row g, cols 2t+8..),
// (row g+8, cols 2t+8..); B regs: (k 2t..2t+1, col g), (k 2t+8.., col g); C: (row g, cols 2t,
// 2t+1), (row g+8, cols 2t, 2t+1); the lower column / k index in the lower 16 bits).
#ifndef DSK_CUDA_KERNELS_MMA_CUH_
#define DSK_CUDA_KERNELS_MMA_CUH_

#include <stdint.h>

namespace dsk {
namespace cuda {

// c += a (16x16, row major) * b (16x8, column major); IS_BF16 picks bf16 or f16 inputs.
template <bool IS_BF16>
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (IS_BF16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
#else
  (void)c;
  (void)a;
  (void)b0;
  (void)b1;
  __trap();  // never built: the module targets sm_80 and later
#endif
}

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_KERNELS_MMA_CUH_
