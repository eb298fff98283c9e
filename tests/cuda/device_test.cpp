// The CUDA backend as a whole: availability, device properties, contexts, errors.
#include <cstring>
#include <string>

#include "test_util.h"

namespace dsk_test {
namespace {

TEST_CASE("the CUDA backend reports itself available") {
  dsk_backend_info info;
  DSK_REQUIRE_OK(dsk_backend_info_init(&info));
  DSK_REQUIRE_OK(dsk_backend_get_info(DSK_BACKEND_CUDA, &info));
  CHECK(info.backend == DSK_BACKEND_CUDA);
  CHECK(info.available == 1);
  CHECK(info.score > 0);
  CHECK(info.device_count == dsk_device_count(DSK_BACKEND_CUDA));
  CHECK(std::string(info.name) == "cuda");
  CHECK(std::string(info.reason).empty());
}

TEST_CASE("device properties are sane for every device") {
  const int32_t count = dsk_device_count(DSK_BACKEND_CUDA);
  for (int32_t device = 0; device < count; ++device) {
    CAPTURE(device);
    dsk_device_props props;
    DSK_REQUIRE_OK(dsk_device_props_init(&props));
    DSK_REQUIRE_OK(dsk_device_get_props(DSK_BACKEND_CUDA, device, &props));
    MESSAGE("cuda:" << device << " " << props.name << ", cc " << props.compute_capability_major
                    << "." << props.compute_capability_minor << ", " << props.multiprocessor_count
                    << " SMs, " << props.total_memory_bytes << " bytes, "
                    << props.memory_bandwidth_gbps << " GB/s");
    CHECK(props.backend == DSK_BACKEND_CUDA);
    CHECK(props.device_id == device);
    CHECK(props.compute_capability_major >= 8);
    CHECK(props.compute_capability_minor >= 0);
    CHECK(props.multiprocessor_count > 0);
    CHECK(props.total_memory_bytes > 0);
    CHECK(props.memory_bus_width_bits > 0);
    CHECK(props.memory_clock_khz > 0);
    CHECK(props.memory_bandwidth_gbps > 0.0);
    CHECK(std::strlen(props.name) > 0);
    CHECK(std::strlen(props.name) < sizeof(props.name));
  }
  dsk_device_props props;
  DSK_REQUIRE_OK(dsk_device_props_init(&props));
  CHECK(dsk_device_get_props(DSK_BACKEND_CUDA, count, &props) == DSK_ERR_INVALID_ARGUMENT);
}

TEST_CASE("a CUDA context reports its backend, device and stream") {
  Context ctx(DSK_BACKEND_CUDA);
  int32_t backend = 0;
  DSK_REQUIRE_OK(dsk_context_get_backend(ctx.get(), &backend));
  CHECK(backend == DSK_BACKEND_CUDA);
  DLDevice device{};
  DSK_REQUIRE_OK(dsk_context_get_device(ctx.get(), &device));
  CHECK(device.device_type == kDLCUDA);
  CHECK(device.device_id == 0);
  // A user stream needs CUDA headers to create; this suite has none, so only NULL is exercised.
  DSK_REQUIRE_OK(dsk_context_set_stream(ctx.get(), nullptr));
  void* stream = &backend;
  DSK_REQUIRE_OK(dsk_context_get_stream(ctx.get(), &stream));
  CHECK(stream == nullptr);
  CHECK(dsk_context_synchronize(ctx.get()) == DSK_OK);
}

TEST_CASE("CUDA tensors are created on the context's device") {
  Env env;
  for (int32_t id : kAllDtypes) {
    CAPTURE(dtype_name(id));
    Tensor t = create(env.gpu.get(), {3, 5, 7}, id);
    const DLTensor* dl = t.dl();
    CHECK(dl->device.device_type == kDLCUDA);
    CHECK(dl->device.device_id == 0);
    CHECK(dl->ndim == 3);
    CHECK(dl->byte_offset == 0);
    CHECK(reinterpret_cast<uintptr_t>(dl->data) % 256 == 0);
    CHECK(t.numel() == 105);
    CHECK(t.nbytes() == 105 * dtype_size(id));
    CHECK(dsk_tensor_is_contiguous(t.get()) == 1);
  }
  Tensor empty = create(env.gpu.get(), {0, 4}, DSK_DTYPE_F32);
  CHECK(empty.numel() == 0);
  Tensor scalar = create(env.gpu.get(), {}, DSK_DTYPE_BF16);
  CHECK(scalar.numel() == 1);
  CHECK(dsk_context_synchronize(env.gpu.get()) == DSK_OK);
}

TEST_CASE("a CUDA tensor given to a CPU context is refused, naming the device") {
  Env env;
  Tensor gpu = create(env.gpu.get(), {16}, DSK_DTYPE_F32);
  Tensor host = create(env.cpu.get(), {16}, DSK_DTYPE_F32);
  CHECK(dsk_fill(env.cpu.get(), gpu.dl(), 1.0) == DSK_ERR_INVALID_ARGUMENT);
  CHECK(std::string(dsk_last_error_message()).find("cuda:0") != std::string::npos);
  dsk_random_params params;
  DSK_REQUIRE_OK(dsk_random_params_init(&params));
  CHECK(dsk_fill_random(env.cpu.get(), gpu.dl(), &params) == DSK_ERR_INVALID_ARGUMENT);
  CHECK(std::string(dsk_last_error_message()).find("cuda:0") != std::string::npos);
  CHECK(dsk_copy(env.cpu.get(), host.dl(), gpu.dl()) == DSK_ERR_INVALID_ARGUMENT);
  CHECK(std::string(dsk_last_error_message()).find("cuda:0") != std::string::npos);
  CHECK(dsk_copy(env.cpu.get(), gpu.dl(), host.dl()) == DSK_ERR_INVALID_ARGUMENT);
  CHECK(std::string(dsk_last_error_message()).find("cuda:0") != std::string::npos);
}

TEST_CASE("a tensor on another CUDA device than the context's is refused") {
  if (dsk_device_count(DSK_BACKEND_CUDA) < 2) {
    MESSAGE("only one CUDA device; nothing to check");
    return;
  }
  Context ctx0(DSK_BACKEND_CUDA, 0);
  Context ctx1(DSK_BACKEND_CUDA, 1);
  Tensor on1 = create(ctx1.get(), {8}, DSK_DTYPE_F32);
  CHECK(dsk_fill(ctx0.get(), on1.dl(), 2.0) == DSK_ERR_INVALID_ARGUMENT);
  CHECK(std::string(dsk_last_error_message()).find("cuda:1") != std::string::npos);
}

TEST_CASE("an out-of-range device_id is refused") {
  const int32_t count = dsk_device_count(DSK_BACKEND_CUDA);
  for (int32_t device_id : {count, count + 7, -1}) {
    CAPTURE(device_id);
    dsk_context_options options;
    DSK_REQUIRE_OK(dsk_context_options_init(&options));
    options.backend = DSK_BACKEND_CUDA;
    options.device_id = device_id;
    // Non-NULL, so the check below sees dsk_context_create reset it.
    dsk_context* ctx = reinterpret_cast<dsk_context*>(&options);
    CHECK(dsk_context_create(&options, &ctx) == DSK_ERR_INVALID_ARGUMENT);
    CHECK(ctx == nullptr);
    CHECK(std::string(dsk_last_error_message()).find("device_id") != std::string::npos);
  }
}

TEST_CASE("out of device memory is reported and leaves the context usable") {
  Env env;
  const int64_t pib = int64_t{1} << 50;
  dsk_tensor* t = nullptr;
  CHECK(dsk_tensor_create(env.gpu.get(), 1, &pib, dtype(DSK_DTYPE_UINT8), &t) ==
        DSK_ERR_OUT_OF_MEMORY);
  CHECK(t == nullptr);
  CHECK(std::string(dsk_last_error_message()).find("cudaMalloc") != std::string::npos);

  // The failed allocation must not be reported again by later work on the same thread.
  Tensor small = create(env.gpu.get(), {1000}, DSK_DTYPE_F32);
  DSK_REQUIRE_OK(dsk_fill(env.gpu.get(), small.dl(), 3.5));
  const std::vector<uint8_t> bytes = download(env, small);
  REQUIRE(bytes.size() == 4000);
  for (size_t i = 0; i < 1000; ++i) {
    float v = 0;
    std::memcpy(&v, bytes.data() + 4 * i, 4);
    REQUIRE(v == 3.5f);
  }
  CHECK(dsk_context_synchronize(env.gpu.get()) == DSK_OK);
}

}  // namespace
}  // namespace dsk_test
