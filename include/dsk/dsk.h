/* dsk.h - umbrella header of the dsk C API (C99 and C++; no CUDA or C++ headers needed).
 *
 * dsk: DeepSeek-style LLM inference primitives with a CPU reference path and a CUDA fast path
 * chosen at run time. See README.md for an overview and each header for the functions it declares.
 */
#ifndef DSK_H_
#define DSK_H_

#include "dsk_backend.h"
#include "dsk_context.h"
#include "dsk_dlpack.h"
#include "dsk_dtype.h"
#include "dsk_export.h"
#include "dsk_mla.h"
#include "dsk_moe.h"
#include "dsk_ops.h"
#include "dsk_safetensors.h"
#include "dsk_sampling.h"
#include "dsk_status.h"
#include "dsk_tensor.h"
#include "dsk_version.h"

#endif /* DSK_H_ */
