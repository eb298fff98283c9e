// dsk_safetensors: sharded checkpoints (an index json or a directory) and their errors.
#include <filesystem>
#include <string>
#include <vector>

#include "safetensors_test_util.h"
#include "test_util.h"

using dsk_test::expect_error;
using st_test::Bytes;
using st_test::Handle;
using st_test::TempDir;

namespace {

const char* kShard1 = "model-00001-of-00002.safetensors";
const char* kShard2 = "model-00002-of-00002.safetensors";

// Two shards: embed + layer 0 in the first, layer 1 + head in the second, each with metadata.
void write_shards(const TempDir& dir) {
  st_test::File a;
  a.metadata = {{"format", "pt"}, {"shard", "1"}};
  a.tensors.push_back({"model.embed", "BF16", {4, 2}, Bytes(16, 1)});
  a.tensors.push_back({"model.layers.0.w", "F32", {2}, st_test::bytes_of<float>({1, 2})});
  a.write(dir / kShard1);
  st_test::File b;
  b.metadata = {{"format", "pt"}, {"shard", "2"}, {"extra", "x"}};
  b.tensors.push_back({"model.layers.1.w", "F32", {2}, st_test::bytes_of<float>({3, 4})});
  b.tensors.push_back({"lm_head", "U8", {3}, Bytes{7, 8, 9}});
  b.write(dir / kShard2);
}

std::string index_json(const std::vector<std::pair<std::string, std::string>>& map) {
  std::string s = "{\"metadata\":{\"total_size\":35},\"weight_map\":{";
  for (size_t i = 0; i < map.size(); ++i) {
    s += (i ? "," : "") + st_test::quote(map[i].first) + ":" + st_test::quote(map[i].second);
  }
  return s + "}}";
}

std::vector<std::pair<std::string, std::string>> full_map() {
  return {{"model.embed", kShard1},
          {"model.layers.0.w", kShard1},
          {"model.layers.1.w", kShard2},
          {"lm_head", kShard2}};
}

void check_sharded(const Handle& h, const TempDir& dir) {
  CHECK(st_test::names(h) ==
        std::vector<std::string>{"lm_head", "model.embed", "model.layers.0.w", "model.layers.1.w"});
  CHECK(static_cast<const float*>(st_test::view(h, "model.layers.1.w").data)[1] == 4.0f);
  CHECK(static_cast<const float*>(st_test::view(h, "model.layers.0.w").data)[0] == 1.0f);
  CHECK(st_test::view_bytes(st_test::view(h, "lm_head")) == Bytes{7, 8, 9});
  CHECK(std::filesystem::path(st_test::info(h, "lm_head").file) ==
        std::filesystem::path(dir / kShard2));
  // Metadata: the union of the shards' maps, the first shard (by path) winning.
  CHECK(st_test::metadata(h, "shard") == "1");
  CHECK(st_test::metadata(h, "extra") == "x");
  CHECK(st_test::metadata_count(h) == 3);
}

}  // namespace

TEST_CASE("safetensors: a sharded index opens each shard once and merges the tensors") {
  TempDir dir;
  write_shards(dir);
  st_test::write_text(dir / "model.safetensors.index.json", index_json(full_map()));
  Handle h;
  REQUIRE(h.open(dir / "model.safetensors.index.json") == DSK_OK);
  check_sharded(h, dir);
  // The directory stands for its index.
  REQUIRE(h.open(dir.path.string()) == DSK_OK);
  check_sharded(h, dir);
  // A weight_map that omits a tensor still exposes it: the shards define what is there.
  auto partial = full_map();
  partial.pop_back();
  st_test::write_text(dir / "partial.json", index_json(partial));
  REQUIRE(h.open(dir / "partial.json") == DSK_OK);
  CHECK(st_test::names(h).size() == 4);
}

TEST_CASE("safetensors: a directory without an index opens all its safetensors files") {
  TempDir dir;
  write_shards(dir);
  Handle h;
  REQUIRE(h.open(dir.path.string()) == DSK_OK);
  check_sharded(h, dir);

  TempDir single;
  st_test::File f;
  f.tensors.push_back({"x", "U8", {1}, Bytes{1}});
  f.write(single / "model.safetensors");
  st_test::write_text(single / "notes.txt", "not a checkpoint");
  REQUIRE(h.open(single.path.string()) == DSK_OK);
  CHECK(st_test::names(h) == std::vector<std::string>{"x"});

  // Two indexes and no model.safetensors.index.json: ambiguous.
  st_test::write_text(dir / "a.safetensors.index.json", index_json(full_map()));
  st_test::write_text(dir / "b.safetensors.index.json", index_json(full_map()));
  expect_error(h.open(dir.path.string()), DSK_ERR_INVALID_ARGUMENT,
               {"several shard indexes", "a.safetensors.index.json", "b.safetensors.index.json"});
  std::filesystem::remove(dir.path / "b.safetensors.index.json");
  REQUIRE(h.open(dir.path.string()) == DSK_OK);  // the only index
  check_sharded(h, dir);
}

TEST_CASE("safetensors: index errors name the index, the shard and the tensor") {
  TempDir dir;
  write_shards(dir);
  Handle h;
  const std::string index = dir / "model.safetensors.index.json";
  auto expect_index = [&](const std::string& text, dsk_status status,
                          std::initializer_list<const char*> fragments) {
    st_test::write_text(index, text);
    expect_error(h.open(index), status, fragments);
    CHECK(h.st == nullptr);
    expect_error(h.open(index), status, {"model.safetensors.index.json"});
  };
  expect_index("{\"weight_map\":", DSK_ERR_INVALID_ARGUMENT, {"not valid UTF-8 JSON"});
  expect_index("[1]", DSK_ERR_INVALID_ARGUMENT, {"is an array, expected a JSON object"});
  expect_index("{\"metadata\":{}}", DSK_ERR_INVALID_ARGUMENT, {"weight_map is missing"});
  expect_index("{\"weight_map\":[]}", DSK_ERR_INVALID_ARGUMENT,
               {"weight_map is an array, expected an object"});
  expect_index("{\"weight_map\":{\"w\":1}}", DSK_ERR_INVALID_ARGUMENT,
               {"weight_map['w'] is an integer, expected a file name"});
  expect_index("{\"weight_map\":{\"w\":\"a\",\"w\":\"b\"}}", DSK_ERR_INVALID_ARGUMENT,
               {"repeats the key 'w'"});
  for (const char* escape : {"/etc/passwd", "../model.safetensors", "a/../../x", ""}) {
    CAPTURE(escape);
    expect_index(index_json({{"w", escape}}), DSK_ERR_INVALID_ARGUMENT,
                 {"weight_map['w']", "relative to the index's directory"});
  }
  auto map = full_map();
  map.push_back({"ghost", "model-00003-of-00002.safetensors"});
  expect_index(index_json(map), DSK_ERR_IO,
               {"model-00003-of-00002.safetensors", "cannot open", "a shard named by"});
  map = full_map();
  map[3].second = kShard1;  // lm_head is in shard 2
  expect_index(index_json(map), DSK_ERR_INVALID_ARGUMENT,
               {"weight_map puts tensor 'lm_head' in", kShard1, "which does not hold it"});
  map = full_map();
  map.push_back({"not.anywhere", kShard2});
  expect_index(index_json(map), DSK_ERR_INVALID_ARGUMENT, {"tensor 'not.anywhere'", kShard2});

  // A malformed shard: its own error, plus the index that named it.
  st_test::write_file(dir / kShard2, Bytes{1, 2, 3});
  expect_index(index_json(full_map()), DSK_ERR_INVALID_ARGUMENT,
               {kShard2, "too short", "a shard named by"});
}

TEST_CASE("safetensors: one name in two shards is refused") {
  TempDir dir;
  write_shards(dir);
  st_test::File dup;
  dup.tensors.push_back({"lm_head", "U8", {1}, Bytes{1}});
  dup.write(dir / "model-extra.safetensors");
  Handle h;
  expect_error(h.open(dir.path.string()), DSK_ERR_INVALID_ARGUMENT,
               {"tensor 'lm_head' is in both", "model-00002-of-00002.safetensors",
                "model-extra.safetensors"});
  auto map = full_map();
  map.push_back({"extra_name", "model-extra.safetensors"});
  st_test::write_text(dir / "model.safetensors.index.json", index_json(map));
  st_test::File other;
  other.tensors.push_back({"extra_name", "U8", {1}, Bytes{1}});
  other.tensors.push_back({"model.embed", "U8", {1}, Bytes{1}});
  other.write(dir / "model-extra.safetensors");
  expect_error(h.open(dir / "model.safetensors.index.json"), DSK_ERR_INVALID_ARGUMENT,
               {"tensor 'model.embed' is in both"});
}
