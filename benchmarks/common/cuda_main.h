// cuda_main.h - command-line and device checks shared by the CUDA benchmark programs' main().
#ifndef DSK_BENCHMARKS_COMMON_CUDA_MAIN_H_
#define DSK_BENCHMARKS_COMMON_CUDA_MAIN_H_

#include <dsk/dsk.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "cuda_util.h"

namespace dsk::bench {

// --l2_flush=true|false|1|0; removed from argv. Returns false for a malformed value.
inline bool parse_l2_flush(const char* program, int* argc, char** argv, bool* flush) {
  constexpr const char* kFlag = "--l2_flush=";
  const std::size_t flag_len = std::strlen(kFlag);
  int kept = 1;
  bool ok = true;
  for (int i = 1; i < *argc; ++i) {
    if (std::strncmp(argv[i], kFlag, flag_len) != 0) {
      argv[kept++] = argv[i];
      continue;
    }
    const std::string value = argv[i] + flag_len;
    if (value == "true" || value == "1") {
      *flush = true;
    } else if (value == "false" || value == "0") {
      *flush = false;
    } else {
      std::fprintf(stderr, "%s: --l2_flush takes true or false, not '%s'\n", program,
                   value.c_str());
      ok = false;
    }
  }
  *argc = kept;
  argv[kept] = nullptr;
  return ok;
}

// Why CUDA benchmarks cannot run here, or "" when they can.
inline std::string cuda_unusable_reason() {
  dsk_backend_info info;
  dsk_backend_info_init(&info);
  if (dsk_backend_get_info(DSK_BACKEND_CUDA, &info) != DSK_OK) {
    return std::string("dsk_backend_get_info failed: ") + dsk_last_error_message();
  }
  if (!info.available || info.device_count < 1) {
    return std::string("dsk's CUDA backend is unavailable: ") + info.reason;
  }
  // dsk's module carries its own (static) CUDA runtime; the timer uses this program's. Both must
  // see the device.
  std::string why;
  if (dsk::bench::cuda_device_count(&why) < 1) return why;
  return "";
}

}  // namespace dsk::bench

#endif  // DSK_BENCHMARKS_COMMON_CUDA_MAIN_H_
