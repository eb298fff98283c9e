#include "core/registry.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "core/error.h"
#include "core/log.h"

#ifndef DSK_INSTALL_BACKEND_DIR
#  define DSK_INSTALL_BACKEND_DIR ""
#endif
#ifndef DSK_CUDA_BUILT
#  define DSK_CUDA_BUILT 0
#endif
#ifndef DSK_CUDA_DISABLED_REASON
#  define DSK_CUDA_DISABLED_REASON "built without CUDA"
#endif

namespace dsk {
namespace {

constexpr const char* kCudaModuleName = "libdsk-cuda.so";

std::string env_string(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

constexpr int32_t kInvalidRequest = -1;

// DSK_BACKEND, trimmed and lower-cased.
std::string backend_env() {
  std::string v = env_string("DSK_BACKEND");
  const char* space = " \t\r\n";
  size_t begin = v.find_first_not_of(space);
  if (begin == std::string::npos) return {};
  v = v.substr(begin, v.find_last_not_of(space) - begin + 1);
  for (char& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return v;
}

// What DSK_BACKEND asks for: DSK_BACKEND_AUTO, _CPU, _CUDA or kInvalidRequest.
int32_t requested_backend() {
  std::string v = backend_env();
  if (v.empty() || v == "auto") return DSK_BACKEND_AUTO;
  if (v == "cpu") return DSK_BACKEND_CPU;
  if (v == "cuda") return DSK_BACKEND_CUDA;
  return kInvalidRequest;
}

// Directory holding libdsk itself (or the executable it is linked into), found through dladdr so
// that a library loaded by Python or Rust still finds the module installed next to it. Always
// absolute: a relative directory would depend on the working directory (and could load a
// planted module from it), so "" is returned when none can be established.
std::string own_directory() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&own_directory), &info) == 0 || info.dli_fname == nullptr) {
    return {};
  }
  std::string path;
  if (std::strchr(info.dli_fname, '/') != nullptr) {
    char* real = realpath(info.dli_fname, nullptr);
    if (real != nullptr) {
      path = real;
      std::free(real);
    }
  } else {
    // A bare name: libdsk is linked statically into an executable started through PATH.
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) path.assign(exe, static_cast<size_t>(n));
  }
  size_t slash = path.rfind('/');
  if (path.empty() || path[0] != '/' || slash == std::string::npos) return {};
  return path.substr(0, slash);
}

std::vector<std::string> module_search_dirs() {
  std::vector<std::string> dirs;
  std::string env = env_string("DSK_BACKEND_PATH");
  size_t start = 0;
  while (!env.empty() && start <= env.size()) {
    size_t colon = env.find(':', start);
    std::string dir =
        env.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    if (!dir.empty() && dir[0] == '/') {
      dirs.push_back(dir);
    } else if (!dir.empty()) {
      log(DSK_LOG_WARN, "DSK_BACKEND_PATH entry '{}' is not absolute; ignored", dir);
    }
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  // Next to libdsk (the build tree), then <libdir>/dsk beside it (an install moved with
  // `cmake --install --prefix`), then the install directory chosen at configure time.
  std::string own = own_directory();
  if (!own.empty()) {
    dirs.push_back(own);
    dirs.push_back(own + "/dsk");
  }
  if (std::strlen(DSK_INSTALL_BACKEND_DIR) > 0) dirs.push_back(DSK_INSTALL_BACKEND_DIR);
  return dirs;
}

void load_cuda(Backend& b) {
  b.kind = DSK_BACKEND_CUDA;
  b.name = "cuda";
  if (requested_backend() == DSK_BACKEND_CPU) {
    b.reason = "disabled by DSK_BACKEND=cpu";
    return;
  }
  if (requested_backend() == kInvalidRequest) {
    b.reason = backend_env_error();
    return;
  }
  std::vector<std::string> dirs = module_search_dirs();
  std::string tried;
  void* handle = nullptr;
  for (const std::string& dir : dirs) {
    std::string path = dir + "/" + kCudaModuleName;
    handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle != nullptr) {
      log(DSK_LOG_INFO, "loaded CUDA backend module {}", path);
      break;
    }
    const char* err = dlerror();
    tried += fmt::format("{}{} ({})", tried.empty() ? "" : "; ", path, err ? err : "not loadable");
  }
  if (handle == nullptr) {
    // The short cause first: reasons are shown truncated to 255 characters in dsk_backend_info.
    b.reason =
        DSK_CUDA_BUILT
            ? fmt::format("{} could not be loaded: {}", kCudaModuleName, tried)
            : fmt::format("libdsk was built without CUDA ({}) and no {} was found; searched: {}",
                          DSK_CUDA_DISABLED_REASON, kCudaModuleName, tried);
    log(DSK_LOG_INFO, "CUDA backend unavailable: {}", b.reason);
    return;
  }
  auto score_fn =
      reinterpret_cast<dsk_backend_module_score_fn>(dlsym(handle, "dsk_backend_module_score"));
  auto init_fn =
      reinterpret_cast<dsk_backend_module_init_fn>(dlsym(handle, "dsk_backend_module_init"));
  if (score_fn == nullptr || init_fn == nullptr) {
    b.reason = fmt::format("{} lacks dsk_backend_module_score/init", kCudaModuleName);
    log(DSK_LOG_WARN, "CUDA backend unavailable: {}", b.reason);
    return;
  }
  char reason[512] = "";
  int32_t score = score_fn(reason, sizeof(reason));
  reason[sizeof(reason) - 1] = '\0';
  if (score <= 0) {
    b.reason = reason[0] ? reason : "the CUDA module reports no usable device";
    log(DSK_LOG_INFO, "CUDA backend unavailable: {}", b.reason);
    return;
  }
  const dsk_backend_iface* iface = init_fn(DSK_BACKEND_IFACE_VERSION);
  if (iface == nullptr || iface->api_version != DSK_BACKEND_IFACE_VERSION ||
      iface->struct_size < sizeof(dsk_backend_iface)) {
    b.reason = fmt::format("{} speaks another backend interface version (libdsk needs {})",
                           kCudaModuleName, DSK_BACKEND_IFACE_VERSION);
    log(DSK_LOG_WARN, "CUDA backend unavailable: {}", b.reason);
    return;
  }
  b.device_count = iface->device_count();
  if (b.device_count <= 0) {
    b.device_count = 0;
    b.reason = "the CUDA module found no device";
    return;
  }
  b.iface = iface;
  b.score = score;
}

}  // namespace

const Backend& backend(int32_t kind) noexcept {
  static Backend cpu = [] {
    Backend b;
    b.kind = DSK_BACKEND_CPU;
    b.name = "cpu";
    b.iface = cpu_backend_iface();
    b.score = 1;
    b.device_count = 1;
    return b;
  }();
  static Backend cuda;
  static std::once_flag cuda_once;
  static Backend unknown;
  switch (kind) {
    case DSK_BACKEND_CPU:
      return cpu;
    case DSK_BACKEND_CUDA:
      std::call_once(cuda_once, [] {
        try {
          load_cuda(cuda);
        } catch (...) {
          cuda = Backend{};
          cuda.kind = DSK_BACKEND_CUDA;
          cuda.name = "cuda";
          cuda.reason = "out of memory while loading the CUDA module";
        }
      });
      return cuda;
    default:
      return unknown;
  }
}

std::string backend_env_error() {
  if (requested_backend() != kInvalidRequest) return {};
  return fmt::format("DSK_BACKEND={} is not one of cpu, cuda, auto (CUDA stays disabled)",
                     backend_env());
}

int32_t default_backend() noexcept {
  int32_t requested = DSK_BACKEND_CPU;
  try {
    requested = requested_backend();
  } catch (...) {
  }
  if (requested == kInvalidRequest) return DSK_BACKEND_CPU;
  if (requested != DSK_BACKEND_AUTO) return requested;
  return backend(DSK_BACKEND_CUDA).available() ? DSK_BACKEND_CUDA : DSK_BACKEND_CPU;
}

void check_backend_call(const Backend& b, dsk_status status, const char* what) {
  if (status == DSK_OK) return;
  const char* detail = b.iface && b.iface->last_error ? b.iface->last_error() : "";
  fail(status, "{} on {} failed: {}", what, b.name, detail ? detail : "");
}

}  // namespace dsk
