// The storage allocator recycles large buffers (tensor/allocator.h).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

#include "tensor/allocator.h"
#include "tensor/tensor.h"

namespace mf {
namespace {

bool aligned_to(const void* p, uintptr_t alignment) {
  return reinterpret_cast<uintptr_t>(p) % alignment == 0;
}

TEST(Allocator, SmallAndLargeBuffersAreAlignedForAvx512) {
  for (size_t bytes :
       {size_t{4}, size_t{1000}, storage::kLargeBytes - 4, storage::kLargeBytes, size_t{3} << 20}) {
    void* p = storage::allocate(bytes);
    EXPECT_TRUE(aligned_to(p, 64)) << bytes;
    std::memset(p, 0xab, bytes);  // the whole request is writable (ASan checks the small ones)
    storage::release(p, bytes);
  }
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kRecycles = false;  // under ASan every buffer is a malloc with redzones
#else
constexpr bool kRecycles = true;
#endif

TEST(Allocator, AFreedLargeBufferServesTheNextRequestOfItsSize) {
  if (!kRecycles) GTEST_SKIP() << "ASan build: large buffers go through malloc";
  storage::release_cached();
  const size_t bytes = size_t{5} << 20;
  void* first = storage::allocate(bytes);
  const AllocatorStats before = storage::stats();
  storage::release(first, bytes);
  EXPECT_GE(storage::stats().cached_bytes, bytes);
  void* second = storage::allocate(bytes);
  EXPECT_EQ(second, first);
  EXPECT_EQ(storage::stats().reuses, before.reuses + 1);
  EXPECT_EQ(storage::stats().os_allocations, before.os_allocations);
  // Far smaller or larger requests do not take it: the cache never wastes more than 1/8.
  storage::release(second, bytes);
  void* half = storage::allocate(bytes / 2);
  EXPECT_NE(half, first);
  void* twice = storage::allocate(bytes * 2);
  EXPECT_NE(twice, first);
  storage::release(half, bytes / 2);
  storage::release(twice, bytes * 2);
  storage::release_cached();
  EXPECT_EQ(storage::stats().cached_bytes, 0u);
}

TEST(Allocator, TensorsRecycleStorageAcrossSteps) {
  if (!kRecycles) GTEST_SKIP() << "ASan build: large buffers go through malloc";
  storage::release_cached();
  const Shape shape{8, 64, 28, 28};  // 1.6 MB
  const float* first = nullptr;
  {
    Tensor a = Tensor::zeros(shape);
    first = a.data();
  }
  Tensor b = Tensor::zeros(shape);
  EXPECT_EQ(b.data(), first);
  for (int64_t i = 0; i < b.numel(); ++i) ASSERT_EQ(b.data()[i], 0.0f);  // zeros() re-zeroes
}

}  // namespace
}  // namespace mf
