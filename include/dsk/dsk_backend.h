/* dsk_backend.h - the backends dsk can run on, their devices, and why one may be unavailable.
 *
 * The CPU backend is always present. The CUDA backend lives in a separate module, libdsk-cuda.so,
 * that libdsk loads the first time any backend query or context creation needs it. It is searched
 * for in $DSK_BACKEND_PATH (a colon-separated list of absolute directories), then next to libdsk
 * itself, then in dsk/ beside libdsk, then in the install directory chosen at build time. A
 * missing module, a missing driver or no device leaves the CPU backend only; this is reported,
 * never fatal. The environment variable DSK_BACKEND (read once, case-insensitive) steers it:
 * "cpu" never loads the CUDA module, "cuda" makes DSK_BACKEND_AUTO mean CUDA (failing when it is
 * unusable), "auto" or unset is the default; any other value disables CUDA and makes contexts
 * asking for DSK_BACKEND_AUTO fail with a message naming the variable. CUDA devices older than
 * compute capability 8.0 are listed but contexts on them are refused (DSK_ERR_UNSUPPORTED).
 */
#ifndef DSK_BACKEND_H_
#define DSK_BACKEND_H_

#include <stddef.h>
#include <stdint.h>

#include "dsk_export.h"
#include "dsk_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Backend kinds. Values are stable; stored as int32_t in structs. */
#define DSK_BACKEND_AUTO 0 /* CUDA when available (and not overridden by DSK_BACKEND), else CPU */
#define DSK_BACKEND_CPU 1
#define DSK_BACKEND_CUDA 2
#define DSK_BACKEND_COUNT 3 /* one past the largest kind */

/* Description of one backend kind. Set struct_size (or call dsk_backend_info_init) first. */
typedef struct dsk_backend_info {
  uint32_t struct_size;
  int32_t backend;      /* DSK_BACKEND_CPU or DSK_BACKEND_CUDA */
  int32_t available;    /* 1 when it can run work on this machine now, else 0 */
  int32_t score;        /* preference when available (higher wins); 0 when unavailable */
  int32_t device_count; /* usable devices; 0 when unavailable */
  int32_t reserved;     /* always 0 */
  char name[32];        /* "cpu", "cuda" */
  char reason[256];     /* why it is unavailable ("" when available) */
} dsk_backend_info;

/* Properties of one device of a backend. Set struct_size (or call dsk_device_props_init) first. */
typedef struct dsk_device_props {
  uint32_t struct_size;
  int32_t backend;                  /* DSK_BACKEND_CPU or DSK_BACKEND_CUDA */
  int32_t device_id;                /* index within the backend */
  int32_t compute_capability_major; /* CUDA: e.g. 9 for an H100; CPU: 0 */
  int32_t compute_capability_minor; /* CUDA: e.g. 0; CPU: 0 */
  int32_t multiprocessor_count;     /* CUDA: SMs; CPU: logical cores */
  int32_t memory_bus_width_bits;    /* CUDA: memory bus width; CPU: 0 (unknown) */
  int32_t memory_clock_khz;         /* CUDA: peak memory clock; CPU: 0 (unknown) */
  uint64_t total_memory_bytes;      /* CUDA: global memory; CPU: physical memory */
  double memory_bandwidth_gbps;     /* theoretical peak (GB/s = 1e9 B/s); 0 when unknown */
  char name[256];                   /* e.g. "NVIDIA H100 80GB HBM3" or the CPU model */
} dsk_device_props;

/* Set struct_size and zero the rest. Errors: DSK_ERR_INVALID_ARGUMENT for NULL. */
DSK_API dsk_status dsk_backend_info_init(dsk_backend_info* info);
DSK_API dsk_status dsk_device_props_init(dsk_device_props* props);

/* Describes backend kind `backend` (DSK_BACKEND_CPU or DSK_BACKEND_CUDA). Loads the CUDA module on
 * first use. Errors: DSK_ERR_INVALID_ARGUMENT (unknown kind, NULL), DSK_ERR_VERSION_MISMATCH
 * (struct_size too small). An unavailable backend is not an error: see info->available/reason. */
DSK_API dsk_status dsk_backend_get_info(int32_t backend, dsk_backend_info* info);

/* Number of usable devices of a backend kind (0 if unavailable or unknown). Never fails. */
DSK_API int32_t dsk_device_count(int32_t backend);

/* Properties of device `device_id` of `backend`.
 * Errors: DSK_ERR_INVALID_ARGUMENT (unknown backend, device_id out of [0, count), NULL),
 * DSK_ERR_BACKEND_UNAVAILABLE, DSK_ERR_VERSION_MISMATCH (struct_size too small). */
DSK_API dsk_status dsk_device_get_props(int32_t backend, int32_t device_id,
                                        dsk_device_props* props);

/* The backend kind DSK_BACKEND_AUTO resolves to right now, after DSK_BACKEND is applied. */
DSK_API int32_t dsk_backend_default(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DSK_BACKEND_H_ */
