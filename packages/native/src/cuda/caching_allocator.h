// A caching allocator for device memory with exact accounting, after the design of PyTorch's CUDA
// caching allocator (c10/cuda/CUDACachingAllocator.cpp): requests are rounded to 512 bytes; small
// ones (<= 1 MiB) are carved from 2 MiB segments, large ones from segments rounded up to 2 MiB;
// a freed block returns to a best-fit pool and merges with its free neighbours in the segment;
// memory goes back to the device only on EmptyCache() or when an allocation would otherwise fail.
// The statistics are what an analyzer prediction is compared with: allocated (live blocks,
// rounded), reserved (segments held), their peaks, and fragmentation of the cached free memory.
// The raw memory source is abstract, so the same logic is tested on host memory without a GPU.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>

namespace mist::cuda {

class RawMemory {
 public:
  virtual ~RawMemory() = default;
  // Returns 0 when the memory is exhausted (other failures throw).
  virtual uintptr_t Allocate(size_t bytes) = 0;
  virtual void Release(uintptr_t address, size_t bytes) = 0;
};

struct AllocatorStats {
  size_t allocated = 0;       // bytes in live blocks (rounded sizes)
  size_t requested = 0;       // bytes asked for by live allocations (unrounded)
  size_t reserved = 0;        // bytes of segments obtained from the raw source
  size_t peakAllocated = 0;
  size_t peakReserved = 0;
  size_t liveAllocations = 0;
  size_t segments = 0;
  uint64_t allocations = 0;   // Allocate() calls that succeeded
  uint64_t rawAllocations = 0;
  uint64_t rawReleases = 0;
  uint64_t cacheHits = 0;     // allocations served without a new segment
  uint64_t outOfMemory = 0;   // Allocate() calls that threw
  size_t largestFreeBlock = 0;
  // 1 - largest cached free block / all cached free bytes (0 when nothing is cached): how much of
  // the reserved-but-unused memory could not serve one request of its total size.
  double fragmentation = 0;
};

class OutOfMemoryError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class CachingAllocator {
 public:
  static constexpr size_t kMinBlock = 512;
  static constexpr size_t kSmallRequest = 1 << 20;  // 1 MiB
  static constexpr size_t kSmallSegment = 2 << 20;  // 2 MiB
  static constexpr size_t kSegmentRound = 2 << 20;

  explicit CachingAllocator(RawMemory& raw) : raw_(raw) {}
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // Throws OutOfMemoryError naming the request and the state when neither the cache nor the raw
  // source (after releasing every free segment) can serve it.
  uintptr_t Allocate(size_t bytes);
  void Free(uintptr_t address);
  // Returns every fully free segment to the raw source.
  void EmptyCache();
  void ResetPeaks();
  AllocatorStats Stats() const;
  // The rounded size a request of `bytes` occupies.
  static size_t RoundSize(size_t bytes);

 private:
  struct Block {
    uintptr_t address = 0;
    size_t size = 0;
    size_t requested = 0;
    bool small = false;    // pool of the segment it belongs to
    bool free = true;
    uintptr_t segment = 0;  // address of the segment's first block
    Block* prev = nullptr;  // neighbours inside the segment
    Block* next = nullptr;
  };
  struct BySize {
    bool operator()(const Block* a, const Block* b) const {
      if (a->size != b->size) return a->size < b->size;
      return a->address < b->address;
    }
  };

  Block* FindFree(bool small, size_t size);
  Block* NewSegment(bool small, size_t size);
  void ReleaseFreeSegments();
  void Split(Block* block, size_t size);
  std::set<Block*, BySize>& Pool(bool small) { return small ? smallFree_ : largeFree_; }
  std::string Describe(size_t bytes) const;

  RawMemory& raw_;
  mutable std::mutex mutex_;
  std::set<Block*, BySize> smallFree_, largeFree_;
  std::map<uintptr_t, Block*> live_;              // address -> block in use
  std::map<uintptr_t, size_t> segmentSizes_;      // segment address -> bytes
  AllocatorStats stats_;
};

}  // namespace mist::cuda
