// vector_ext.h - the shared preamble of CPU kernels written with GCC/Clang vector extensions and
// compiled as several instruction-set clones (gemm_tile_kernels.h, mla_prefill.cpp).
//
// DSK_VEC_INLINE forces inlining, so every helper is compiled inside the clone that calls it;
// DSK_VEC_X86 says whether target attributes for x86 clones are available.
//
// The helpers pass and return vectors by value; they have internal linkage and are always inlined
// into one clone, so the -Wpsabi note about calling conventions does not apply. GCC emits it at
// the end of the translation unit, so the pragma (in force from the include on) must stay in
// force to the end: include this header only from kernel files.
#ifndef DSK_LIB_CPU_VECTOR_EXT_H_
#define DSK_LIB_CPU_VECTOR_EXT_H_

#if defined(__GNUC__) || defined(__clang__)
#  define DSK_VEC_INLINE inline __attribute__((always_inline))
#else
#  define DSK_VEC_INLINE inline
#endif

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#  define DSK_VEC_X86 1
#else
#  define DSK_VEC_X86 0
#endif

#if defined(__GNUC__)  // GCC and Clang
#  pragma GCC diagnostic ignored "-Wpsabi"
#endif

#endif  // DSK_LIB_CPU_VECTOR_EXT_H_
