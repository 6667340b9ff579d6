// std::vector whose storage starts on a cache line. The matrix kernels load
// 64-byte vectors from activation rows; a row that starts mid-line splits
// every such load across two lines.
#ifndef TANDEM_ENGINE_ALIGNED_VECTOR_H_
#define TANDEM_ENGINE_ALIGNED_VECTOR_H_

#include <cstddef>
#include <new>
#include <vector>

namespace tandem {

inline constexpr std::size_t kCacheLineBytes = 64;

template <typename T>
class CacheLineAllocator {
 public:
  using value_type = T;

  CacheLineAllocator() = default;
  template <typename U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}  // NOLINT: rebinding

  T* allocate(std::size_t n) {
    return static_cast<T*>(
        ::operator new (n * sizeof(T), std::align_val_t{kCacheLineBytes}));
  }
  void deallocate(T* p, std::size_t n) {
    ::operator delete (p, n * sizeof(T), std::align_val_t{kCacheLineBytes});
  }

  template <typename U>
  bool operator==(const CacheLineAllocator<U>&) const {
    return true;
  }
};

template <typename T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace tandem

#endif  // TANDEM_ENGINE_ALIGNED_VECTOR_H_
