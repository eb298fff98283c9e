// The README shows examples/example.c, example.cpp and python/example.py verbatim; this keeps them
// in sync so the code a reader copies is code the build compiles.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <string>

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot read ", path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The body of the first fenced block that starts with ```<lang> and contains `marker`.
std::string fenced_block(const std::string& text, const std::string& lang,
                         const std::string& marker) {
  const std::string open = "```" + lang + "\n";
  size_t pos = 0;
  while ((pos = text.find(open, pos)) != std::string::npos) {
    size_t begin = pos + open.size();
    size_t end = text.find("```", begin);
    if (end == std::string::npos) break;
    std::string body = text.substr(begin, end - begin);
    if (body.find(marker) != std::string::npos) return body;
    pos = end + 3;
  }
  return {};
}

}  // namespace

TEST_CASE("README examples are the compiled example files") {
  const std::string root = DSK_SOURCE_DIR;
  const std::string readme = read_file(root + "/README.md");
  CHECK(fenced_block(readme, "c", "#include <dsk/dsk.h>") ==
        read_file(root + "/examples/example.c"));
  CHECK(fenced_block(readme, "cpp", "#include <dsk/dsk.hpp>") ==
        read_file(root + "/examples/example.cpp"));
  CHECK(fenced_block(readme, "python", "import dsk") ==
        read_file(root + "/examples/python/example.py"));
}
