#include "core/dtype_info.h"

#include "common/convert.h"
#include "core/error.h"

namespace dsk {
namespace {

const char* const kNames[DSK_DTYPE_COUNT] = {"unsupported", "f32",   "f16",   "bf16",  "fp8_e4m3fn",
                                             "fp8_e5m2",    "int32", "int64", "uint8", "bool"};

const DLDataType kDtypes[DSK_DTYPE_COUNT] = {
    {0, 0, 0},          {kDLFloat, 32, 1},        {kDLFloat, 16, 1},
    {kDLBfloat, 16, 1}, {kDLFloat8_e4m3fn, 8, 1}, {kDLFloat8_e5m2, 8, 1},
    {kDLInt, 32, 1},    {kDLInt, 64, 1},          {kDLUInt, 8, 1},
    {kDLBool, 8, 1}};

bool valid(int32_t id) { return id > 0 && id < DSK_DTYPE_COUNT; }

}  // namespace

const char* dtype_id_name(int32_t id) noexcept { return kNames[valid(id) ? id : 0]; }

DLDataType dtype_of_id(int32_t id) noexcept { return kDtypes[valid(id) ? id : 0]; }

int32_t checked_dtype_id(DLDataType dtype, const char* name) {
  check_arg(dtype.lanes == 1, "{}.lanes = {}, expected 1", name, dtype.lanes);
  int32_t id = dtype_id_of(dtype);
  check_arg(id != 0,
            "{} {{code {}, bits {}}} is not supported, expected one of f32, f16, bf16, "
            "fp8_e4m3fn, fp8_e5m2, int32, int64, uint8, bool",
            name, dtype.code, dtype.bits);
  return id;
}

}  // namespace dsk
