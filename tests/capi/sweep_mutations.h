// sweep_mutations.h - how the bad-input sweep (sweep_test_util.h) varies one DLTensor argument:
// each mutation is a copy of the valid argument that differs from it in exactly one respect.
#ifndef DSK_TESTS_CAPI_SWEEP_MUTATIONS_H_
#define DSK_TESTS_CAPI_SWEEP_MUTATIONS_H_

#include <dsk/dsk.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "test_util.h"

namespace sweep {

// The mutations, in the order of kMutInfo below.
enum Mut : int {
  kNull,
  kNullData,
  kNullShape,
  kNdim9,
  kNdimNeg,
  kScalar,
  kExtraDim,
  kDropDim,
  kFirstPlus1,
  kLastPlus1,
  kLastMinus1,
  kNegShape,
  kHugeShape,
  kOverflowShape,
  kF64,
  kLanes2,
  kE5M2,
  kWrongClass,
  kOpenCL,
  kCuda,
  kCudaManaged,
  kHostDeviceId,
  kCudaHost,
  kNegStride,
  kMaxStride,
  kZeroStride,
  kOverlapStride,
  kHugeByteOffset,
  kMisaligned,
  kMinValue,
  kMaxValue,
  kMutCount
};

// What each mutation does, and whether its message must name the broken argument itself (it is
// wrong whatever the other arguments are; a shape or dtype mismatch may name either side).
struct MutInfo {
  const char* label;
  bool intrinsic;
};
constexpr MutInfo kMutInfo[] = {
    {"NULL tensor", true},
    {"NULL data", true},
    {"NULL shape", true},
    {"ndim 9", true},
    {"ndim -1", true},
    {"ndim 0", false},
    {"extra leading dim of 1", false},
    {"first dim dropped", false},
    {"shape[0] + 1", false},
    {"last dim + 1", false},
    {"last dim - 1", false},
    {"shape[0] = -1", true},
    {"shape[0] = 2^40 (bytes fit int64)", false},
    {"shape[0] = INT64_MAX (bytes overflow)", true},
    {"dtype f64 (unsupported)", true},
    {"lanes 2", true},
    {"dtype fp8_e5m2 (supported, used by no op)", false},
    {"int <-> float dtype", false},
    {"device kDLOpenCL", true},
    {"device kDLCUDA under a CPU context", false},
    {"device kDLCUDAManaged under a CPU context", false},
    {"kDLCPU with device_id 1", true},
    {"device kDLCUDAHost (host memory)", false},
    {"strides[0] = -1", true},
    {"stride INT64_MAX on a dim of size > 1", true},
    {"stride 0 on a dim of size > 1", false},  // a broadcast input; an overlapping output
    {"two dims of size > 1 with one stride", false},
    {"byte_offset 2^63", true},
    {"elements one byte off alignment", false},
    {"element 0 = the dtype's minimum", true},
    {"element 0 = the dtype's maximum", true}};
static_assert(sizeof(kMutInfo) / sizeof(kMutInfo[0]) == kMutCount, "one entry per mutation");

inline const char* label(int m) { return kMutInfo[m].label; }
inline bool intrinsic(int m, bool output) {
  return kMutInfo[m].intrinsic || (output && (m == kZeroStride || m == kOverlapStride));
}

inline int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

inline bool is_int(int32_t id) {
  return id == DSK_DTYPE_INT32 || id == DSK_DTYPE_INT64 || id == DSK_DTYPE_UINT8 ||
         id == DSK_DTYPE_BOOL;
}

// One tensor argument with its own exactly sized storage.
struct Arg {
  std::string name;  // as messages spell it ("x", "params->top_ks")
  bool output = false, optional = false;
  int32_t dtype_id = 0;
  std::vector<int64_t> shape;
  std::vector<uint8_t> mem;
  DLTensor dl{};
};

// A broken copy of an Arg's DLTensor, with whatever storage the break needs.
struct Mutant {
  bool null = false;
  std::vector<int64_t> shape, strides;
  std::vector<uint8_t> mem;
  DLTensor dl{};
  const DLTensor* get() const { return null ? nullptr : &dl; }
};

// Builds mutation m of a; NULL when m does not apply to this tensor.
inline std::unique_ptr<Mutant> mutate(const Arg& a, int m) {
  auto r = std::make_unique<Mutant>();
  r->dl = a.dl;
  r->shape = a.shape;
  const auto nd = static_cast<int32_t>(a.shape.size());
  std::vector<int64_t> rm(a.shape.size(), 1);
  for (int32_t i = nd - 2; i >= 0; --i) rm[i] = rm[i + 1] * a.shape[i + 1];
  int32_t big = -1, big2 = -1;  // the first two dims that are stepped along
  for (int32_t i = 0; i < nd; ++i) {
    if (a.shape[i] <= 1) continue;
    if (big < 0) {
      big = i;
    } else if (big2 < 0) {
      big2 = i;
    }
  }
  auto with_strides = [&](int32_t dim, int64_t stride) {
    r->strides = rm;
    r->strides[dim] = stride;
  };
  const size_t elem = dsk_dtype_size(a.dl.dtype);
  switch (m) {
    case kNull:
      r->null = true;
      break;
    case kNullData:
      r->dl.data = nullptr;
      break;
    case kNullShape:
      if (nd == 0) return nullptr;
      r->dl.shape = nullptr;
      return r;
    case kNdim9:
      r->shape.insert(r->shape.begin(), 9 - nd, 1);
      break;
    case kNdimNeg:
      r->dl.ndim = -1;
      return r;
    case kScalar:
      r->shape.clear();
      break;
    case kExtraDim:
      r->shape.insert(r->shape.begin(), 1);
      break;
    case kDropDim:
      if (nd < 2) return nullptr;
      r->shape.erase(r->shape.begin());
      break;
    case kFirstPlus1:
      r->shape[0] += 1;
      break;
    case kLastPlus1:
      if (nd < 2) return nullptr;  // the same as kFirstPlus1
      r->shape.back() += 1;
      break;
    case kLastMinus1:
      r->shape.back() -= 1;
      break;
    case kNegShape:
      r->shape[0] = -1;
      break;
    case kHugeShape:
      r->shape[0] = int64_t{1} << 40;
      break;
    case kOverflowShape:
      if (nd == 1 && elem == 1) return nullptr;  // INT64_MAX bytes still fit
      r->shape[0] = INT64_MAX;
      break;
    case kF64:
      r->dl.dtype = DLDataType{kDLFloat, 64, 1};
      break;
    case kLanes2:
      r->dl.dtype.lanes = 2;
      break;
    case kE5M2:
      r->dl.dtype = dsk_test::dtype(DSK_DTYPE_FP8_E5M2);
      break;
    case kWrongClass:
      r->dl.dtype = dsk_test::dtype(is_int(a.dtype_id) ? DSK_DTYPE_F32 : DSK_DTYPE_INT32);
      break;
    case kOpenCL:
      r->dl.device = DLDevice{kDLOpenCL, 0};
      break;
    case kCuda:
      r->dl.device = DLDevice{kDLCUDA, 0};
      break;
    case kCudaManaged:
      r->dl.device = DLDevice{kDLCUDAManaged, 0};
      break;
    case kHostDeviceId:
      r->dl.device = DLDevice{kDLCPU, 1};
      break;
    case kCudaHost:
      r->dl.device = DLDevice{kDLCUDAHost, 0};
      break;
    case kNegStride:
      with_strides(0, -1);
      break;
    case kMaxStride:
      if (big < 0) return nullptr;
      with_strides(big, INT64_MAX);
      break;
    case kZeroStride:
      if (big < 0) return nullptr;
      with_strides(big, 0);
      break;
    case kOverlapStride:
      if (big2 < 0) return nullptr;
      with_strides(big, rm[big2]);
      break;
    case kHugeByteOffset:
      r->dl.byte_offset = uint64_t{1} << 63;
      break;
    case kMisaligned:
      if (elem < 2) return nullptr;
      r->mem.assign(a.mem.size() + 1, 0);
      if (!a.mem.empty()) std::memcpy(r->mem.data() + 1, a.mem.data(), a.mem.size());
      r->dl.data = r->mem.data();
      r->dl.byte_offset = 1;
      break;
    case kMinValue:
    case kMaxValue: {
      if (a.output || (a.dtype_id != DSK_DTYPE_INT32 && a.dtype_id != DSK_DTYPE_INT64)) {
        return nullptr;
      }
      r->mem = a.mem;
      const int64_t v64 = m == kMinValue ? INT64_MIN : INT64_MAX;
      const int32_t v32 = m == kMinValue ? INT32_MIN : INT32_MAX;
      std::memcpy(r->mem.data(),
                  a.dtype_id == DSK_DTYPE_INT64 ? static_cast<const void*>(&v64)
                                                : static_cast<const void*>(&v32),
                  elem);
      r->dl.data = r->mem.data();
      break;
    }
    default:
      return nullptr;
  }
  r->dl.ndim = static_cast<int32_t>(r->shape.size());
  r->dl.shape = r->shape.data();
  if (!r->strides.empty()) r->dl.strides = r->strides.data();
  return r;
}

}  // namespace sweep

#endif  // DSK_TESTS_CAPI_SWEEP_MUTATIONS_H_
