// Entry point of the CUDA backend tests. Without a usable CUDA backend (no module, driver or
// device) the whole suite is reported as skipped (exit code 77, ctest SKIP_RETURN_CODE), never as
// passed, with libdsk's reason on stdout.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (dsk_device_count(DSK_BACKEND_CUDA) == 0) {
    dsk_backend_info info;
    dsk_backend_info_init(&info);
    const dsk_status status = dsk_backend_get_info(DSK_BACKEND_CUDA, &info);
    std::printf("skipping the CUDA backend tests: %s\n",
                status == DSK_OK ? info.reason : dsk_last_error_message());
    return 77;
  }
  doctest::Context context;
  context.applyCommandLine(argc, argv);
  return context.run();
}
