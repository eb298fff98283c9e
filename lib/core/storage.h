// storage.h - a block of memory on one device plus the way to give it back.
//
// Shared by every dsk_tensor viewing it (std::shared_ptr), so the memory lives until the last
// view, export or import wrapper is gone; the release action runs exactly once.
#ifndef DSK_LIB_CORE_STORAGE_H_
#define DSK_LIB_CORE_STORAGE_H_

#include <stddef.h>

#include <functional>
#include <memory>

#include "dsk/dsk_dlpack.h"

namespace dsk {

struct Storage {
  void* data = nullptr;
  size_t bytes = 0;  // addressable bytes from data
  DLDevice device{};
  std::function<void()> release;  // frees the memory (or calls a DLPack deleter); may be empty

  Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() {
    if (release) release();
  }
};

using StoragePtr = std::shared_ptr<Storage>;

}  // namespace dsk

#endif  // DSK_LIB_CORE_STORAGE_H_
