#include "tensor/allocator.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>

#include "util/error.h"

namespace mf::storage {

namespace {

// Under AddressSanitizer every buffer goes through malloc, so out-of-bounds accesses to large
// tensors are still caught (a recycled mapping has no redzones).
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kRecycle = false;
#else
constexpr bool kRecycle = true;
#endif

constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kGranule = size_t{64} << 10;  // large sizes round up to 64 KiB

size_t round_up(size_t n, size_t to) {
  return (n + to - 1) / to * to;
}

// A cached buffer may serve a request up to 1/8 smaller than itself: the same layer shapes recur
// every step, so exact sizes are the common case and the slack only absorbs near neighbours.
bool fits(size_t block, size_t request) {
  return block >= request && block - request <= request / 8;
}

struct Cache {
  std::mutex mutex;
  std::multimap<size_t, void*> free_blocks;  // size → buffer
  std::map<void*, size_t> live;              // buffer → its real (rounded) size
  AllocatorStats stats;
};

Cache& cache() {
  static Cache* instance = new Cache();  // never destroyed: tensors may outlive static teardown
  return *instance;
}

// 2 MiB-aligned anonymous mapping of `bytes` (a multiple of kGranule), advised for huge pages.
void* map_aligned(size_t bytes) {
  const size_t span = bytes + kHugePage;
  void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = round_up(start, kHugePage);
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t end = aligned + bytes, span_end = start + span;
  if (span_end > end) munmap(reinterpret_cast<void*>(end), span_end - end);
  void* p = reinterpret_cast<void*>(aligned);
  madvise(p, bytes, MADV_HUGEPAGE);  // advisory: ignored where THP is off
  return p;
}

}  // namespace

void* allocate(size_t bytes) {
  if (bytes < kLargeBytes || !kRecycle) {
    void* p = std::aligned_alloc(64, round_up(std::max<size_t>(bytes, 64), 64));
    MF_CHECK(p != nullptr, "out of memory allocating ", bytes, " bytes");
    return p;
  }
  const size_t size = round_up(bytes, kGranule);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.free_blocks.lower_bound(size);
    if (it != c.free_blocks.end() && fits(it->first, size)) {
      void* p = it->second;
      const size_t real = it->first;
      c.free_blocks.erase(it);
      c.live.emplace(p, real);
      c.stats.cached_bytes -= real;
      c.stats.live_bytes += real;
      c.stats.peak_live_bytes = std::max(c.stats.peak_live_bytes, c.stats.live_bytes);
      ++c.stats.reuses;
      return p;
    }
  }
  void* p = map_aligned(size);
  if (p == nullptr) {
    release_cached();  // a cache of the wrong sizes must not cause an out-of-memory
    p = map_aligned(size);
  }
  MF_CHECK(p != nullptr, "out of memory allocating ", bytes, " bytes");
  std::lock_guard<std::mutex> lock(c.mutex);
  c.live.emplace(p, size);
  c.stats.live_bytes += size;
  c.stats.peak_live_bytes = std::max(c.stats.peak_live_bytes, c.stats.live_bytes);
  ++c.stats.os_allocations;
  c.stats.peak_bytes = std::max(c.stats.peak_bytes, c.stats.live_bytes + c.stats.cached_bytes);
  return p;
}

void release(void* pointer, size_t bytes) {
  if (pointer == nullptr) return;
  if (bytes < kLargeBytes || !kRecycle) {
    std::free(pointer);
    return;
  }
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  auto it = c.live.find(pointer);
  if (it == c.live.end()) {  // a deleter cannot throw; this is a bug in the caller
    std::fputs("mf::storage::release: a buffer this allocator did not hand out\n", stderr);
    std::abort();
  }
  const size_t size = it->second;
  c.live.erase(it);
  c.free_blocks.emplace(size, pointer);
  c.stats.live_bytes -= size;
  c.stats.cached_bytes += size;
}

AllocatorStats stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.stats;
}

void release_cached() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  for (auto& [size, p] : c.free_blocks) munmap(p, size);
  c.free_blocks.clear();
  c.stats.cached_bytes = 0;
}

}  // namespace mf::storage
