// Tensor storage allocator: large buffers come from an arena that is kept across steps.
//
// Why: a training step allocates and frees the same few hundred activation and gradient buffers
// every iteration. Through malloc, every buffer above glibc's mmap threshold is a fresh mmap whose
// pages the kernel must fault in and zero on first touch: on IR-50 that was ~20 % of the step in
// system time. Here large buffers are carved from big reserved segments (best fit among the
// ranges that need no new pages, split on allocation, neighbours merged on release), so after
// the first step a training loop
// touches no new pages, and a buffer freed early in the forward pass (a BN input) is reused by a
// smaller one later, which keeps the memory held close to the memory in use.
// Segments are 2 MiB aligned and advised for transparent huge pages (512× fewer faults and TLB
// misses where the kernel allows them); only pages ever touched count towards RSS.
//
// Small buffers (< kLargeBytes) go to malloc, which already recycles them well. Under
// AddressSanitizer every buffer goes to malloc, so out-of-bounds accesses are still caught.
// Thread-safe. Every pointer is 64-byte aligned (AVX-512 loads).
#pragma once

#include <cstddef>
#include <map>
#include <mutex>

namespace mf {

struct AllocatorStats {
  size_t live_bytes = 0;       // large buffers in use
  size_t peak_live_bytes = 0;  // most ever in use at once
  size_t touched_bytes = 0;    // arena bytes ever handed out (≈ the arena's share of RSS)
  size_t reserved_bytes = 0;   // address space reserved for segments
  size_t allocations = 0;
};

// An arena of large buffers. One instance (storage::) serves all tensors; tests make their own.
class Arena {
 public:
  explicit Arena(size_t segment_bytes = size_t{1} << 30);
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  void* allocate(size_t bytes);  // null when the OS refuses memory
  void release(void* pointer);   // a pointer from allocate()
  AllocatorStats stats() const;
  void release_unused();  // unmaps segments with nothing in use

 private:
  struct Segment {
    size_t size = 0;
    size_t high_water = 0;  // bytes from the base ever handed out
  };
  char* new_segment(size_t min_bytes);
  void add_free(char* start, size_t size);  // merges with free neighbours in the same segment
  std::map<char*, Segment>::iterator segment_of(char* p);

  const size_t segment_bytes_;
  mutable std::mutex mutex_;
  std::map<char*, Segment> segments_;  // base → segment
  std::map<char*, size_t> free_;       // start → size, address order
  std::map<char*, size_t> live_;       // start → size
  AllocatorStats stats_;
};

namespace storage {
constexpr size_t kLargeBytes = size_t{1} << 20;

void* allocate(size_t bytes);               // never null: throws mf::Error when out of memory
void release(void* pointer, size_t bytes);  // bytes as passed to allocate
AllocatorStats stats();
void release_unused();  // unmaps arena segments with nothing in use (e.g. between phases)
}  // namespace storage

}  // namespace mf
