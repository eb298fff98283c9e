/* dsk_version.h - compile-time version macros and run-time version queries.
 *
 * Compare DSK_VERSION_NUMBER (the header you compiled against) with dsk_version_number() (the
 * library you loaded) to detect skew; DSK_ABI_VERSION changes only on an incompatible ABI change
 * and is the shared library's SOVERSION.
 */
#ifndef DSK_VERSION_H_
#define DSK_VERSION_H_

#include <stdint.h>

#include "dsk_export.h"

#define DSK_VERSION_MAJOR 0
#define DSK_VERSION_MINOR 1
#define DSK_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH, usable in #if. */
#define DSK_VERSION_NUMBER (DSK_VERSION_MAJOR * 10000 + DSK_VERSION_MINOR * 100 + DSK_VERSION_PATCH)
#define DSK_VERSION_STRING "0.1.0"
/* Bumped only when a released symbol, struct layout or constant changes incompatibly. */
#define DSK_ABI_VERSION 1

#ifdef __cplusplus
extern "C" {
#endif

/* The loaded library's DSK_VERSION_NUMBER. Never fails; thread-safe. */
DSK_API uint32_t dsk_version_number(void);

/* The loaded library's version as static text, e.g. "0.1.0". Never NULL; thread-safe. */
DSK_API const char* dsk_version_string(void);

/* The loaded library's DSK_ABI_VERSION. Bindings refuse to run when it differs from theirs. */
DSK_API uint32_t dsk_abi_version(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DSK_VERSION_H_ */
