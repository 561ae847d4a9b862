// The causal softmax of the unfused attention core (Megatron-LM's core attention before flash
// attention, Shoeybi et al. 2019) on CUDA, the device side of cuda/ops/softmax.cc and the twins of
// causalSoftmax / causalSoftmaxBackward in kernels/unfused_attention.cc. The scores are [rows, seq]
// with rows = batch * heads * seq, row r being query i = r % seq, whose live keys are j <= i:
//   forward:  probs[r, j] = exp(s_j - max) / sum_{j' <= i} exp(s_j' - max) for j <= i, 0 for j > i
//   backward: dscores[r, j] = p_j * (dp_j - sum_{j' <= i} p_j' dp_j') for j <= i, 0 for j > i
// Both write every element of the row (the future, j > i, gets 0, as the CPU kernel writes it), so
// the output need not be cleared first. The diagonal j = i is always live, so no row is empty.
// Storage is f32, bf16 or f16; max, sums and exponentials are fp32 (expf: CUDA's accurate exp, not
// __expf) and each output is rounded once on store.
//
// One thread block per row (blockDim.x a multiple of 32, at most 1024): the block reduces the live
// prefix (BlockMax/BlockSum from dtype.cuh) and then writes the whole row. probs may alias scores
// and dscores may alias dprobs: every read that feeds a reduction completes before the reduction's
// barriers, and the final loop reads and writes element j in the same thread; rows are disjoint
// between blocks.
#include <cstdint>

#include "dtype.cuh"

namespace mist_cuda {
namespace {

template <typename T>
__device__ __forceinline__ void CausalSoftmaxRow(T* probs, const T* scores, int64_t seq) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const int64_t live = r % seq + 1;  // keys j <= i of query i = r % seq
  const T* x = scores + r * seq;
  T* y = probs + r * seq;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < live; j += blockDim.x) mx = fmaxf(mx, Load(x, j));
  mx = BlockMax(mx, scratch);
  float sum = 0.f;
  for (int64_t j = threadIdx.x; j < live; j += blockDim.x) sum += expf(Load(x, j) - mx);
  sum = BlockSum(sum, scratch);
  const float inv = 1.f / sum;  // as the CPU: normalise by multiplying with the reciprocal
  for (int64_t j = threadIdx.x; j < seq; j += blockDim.x) Store(y, j, j < live ? expf(Load(x, j) - mx) * inv : 0.f);
}

template <typename T>
__device__ __forceinline__ void CausalSoftmaxBackwardRow(T* dscores, const T* dprobs, const T* probs, int64_t seq) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const int64_t live = r % seq + 1;
  const int64_t off = r * seq;
  float dot = 0.f;
  for (int64_t j = threadIdx.x; j < live; j += blockDim.x) dot += Load(probs, off + j) * Load(dprobs, off + j);
  dot = BlockSum(dot, scratch);
  for (int64_t j = threadIdx.x; j < seq; j += blockDim.x) {
    Store(dscores, off + j, j < live ? Load(probs, off + j) * (Load(dprobs, off + j) - dot) : 0.f);
  }
}

}  // namespace
}  // namespace mist_cuda

// Exported variants; parameter lists are the launchers' argument lists (cuda/ops/softmax.cc). Launch
// shape: grid (rows), block (threads, 1, 1) with threads a multiple of 32 up to 1024.
#define MIST_SOFTMAX_VARIANTS(S, T)                                                                                   \
  extern "C" __global__ void __launch_bounds__(1024) mist_causal_softmax_##S(T* probs, const T* scores, int64_t seq) { \
    mist_cuda::CausalSoftmaxRow<T>(probs, scores, seq);                                                             \
  }                                                                                                                 \
  extern "C" __global__ void __launch_bounds__(1024)                                                                \
      mist_causal_softmax_backward_##S(T* dscores, const T* dprobs, const T* probs, int64_t seq) {                 \
    mist_cuda::CausalSoftmaxBackwardRow<T>(dscores, dprobs, probs, seq);                                            \
  }

MIST_FOR_EACH_STORAGE(MIST_SOFTMAX_VARIANTS)
