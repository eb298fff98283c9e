/* dsk_dlpack.h - DLPack 1.x declarations used by the dsk C API.
 *
 * These declarations are written from the DLPack specification (v1.1) and are layout-identical to
 * upstream dlpack.h. If the user already included an upstream dlpack.h (major version 1), its
 * declarations are used instead and this header only checks the version. Debian's libdlpack-dev
 * is 0.6 and lacks the versioned struct and fp8 codes, which is why dsk carries its own.
 *
 * Conventions relied on by dsk:
 *  - strides are in elements, not bytes; NULL strides mean compact row-major;
 *  - the first element lives at (char*)data + byte_offset;
 *  - a managed tensor is released by calling its deleter exactly once (the deleter may be NULL).
 */
#ifndef DSK_DLPACK_H_
#define DSK_DLPACK_H_

#ifdef DLPACK_DLPACK_H_
/* An upstream dlpack.h is already in scope: use it, but insist on the 1.x layout. */
#  if !defined(DLPACK_MAJOR_VERSION) || DLPACK_MAJOR_VERSION != 1
#    error "dsk needs DLPack major version 1; the dlpack.h included before dsk.h is another version"
#  endif
#else
#  define DLPACK_DLPACK_H_

#  include <stddef.h>
#  include <stdint.h>

#  define DLPACK_MAJOR_VERSION 1
#  define DLPACK_MINOR_VERSION 1

#  ifdef __cplusplus
extern "C" {
#  endif

/* The DLPack ABI version a producer speaks. A major change breaks DLManagedTensorVersioned. */
typedef struct {
  uint32_t major;
  uint32_t minor;
} DLPackVersion;

/* Device kinds. In C++ the enumeration has int32_t as its underlying type. */
#  ifdef __cplusplus
typedef enum : int32_t {
#  else
typedef enum {
#  endif
  kDLCPU = 1,
  kDLCUDA = 2,
  kDLCUDAHost = 3,
  kDLOpenCL = 4,
  kDLVulkan = 7,
  kDLMetal = 8,
  kDLVPI = 9,
  kDLROCM = 10,
  kDLROCMHost = 11,
  kDLExtDev = 12,
  kDLCUDAManaged = 13,
  kDLOneAPI = 14,
  kDLWebGPU = 15,
  kDLHexagon = 16,
  kDLMAIA = 17,
  kDLTrn = 18
} DLDeviceType;

typedef struct {
  DLDeviceType device_type;
  int32_t device_id;
} DLDevice;

/* Type codes. Stored in DLDataType as uint8_t. */
typedef enum {
  kDLInt = 0U,
  kDLUInt = 1U,
  kDLFloat = 2U,
  kDLOpaqueHandle = 3U,
  kDLBfloat = 4U,
  kDLComplex = 5U,
  kDLBool = 6U,
  kDLFloat8_e3m4 = 7U,
  kDLFloat8_e4m3 = 8U,
  kDLFloat8_e4m3b11fnuz = 9U,
  kDLFloat8_e4m3fn = 10U,
  kDLFloat8_e4m3fnuz = 11U,
  kDLFloat8_e5m2 = 12U,
  kDLFloat8_e5m2fnuz = 13U,
  kDLFloat8_e8m0fnu = 14U,
  kDLFloat6_e2m3fn = 15U,
  kDLFloat6_e3m2fn = 16U,
  kDLFloat4_e2m1fn = 17U
} DLDataTypeCode;

/* Element type: code (DLDataTypeCode), bits per lane, lanes (dsk accepts lanes == 1 only). */
typedef struct {
  uint8_t code;
  uint8_t bits;
  uint16_t lanes;
} DLDataType;

/* A borrowed, non-owning tensor description. */
typedef struct {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;
  uint64_t byte_offset;
} DLTensor;

/* Legacy (pre-1.0) managed tensor: dl_tensor first, no version, no flags. */
typedef struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(struct DLManagedTensor* self);
} DLManagedTensor;

/* Flags of DLManagedTensorVersioned. */
#  define DLPACK_FLAG_BITMASK_READ_ONLY (1UL << 0UL)
#  define DLPACK_FLAG_BITMASK_IS_COPIED (1UL << 1UL)
#  define DLPACK_FLAG_BITMASK_IS_SUBBYTE_TYPE_PADDED (1UL << 2UL)

/* Versioned managed tensor (DLPack >= 1.0). The fields up to and including flags never move, so a
 * consumer can always read the version and call the deleter. */
typedef struct DLManagedTensorVersioned {
  DLPackVersion version;
  void* manager_ctx;
  void (*deleter)(struct DLManagedTensorVersioned* self);
  uint64_t flags;
  DLTensor dl_tensor;
} DLManagedTensorVersioned;

#  ifdef __cplusplus
} /* extern "C" */
#  endif
#endif /* DLPACK_DLPACK_H_ */

#endif /* DSK_DLPACK_H_ */
