// strided_walk.h - visits the elements of a strided tensor in row-major index order.
#ifndef DSK_LIB_CPU_STRIDED_WALK_H_
#define DSK_LIB_CPU_STRIDED_WALK_H_

#include <stdint.h>

#include "dsk/dsk_tensor.h"

namespace dsk {
namespace cpu {

// Odometer over a shape: offset() is the element offset of the current index under `strides`.
class StridedWalk {
 public:
  StridedWalk(int32_t ndim, const int64_t* shape, const int64_t* strides) : ndim_(ndim) {
    for (int32_t i = 0; i < ndim; ++i) {
      shape_[i] = shape[i];
      strides_[i] = strides[i];
    }
  }
  int64_t offset() const { return offset_; }
  void next() {
    // Never forms an offset outside the walked elements, so no intermediate can overflow.
    for (int32_t i = ndim_ - 1; i >= 0; --i) {
      if (++index_[i] < shape_[i]) {
        offset_ += strides_[i];
        return;
      }
      offset_ -= strides_[i] * (shape_[i] - 1);
      index_[i] = 0;
    }
  }

 private:
  int32_t ndim_;
  int64_t shape_[DSK_MAX_NDIM] = {};
  int64_t strides_[DSK_MAX_NDIM] = {};
  int64_t index_[DSK_MAX_NDIM] = {};
  int64_t offset_ = 0;
};

}  // namespace cpu
}  // namespace dsk

#endif  // DSK_LIB_CPU_STRIDED_WALK_H_
