// dsk::SafeTensors (dsk.hpp): the RAII wrapper over dsk_safetensors.
#include <dsk/dsk.hpp>
#include <string>
#include <vector>

#include "cpp_test_util.h"
#include "safetensors_test_util.h"

using st_test::Bytes;
using st_test::TempDir;

TEST_CASE("dsk::SafeTensors reads, exports and reports errors as dsk::Error") {
  TempDir dir;
  st_test::File f;
  f.metadata = {{"format", "pt"}};
  f.tensors.push_back({"w", "F32", {2, 2}, st_test::bytes_of<float>({1, 2, 3, 4})});
  f.tensors.push_back({"d", "F64", {1}, st_test::bytes_of<double>({0.5})});
  f.write(dir / "m.safetensors");

  dsk::Tensor kept;
  {
    dsk::SafeTensors st(dir / "m.safetensors");
    REQUIRE(st);
    CHECK(st.size() == 2);
    CHECK(st.names() == std::vector<std::string>{"d", "w"});
    CHECK(std::string(st.name(1)) == "w");
    CHECK(st.find("w") == 1);
    CHECK(st.contains("d"));
    CHECK_FALSE(st.contains("x"));
    const DLTensor w = st.tensor("w");
    CHECK(static_cast<const float*>(w.data)[3] == 4.0f);
    CHECK(st.info("w").nbytes == 16);
    CHECK(std::string(st.info("d").dtype) == "F64");
    CHECK(st.metadata("format").value() == "pt");
    CHECK_FALSE(st.metadata("absent").has_value());
    CHECK(st.metadata_keys() == std::vector<std::string>{"format"});

    // A copy into f32 through an op, from the view.
    dsk::Context cpu(DSK_BACKEND_CPU);
    dsk::Tensor copy = dsk::Tensor::clone(cpu, w, dsk::dtype(DSK_DTYPE_F32));
    CHECK(cpp_test::host_values<float>(copy) == std::vector<float>{1, 2, 3, 4});

    kept = st.as_tensor("w");
    try {
      st.as_tensor("d");  // f64 is no dsk dtype; the export is deleted, not leaked
      FAIL("expected dsk::Error");
    } catch (const dsk::Error& e) {
      CHECK(e.status() == DSK_ERR_INVALID_ARGUMENT);
    }
    DLManagedTensorVersioned* m = st.to_dlpack("d");
    CHECK(static_cast<const double*>(m->dl_tensor.data)[0] == 0.5);
    m->deleter(m);
    try {
      st.tensor("missing");
      FAIL("expected dsk::Error");
    } catch (const dsk::Error& e) {
      CHECK(e.status() == DSK_ERR_NOT_FOUND);
      CHECK(std::string(e.what()).find("'missing'") != std::string::npos);
    }
    dsk::SafeTensors moved = std::move(st);
    CHECK_FALSE(st);
    CHECK(moved.size() == 2);
  }
  // The dsk::Tensor outlives the checkpoint and stays read-only.
  CHECK(kept.dl().ndim == 2);
  CHECK(cpp_test::host_values<float>(kept) == std::vector<float>{1, 2, 3, 4});
  CHECK(dsk_tensor_is_read_only(kept.get()) == 1);

  try {
    dsk::SafeTensors missing(dir / "nope.safetensors");
    FAIL("expected dsk::Error");
  } catch (const dsk::Error& e) {
    CHECK(e.status() == DSK_ERR_IO);
    CHECK(std::string(e.what()).find("nope.safetensors") != std::string::npos);
  }
  dsk::SafeTensors empty;
  CHECK_THROWS_AS(empty.size(), dsk::Error);
}
