// mapped_file.h - a whole file mapped read-only into memory, unmapped with its last owner.
//
// Safetensors views point straight into the mapping, so it is shared (std::shared_ptr) by the
// handle and every DLPack export of its tensors: closing the handle must not pull pages away from
// an export another framework still holds.
#ifndef DSK_LIB_IO_MAPPED_FILE_H_
#define DSK_LIB_IO_MAPPED_FILE_H_

#include <cstddef>
#include <memory>
#include <string>

namespace dsk {
namespace io {

class MappedFile {
 public:
  // Maps all of the regular file `path` with PROT_READ; the descriptor is closed before returning.
  // An empty file maps nothing (data() is nullptr). Throws DSK_ERR_IO naming the path and the
  // system's reason.
  static std::shared_ptr<const MappedFile> open(const std::string& path);

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const unsigned char* data() const noexcept { return data_; }
  size_t size() const noexcept { return size_; }
  const std::string& path() const noexcept { return path_; }

 private:
  MappedFile(std::string path, void* data, size_t size) noexcept;

  std::string path_;
  unsigned char* data_ = nullptr;
  size_t size_ = 0;
};

// Throws DSK_ERR_IO: "<path>: cannot <what>: <the system's text for err>".
[[noreturn]] void fail_io(const std::string& path, const char* what, int err);

}  // namespace io
}  // namespace dsk

#endif  // DSK_LIB_IO_MAPPED_FILE_H_
