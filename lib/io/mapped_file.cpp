#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <new>
#include <system_error>
#include <utility>

#include "core/error.h"

namespace dsk {
namespace io {

void fail_io(const std::string& path, const char* what, int err) {
  // generic_category().message is the thread-safe strerror.
  fail(DSK_ERR_IO, "{}: cannot {}: {}", path, what, std::generic_category().message(err));
}

namespace {

// Closes the descriptor on every way out of MappedFile::open: the mapping outlives it.
struct Descriptor {
  int fd;
  ~Descriptor() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

MappedFile::MappedFile(std::string path, void* data, size_t size) noexcept
    : path_(std::move(path)), data_(static_cast<unsigned char*>(data)), size_(size) {}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

std::shared_ptr<const MappedFile> MappedFile::open(const std::string& path) {
  std::string name = path;  // copied first, so nothing below can throw while a mapping is unowned
  // O_NONBLOCK: a FIFO must be refused below, not wait for a writer to appear.
  Descriptor d{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (d.fd < 0) fail_io(path, "open", errno);
  struct stat st = {};
  if (::fstat(d.fd, &st) != 0) fail_io(path, "stat", errno);
  if (S_ISDIR(st.st_mode)) fail_io(path, "map", EISDIR);
  if (!S_ISREG(st.st_mode)) fail(DSK_ERR_IO, "{}: cannot map: not a regular file", path);
  if (static_cast<uint64_t>(st.st_size) > SIZE_MAX) {
    fail(DSK_ERR_IO, "{}: cannot map: {} bytes exceed the address space", path, st.st_size);
  }
  const auto size = static_cast<size_t>(st.st_size);
  void* data = nullptr;
  if (size > 0) {
    data = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, d.fd, 0);
    if (data == MAP_FAILED) fail_io(path, "map", errno);
  }
  std::unique_ptr<MappedFile> owner(new (std::nothrow) MappedFile(std::move(name), data, size));
  if (owner == nullptr) {
    if (data != nullptr) ::munmap(data, size);
    throw std::bad_alloc();
  }
  return std::shared_ptr<const MappedFile>(std::move(owner));
}

}  // namespace io
}  // namespace dsk
