#include "cuda/caching_allocator.h"

#include <algorithm>

namespace mist::cuda {

CachingAllocator::~CachingAllocator() {
  // Live blocks still point into segments; the process owns them until exit. Free the bookkeeping
  // and return whatever is fully free.
  std::lock_guard<std::mutex> lock(mutex_);
  ReleaseFreeSegments();
}

size_t CachingAllocator::RoundSize(size_t bytes) {
  if (bytes == 0) return kMinBlock;
  return (bytes + kMinBlock - 1) / kMinBlock * kMinBlock;
}

CachingAllocator::Block* CachingAllocator::FindFree(bool small, size_t size) {
  auto& pool = Pool(small);
  Block key;
  key.size = size;
  key.address = 0;
  auto it = pool.lower_bound(&key);
  if (it == pool.end()) return nullptr;
  Block* block = *it;
  pool.erase(it);
  return block;
}

CachingAllocator::Block* CachingAllocator::NewSegment(bool small, size_t size) {
  const size_t bytes = small ? kSmallSegment : (size + kSegmentRound - 1) / kSegmentRound * kSegmentRound;
  uintptr_t address = raw_.Allocate(bytes);
  if (address == 0) {
    ReleaseFreeSegments();
    address = raw_.Allocate(bytes);
    if (address == 0) return nullptr;
  }
  stats_.rawAllocations += 1;
  stats_.reserved += bytes;
  stats_.segments += 1;
  stats_.peakReserved = std::max(stats_.peakReserved, stats_.reserved);
  segmentSizes_[address] = bytes;
  auto* block = new Block();
  block->address = address;
  block->size = bytes;
  block->small = small;
  block->segment = address;
  return block;
}

// Keeps `size` bytes in `block` and puts the rest back in the pool as a new free block, when the
// rest is worth keeping (PyTorch: any remainder for small blocks, > 1 MiB for large ones).
void CachingAllocator::Split(Block* block, size_t size) {
  const size_t rest = block->size - size;
  const bool worth = block->small ? rest >= kMinBlock : rest > kSmallRequest;
  if (!worth) return;
  auto* tail = new Block();
  tail->address = block->address + size;
  tail->size = rest;
  tail->small = block->small;
  tail->segment = block->segment;
  tail->prev = block;
  tail->next = block->next;
  if (block->next != nullptr) block->next->prev = tail;
  block->next = tail;
  block->size = size;
  Pool(tail->small).insert(tail);
}

uintptr_t CachingAllocator::Allocate(size_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  const size_t size = RoundSize(bytes);
  const bool small = size <= kSmallRequest;
  Block* block = FindFree(small, size);
  if (block != nullptr) {
    stats_.cacheHits += 1;
  } else {
    block = NewSegment(small, size);
    if (block == nullptr) {
      stats_.outOfMemory += 1;
      throw OutOfMemoryError(Describe(bytes));
    }
  }
  Split(block, size);
  block->free = false;
  block->requested = bytes;
  live_[block->address] = block;
  stats_.allocations += 1;
  stats_.liveAllocations += 1;
  stats_.allocated += block->size;
  stats_.requested += bytes;
  stats_.peakAllocated = std::max(stats_.peakAllocated, stats_.allocated);
  return block->address;
}

void CachingAllocator::Free(uintptr_t address) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = live_.find(address);
  if (it == live_.end()) throw std::invalid_argument("CachingAllocator::Free: " + std::to_string(address) + " is not a live allocation");
  Block* block = it->second;
  live_.erase(it);
  stats_.liveAllocations -= 1;
  stats_.allocated -= block->size;
  stats_.requested -= block->requested;
  block->free = true;
  block->requested = 0;
  auto& pool = Pool(block->small);
  // Merge with free neighbours of the same segment.
  if (block->prev != nullptr && block->prev->free) {
    Block* prev = block->prev;
    pool.erase(prev);
    prev->size += block->size;
    prev->next = block->next;
    if (block->next != nullptr) block->next->prev = prev;
    delete block;
    block = prev;
  }
  if (block->next != nullptr && block->next->free) {
    Block* next = block->next;
    pool.erase(next);
    block->size += next->size;
    block->next = next->next;
    if (next->next != nullptr) next->next->prev = block;
    delete next;
  }
  pool.insert(block);
}

void CachingAllocator::ReleaseFreeSegments() {
  for (bool small : {true, false}) {
    auto& pool = Pool(small);
    for (auto it = pool.begin(); it != pool.end();) {
      Block* block = *it;
      if (block->prev == nullptr && block->next == nullptr) {  // the whole segment is free
        raw_.Release(block->address, block->size);
        stats_.rawReleases += 1;
        stats_.reserved -= block->size;
        stats_.segments -= 1;
        segmentSizes_.erase(block->address);
        it = pool.erase(it);
        delete block;
      } else {
        ++it;
      }
    }
  }
}

void CachingAllocator::EmptyCache() {
  std::lock_guard<std::mutex> lock(mutex_);
  ReleaseFreeSegments();
}

void CachingAllocator::ResetPeaks() {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.peakAllocated = stats_.allocated;
  stats_.peakReserved = stats_.reserved;
}

AllocatorStats CachingAllocator::Stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  AllocatorStats s = stats_;
  size_t largest = 0;
  for (const auto* pool : {&smallFree_, &largeFree_}) {
    if (!pool->empty()) largest = std::max(largest, (*pool->rbegin())->size);
  }
  s.largestFreeBlock = largest;
  const size_t cached = s.reserved - s.allocated;
  s.fragmentation = cached == 0 ? 0.0 : 1.0 - static_cast<double>(largest) / static_cast<double>(cached);
  return s;
}

std::string CachingAllocator::Describe(size_t bytes) const {
  auto mib = [](size_t b) { return std::to_string(static_cast<double>(b) / (1 << 20)).substr(0, 10) + " MiB"; };
  return "out of device memory: tried to allocate " + mib(bytes) + "; " + mib(stats_.allocated) + " allocated, " +
         mib(stats_.reserved) + " reserved in " + std::to_string(stats_.segments) + " segments (every free segment was released first)";
}

}  // namespace mist::cuda
