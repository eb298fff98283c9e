// dsk_copy through the CUDA backend: host<->device transfers and device copies, every dtype pair,
// contiguous and strided, each compared byte for byte with the same copy done by the CPU
// reference.
#include <cstring>
#include <string>
#include <vector>

#include "test_util.h"

namespace dsk_test {
namespace {

// Two layouts of one shape: where a copy reads and where it writes.
struct CopyCase {
  const char* name;
  Layout src;
  Layout dst;
};

std::vector<CopyCase> copy_cases() {
  // 8 dims with unit dims whose strides are arbitrary (allowed: they are never stepped over).
  Layout eight_d = column_major({2, 1, 3, 1, 2, 1, 2, 3});
  eight_d.strides[1] = 999;
  eight_d.strides[5] = 7;
  return {
      {"contiguous 1-D", row_major({1000}), row_major({1000})},
      {"row-major to column-major", row_major({5, 7, 3}), column_major({5, 7, 3})},
      {"transpose", Layout{{7, 5}, {1, 7}, 0}, row_major({7, 5}, 1)},
      {"slices", Layout{{4, 5}, {11, 2}, 3}, Layout{{4, 5}, {1, 4}, 2}},
      {"permuted 4-D", Layout{{2, 3, 4, 5}, {4, 40, 1, 8}, 0}, row_major({2, 3, 4, 5})},
      {"8-D with unit dims", eight_d, row_major({2, 1, 3, 1, 2, 1, 2, 3}, 5)},
      {"row blocks", Layout{{64, 100}, {128, 1}, 3}, row_major({64, 100})},
      {"scalar", row_major({}, 2), row_major({}, 1)},
      {"broadcast source", Layout{{3, 4}, {0, 1}, 0}, column_major({3, 4})},
      {"empty", row_major({0, 3}), column_major({0, 3})},
      {"many blocks", column_major({33, 65, 17}), row_major({33, 65, 17})},
  };
}

// `l`, or its row-major equivalent when it broadcasts (a destination may not).
Layout writable(const Layout& l) {
  for (size_t d = 0; d < l.shape.size(); ++d) {
    if (l.shape[d] > 1 && l.strides[d] == 0) return row_major(l.shape, l.offset);
  }
  return l;
}

TEST_CASE("host -> device -> host round trip keeps the bytes of every dtype") {
  Env env;
  for (int32_t id : kAllDtypes) {
    CAPTURE(dtype_name(id));
    for (int64_t n : {int64_t{1}, int64_t{3}, int64_t{1000}, int64_t{65537}}) {
      CAPTURE(n);
      Tensor host = create(env.cpu.get(), {n}, id);
      const std::vector<uint8_t> bytes = random_bytes(host.nbytes(), static_cast<uint64_t>(n));
      std::memcpy(host.host_bytes(), bytes.data(), bytes.size());
      Tensor gpu = create(env.gpu.get(), {n}, id);
      DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), host.dl(), gpu.dl()));
      CHECK(download(env, gpu) == bytes);
    }
  }
}

TEST_CASE("f32 host -> bf16 device -> f32 host rounds exactly like the CPU conversion") {
  Env env;
  const int64_t n = 4096;
  Tensor host = create(env.cpu.get(), {n}, DSK_DTYPE_F32);
  const std::vector<uint8_t> bytes = random_bytes(host.nbytes(), 99);
  std::memcpy(host.host_bytes(), bytes.data(), bytes.size());
  Tensor gpu = create(env.gpu.get(), {n}, DSK_DTYPE_BF16);
  DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), host.dl(), gpu.dl()));
  Tensor back = create(env.cpu.get(), {n}, DSK_DTYPE_F32);
  DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), gpu.dl(), back.dl()));

  std::vector<uint16_t> bf16(n);
  std::vector<float> want(n);
  DSK_REQUIRE_OK(dsk_convert_host(dtype(DSK_DTYPE_F32), host.host_bytes(), dtype(DSK_DTYPE_BF16),
                                  bf16.data(), n));
  DSK_REQUIRE_OK(
      dsk_convert_host(dtype(DSK_DTYPE_BF16), bf16.data(), dtype(DSK_DTYPE_F32), want.data(), n));
  CHECK(std::memcmp(back.host_bytes(), want.data(), back.nbytes()) == 0);
}

// host (S, layout src) -> device (D, layout dst) -> host (S, layout src), against the same two
// copies done by the CPU reference. Covers libdsk's staging paths and the device copy kernel
// that re-strides on the device.
TEST_CASE("strided host <-> device copies with conversion match the CPU") {
  Env env;
  uint64_t seed = 1;
  for (const CopyCase& c : copy_cases()) {
    CAPTURE(c.name);
    for (int32_t host_id : kAllDtypes) {
      for (int32_t device_id : kAllDtypes) {
        CAPTURE(dtype_name(host_id));
        CAPTURE(dtype_name(device_id));
        Tensor src_base = create(env.cpu.get(), {c.src.span()}, host_id);
        const std::vector<uint8_t> bytes = random_bytes(src_base.nbytes(), seed++);
        std::memcpy(src_base.host_bytes(), bytes.data(), bytes.size());
        SourceView src = source_view(src_base, c.src);
        Twin mid = make_twin(env, device_id, c.dst.span(), seed++);
        Tensor mid_cpu = view(mid.cpu, c.dst);
        Tensor mid_gpu = view(mid.gpu, c.dst);
        DSK_REQUIRE_OK(dsk_copy(env.cpu.get(), src.dl(), mid_cpu.dl()));
        DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), src.dl(), mid_gpu.dl()));
        check_twin(env, mid);

        // Back into a host tensor laid out like the source, starting from other bytes.
        const Layout back = writable(c.src);
        Tensor want_base = create(env.cpu.get(), {back.span()}, host_id);
        Tensor got_base = create(env.cpu.get(), {back.span()}, host_id);
        const std::vector<uint8_t> other = random_bytes(want_base.nbytes(), seed++);
        std::memcpy(want_base.host_bytes(), other.data(), other.size());
        std::memcpy(got_base.host_bytes(), other.data(), other.size());
        Tensor want = view(want_base, back);
        Tensor got = view(got_base, back);
        DSK_REQUIRE_OK(dsk_copy(env.cpu.get(), mid_cpu.dl(), want.dl()));
        DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), mid_gpu.dl(), got.dl()));
        CHECK(std::memcmp(want_base.host_bytes(), got_base.host_bytes(), want_base.nbytes()) == 0);
      }
    }
  }
}

TEST_CASE("device -> device copies match the CPU for every dtype pair and layout") {
  Env env;
  uint64_t seed = 1000;
  for (const CopyCase& c : copy_cases()) {
    CAPTURE(c.name);
    for (int32_t src_id : kAllDtypes) {
      for (int32_t dst_id : kAllDtypes) {
        CAPTURE(dtype_name(src_id));
        CAPTURE(dtype_name(dst_id));
        Twin src = make_twin(env, src_id, c.src.span(), seed++);
        Twin dst = make_twin(env, dst_id, c.dst.span(), seed++);
        SourceView src_cpu = source_view(src.cpu, c.src);
        SourceView src_gpu = source_view(src.gpu, c.src);
        Tensor dst_cpu = view(dst.cpu, c.dst);
        Tensor dst_gpu = view(dst.gpu, c.dst);
        DSK_REQUIRE_OK(dsk_copy(env.cpu.get(), src_cpu.dl(), dst_cpu.dl()));
        DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), src_gpu.dl(), dst_gpu.dl()));
        check_twin(env, dst);
        check_twin(env, src);  // the source is left as it was
      }
    }
  }
  CHECK(dsk_context_synchronize(env.gpu.get()) == DSK_OK);
}

// A DLTensor another framework might hand over: byte_offset not a multiple of the element size
// (the kernels must not issue misaligned wide accesses) and NULL strides (row-major).
DLTensor raw_view(const Tensor& byte_base, int32_t dtype_id, std::vector<int64_t>& shape,
                  int64_t* strides, uint64_t byte_offset) {
  DLTensor t{};
  t.data = byte_base.dl()->data;
  t.device = byte_base.dl()->device;
  t.ndim = static_cast<int32_t>(shape.size());
  t.dtype = dtype(dtype_id);
  t.shape = shape.data();
  t.strides = strides;
  t.byte_offset = byte_offset;
  return t;
}

TEST_CASE("misaligned and stride-less DLTensors are handled like on the CPU") {
  Env env;
  Twin a = make_twin(env, DSK_DTYPE_UINT8, 512, 7);
  Twin b = make_twin(env, DSK_DTYPE_UINT8, 512, 8);

  SUBCASE("fill") {
    std::vector<int64_t> shape = {7};
    int64_t strides[] = {2};
    DLTensor cpu = raw_view(a.cpu, DSK_DTYPE_F32, shape, strides, 1);
    DLTensor gpu = raw_view(a.gpu, DSK_DTYPE_F32, shape, strides, 1);
    DSK_REQUIRE_OK(dsk_fill(env.cpu.get(), &cpu, 1.25));
    DSK_REQUIRE_OK(dsk_fill(env.gpu.get(), &gpu, 1.25));
    check_twin(env, a);
    std::vector<int64_t> dense_shape = {3, 5};
    DLTensor cpu_dense = raw_view(a.cpu, DSK_DTYPE_INT64, dense_shape, nullptr, 101);
    DLTensor gpu_dense = raw_view(a.gpu, DSK_DTYPE_INT64, dense_shape, nullptr, 101);
    DSK_REQUIRE_OK(dsk_fill(env.cpu.get(), &cpu_dense, -12345.0));
    DSK_REQUIRE_OK(dsk_fill(env.gpu.get(), &gpu_dense, -12345.0));
    check_twin(env, a);
  }
  SUBCASE("fill_random") {
    std::vector<int64_t> shape = {5, 3};
    int64_t strides[] = {6, 1};
    DLTensor cpu = raw_view(a.cpu, DSK_DTYPE_F16, shape, strides, 3);
    DLTensor gpu = raw_view(a.gpu, DSK_DTYPE_F16, shape, strides, 3);
    dsk_random_params params;
    DSK_REQUIRE_OK(dsk_random_params_init(&params));
    params.distribution = DSK_RANDOM_NORMAL;
    params.seed = 1234;
    DSK_REQUIRE_OK(dsk_fill_random(env.cpu.get(), &cpu, &params));
    DSK_REQUIRE_OK(dsk_fill_random(env.gpu.get(), &gpu, &params));
    check_twin(env, a);
  }
  SUBCASE("copy") {
    struct Pair {
      int32_t src_id;
      uint64_t src_offset;
      std::vector<int64_t> src_strides;  // empty: NULL
      int32_t dst_id;
      uint64_t dst_offset;
      std::vector<int64_t> dst_strides;
    };
    const Pair pairs[] = {
        {DSK_DTYPE_F32, 1, {}, DSK_DTYPE_BF16, 5, {}},                // dense, converting
        {DSK_DTYPE_F32, 1, {1, 2}, DSK_DTYPE_F32, 7, {}},             // strided, same dtype
        {DSK_DTYPE_INT64, 3, {}, DSK_DTYPE_INT64, 9, {1, 2}},         // strided, same dtype
        {DSK_DTYPE_F16, 1, {1, 2}, DSK_DTYPE_FP8_E4M3FN, 0, {3, 1}},  // aligned dst only
        {DSK_DTYPE_INT32, 2, {}, DSK_DTYPE_INT32, 6, {}},             // dense, same dtype
    };
    for (const Pair& p : pairs) {
      CAPTURE(dtype_name(p.src_id));
      CAPTURE(dtype_name(p.dst_id));
      CAPTURE(p.src_offset);
      std::vector<int64_t> shape = {2, 3};
      std::vector<int64_t> src_strides = p.src_strides;
      std::vector<int64_t> dst_strides = p.dst_strides;
      int64_t* ss = src_strides.empty() ? nullptr : src_strides.data();
      int64_t* ds = dst_strides.empty() ? nullptr : dst_strides.data();
      DLTensor src_cpu = raw_view(a.cpu, p.src_id, shape, ss, p.src_offset);
      DLTensor src_gpu = raw_view(a.gpu, p.src_id, shape, ss, p.src_offset);
      DLTensor dst_cpu = raw_view(b.cpu, p.dst_id, shape, ds, p.dst_offset);
      DLTensor dst_gpu = raw_view(b.gpu, p.dst_id, shape, ds, p.dst_offset);
      DSK_REQUIRE_OK(dsk_copy(env.cpu.get(), &src_cpu, &dst_cpu));
      DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), &src_gpu, &dst_gpu));
      check_twin(env, b);
    }
  }
}

}  // namespace
}  // namespace dsk_test
