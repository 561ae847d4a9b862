// Element-wise float32 reductions used by the CPU ring algorithms. Large inputs are split across
// a small process-wide thread pool; the split is static, so results never depend on thread timing.
#pragma once
#include <cstddef>

#include "collectives/communicator.h"

namespace mist::collectives {

// Below this many elements a reduction runs on the calling thread only.
constexpr size_t kParallelReduceMinElements = 256 * 1024;

// dst[i] = dst[i] (op) src[i]; avg accumulates like sum (the caller scales once at the end).
void ReduceInto(float* dst, const float* src, size_t count, ReduceOp op);
// dst[i] /= divisor (finishes an average).
void DivideBy(float* dst, size_t count, float divisor);

}  // namespace mist::collectives
