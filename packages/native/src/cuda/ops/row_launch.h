// Shape helpers shared by the row-wise CUDA launchers (norms, embedding, RoPE, cross-entropy): an
// overflow-checked element count, a one-block-per-row grid and a block size for a row's width.
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include "cuda/launch.h"

namespace mist::cuda {

/** a * b for buffer lengths, failing (naming the op) instead of overflowing. Both are positive. */
inline int64_t CheckedCount(const LaunchArgs& args, int64_t a, int64_t b) {
  if (a > std::numeric_limits<int64_t>::max() / b) {
    args.Fail("shape " + std::to_string(a) + " x " + std::to_string(b) + " overflows 64-bit element counts");
  }
  return a * b;
}

/** Grid of one block per row: CUDA allows at most 2^31 - 1 blocks in x. */
inline Dim3 RowGrid(const LaunchArgs& args, int64_t rows) {
  if (rows > std::numeric_limits<int32_t>::max()) {
    args.Fail("rows = " + std::to_string(rows) + " exceeds the 2^31 - 1 blocks of a CUDA grid");
  }
  Dim3 g;
  g.x = static_cast<unsigned>(rows);
  return g;
}

/** Threads for a block that loops over `width` items with `perThread` items each: a multiple of 32 in [32, maxThreads]. */
inline Dim3 RowBlock(int64_t width, int64_t perThread, int64_t maxThreads) {
  const int64_t want = (width + perThread - 1) / perThread;
  const int64_t rounded = (want + 31) / 32 * 32;
  Dim3 b;
  b.x = static_cast<unsigned>(std::clamp<int64_t>(rounded, 32, maxThreads));
  return b;
}

}  // namespace mist::cuda
