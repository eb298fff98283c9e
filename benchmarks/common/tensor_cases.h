// tensor_cases.h - the tensor copy/convert/fill cases, shared by the CPU and CUDA suites so both
// measure exactly the same operations under the same names.
#ifndef DSK_BENCHMARKS_COMMON_TENSOR_CASES_H_
#define DSK_BENCHMARKS_COMMON_TENSOR_CASES_H_

#include <benchmark/benchmark.h>

#include <cstdint>
#include <dsk/dsk.hpp>

namespace dsk::bench {

enum class TensorOpKind { kCopy, kTranspose, kFill, kUniform, kNormal };

struct TensorCase {
  const char* name;
  TensorOpKind kind;
  int32_t src_dtype;  // DSK_DTYPE_*; 0 for fills, which read nothing
  int32_t dst_dtype;
};

inline constexpr TensorCase kTensorCases[] = {
    {"copy/f32", TensorOpKind::kCopy, DSK_DTYPE_F32, DSK_DTYPE_F32},
    {"convert/f32_to_bf16", TensorOpKind::kCopy, DSK_DTYPE_F32, DSK_DTYPE_BF16},
    {"convert/bf16_to_f32", TensorOpKind::kCopy, DSK_DTYPE_BF16, DSK_DTYPE_F32},
    {"convert/f32_to_fp8_e4m3fn", TensorOpKind::kCopy, DSK_DTYPE_F32, DSK_DTYPE_FP8_E4M3FN},
    {"transpose/f32", TensorOpKind::kTranspose, DSK_DTYPE_F32, DSK_DTYPE_F32},
    {"fill/f32", TensorOpKind::kFill, 0, DSK_DTYPE_F32},
    {"fill/bf16", TensorOpKind::kFill, 0, DSK_DTYPE_BF16},
    {"fill_random/uniform_f32", TensorOpKind::kUniform, 0, DSK_DTYPE_F32},
    {"fill_random/normal_f32", TensorOpKind::kNormal, 0, DSK_DTYPE_F32},
    {"fill_random/normal_bf16", TensorOpKind::kNormal, 0, DSK_DTYPE_BF16},
};

// Element counts: 2^10 (launch/call overhead) to 2^26 (256 MiB of f32, far beyond any cache), a
// factor of 16 apart so that a default run stays short. Use as ->Apply(tensor_sizes): Google
// Benchmark's Range() would step through powers of the multiplier (2^12, 2^16, ...) instead.
inline constexpr int64_t kMinElements = int64_t{1} << 10;
inline constexpr int64_t kMaxElements = int64_t{1} << 26;
inline constexpr int64_t kElementsFactor = 16;

inline void tensor_sizes(benchmark::internal::Benchmark* b) {
  b->ArgName("n");
  for (int64_t n = kMinElements; n <= kMaxElements; n *= kElementsFactor) b->Arg(n);
}

// The rows of a rows x cols matrix of n elements that is as square as a power-of-two row count
// allows, so the transpose case walks a real 2-D layout at every size.
inline int64_t square_rows(int64_t n) {
  int64_t rows = 1;
  while (rows * rows * 4 <= n && n % (rows * 2) == 0) rows *= 2;
  return rows;
}

// One case at one size on one context: the tensors are created and filled by the constructor
// (which throws dsk::Error), so that the timed loop makes exactly one dsk call per iteration.
class TensorOp {
 public:
  TensorOp(Context& ctx, const TensorCase& c, int64_t n) : ctx_(ctx), kind_(c.kind), numel_(n) {
    const DLDataType dst_dtype = dtype(c.dst_dtype);
    const int64_t rows = square_rows(n);
    const int64_t cols = n / rows;
    // The transpose writes a cols x rows matrix; every other case is flat.
    dst_ = c.kind == TensorOpKind::kTranspose ? Tensor::empty(ctx, {cols, rows}, dst_dtype)
                                              : Tensor::empty(ctx, {n}, dst_dtype);
    bytes_ = n * static_cast<int64_t>(dsk_dtype_size(dst_dtype));
    if (c.src_dtype != 0) {
      const DLDataType src_dtype = dtype(c.src_dtype);
      Tensor src = c.kind == TensorOpKind::kTranspose ? Tensor::empty(ctx, {rows, cols}, src_dtype)
                                                      : Tensor::empty(ctx, {n}, src_dtype);
      // Values spread over [-2, 2) so conversions see signs, rounding and (for fp8) subnormals
      // rather than a constant that a branchy converter would handle unrealistically fast.
      fill_uniform(ctx, src, /*seed=*/1, -2.0, 2.0);
      // The transpose reads src column by column: a strided view of the row-major matrix.
      src_ = c.kind == TensorOpKind::kTranspose ? src.view({cols, rows}, {1, cols}) : src;
      bytes_ += n * static_cast<int64_t>(dsk_dtype_size(src_dtype));
    }
    check(dsk_random_params_init(&random_));
    random_.seed = 2;
    if (c.kind == TensorOpKind::kNormal) random_.distribution = DSK_RANDOM_NORMAL;
    // Touch the destination once so the first timed iteration does not pay for page faults or
    // lazy kernel loading; synchronize so setup work never leaks into the first measurement.
    check((*this)());
    ctx.synchronize();
  }

  // One operation; asynchronous on CUDA contexts.
  dsk_status operator()() const {
    switch (kind_) {
      case TensorOpKind::kCopy:
      case TensorOpKind::kTranspose:
        return dsk_copy(ctx_.get(), src_, dst_);
      case TensorOpKind::kFill:
        return dsk_fill(ctx_.get(), dst_, 1.5);
      case TensorOpKind::kUniform:
      case TensorOpKind::kNormal:
        return dsk_fill_random(ctx_.get(), dst_, &random_);
    }
    return DSK_ERR_INTERNAL;
  }

  // Bytes one operation reads plus bytes it writes.
  int64_t bytes() const { return bytes_; }
  int64_t items() const { return numel_; }

 private:
  Context& ctx_;
  TensorOpKind kind_;
  int64_t numel_;
  int64_t bytes_ = 0;
  Tensor src_;
  Tensor dst_;
  dsk_random_params random_{};
};

}  // namespace dsk::bench

#endif  // DSK_BENCHMARKS_COMMON_TENSOR_CASES_H_
