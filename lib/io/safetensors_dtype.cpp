#include "io/safetensors_dtype.h"

#include "dsk/dsk_dtype.h"

namespace dsk {
namespace io {

namespace {

constexpr DLDataType dl(uint8_t code, uint8_t bits) { return DLDataType{code, bits, 1}; }
constexpr DLDataType kNoDl{0, 0, 0};

// The format's list (huggingface/safetensors, Dtype). F8_E4M3 is the OCP "fn" variant (no
// infinities, NaN = S.1111.111), the one DeepSeek's checkpoints and PyTorch's float8_e4m3fn use.
constexpr SafetensorsDtype kDtypes[] = {
    {"BOOL", 8, dl(kDLBool, 8), DSK_DTYPE_BOOL},
    {"F4", 4, kNoDl, 0},
    {"F6_E2M3", 6, kNoDl, 0},
    {"F6_E3M2", 6, kNoDl, 0},
    {"U8", 8, dl(kDLUInt, 8), DSK_DTYPE_UINT8},
    {"I8", 8, dl(kDLInt, 8), 0},
    {"F8_E5M2", 8, dl(kDLFloat8_e5m2, 8), DSK_DTYPE_FP8_E5M2},
    {"F8_E4M3", 8, dl(kDLFloat8_e4m3fn, 8), DSK_DTYPE_FP8_E4M3FN},
    {"F8_E8M0", 8, dl(kDLFloat8_e8m0fnu, 8), 0},
    {"I16", 16, dl(kDLInt, 16), 0},
    {"U16", 16, dl(kDLUInt, 16), 0},
    {"F16", 16, dl(kDLFloat, 16), DSK_DTYPE_F16},
    {"BF16", 16, dl(kDLBfloat, 16), DSK_DTYPE_BF16},
    {"I32", 32, dl(kDLInt, 32), DSK_DTYPE_INT32},
    {"U32", 32, dl(kDLUInt, 32), 0},
    {"F32", 32, dl(kDLFloat, 32), DSK_DTYPE_F32},
    {"C64", 64, dl(kDLComplex, 64), 0},
    {"F64", 64, dl(kDLFloat, 64), 0},
    {"I64", 64, dl(kDLInt, 64), DSK_DTYPE_INT64},
    {"U64", 64, dl(kDLUInt, 64), 0},
};

}  // namespace

const SafetensorsDtype* find_safetensors_dtype(const std::string& name) noexcept {
  for (const SafetensorsDtype& d : kDtypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

std::string safetensors_dtype_names() {
  std::string out;
  for (const SafetensorsDtype& d : kDtypes) {
    if (!out.empty()) out += ", ";
    out += d.name;
  }
  return out;
}

}  // namespace io
}  // namespace dsk
