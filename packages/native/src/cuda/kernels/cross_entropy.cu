// Softmax cross-entropy over the vocabulary fused with its gradient, the CUDA twin of
// kernels/cross_entropy.cc. No probability matrix is kept: (softmax - onehot) * gradScale goes
// straight into dlogits, which may be the logits buffer itself.
//   lse_r = max_j x_rj + log sum_j exp(x_rj - max_j x_rj),  loss_r = lse_r - x_{r, t_r}
// A target of -1 marks a row to ignore (loss 0, gradient 0).
//
// One block per row and three passes over the row (max, sum of exponentials, gradient): vocabularies
// of 50K-256K entries are far wider than a block, and the second and third passes find the row in
// L2 (a bf16 row of 50257 entries is ~100 KB). Exponentials are expf (full precision, not __expf),
// sums fp32 per thread then over the block; the loss itself is formed in double from the fp32 sum as
// the CPU kernel does.
//
// Targets live on the device, so the launcher cannot check them as the CPU kernel does (it throws
// naming the row); a target outside [-1, vocab) instead gives a NaN loss and a NaN gradient row.
#include <cstdint>

#include "dtype.cuh"

namespace mist_cuda {
namespace {

template <typename T>
__device__ __forceinline__ void CrossEntropy(float* loss, const T* logits, const int* targets, T* dlogits,
                                             int64_t vocab, float grad_scale) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const T* x = logits + r * vocab;
  T* d = dlogits != nullptr ? dlogits + r * vocab : nullptr;
  const int64_t t = targets[r];  // the same for the whole block: the early returns below are uniform
  if (t < -1 || t >= vocab) {
    const float nan = __int_as_float(0x7fc00000);
    if (threadIdx.x == 0) loss[r] = nan;
    if (d != nullptr) {
      for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x) Store(d, c, nan);
    }
    return;
  }
  if (t == -1) {
    if (threadIdx.x == 0) loss[r] = 0.f;
    if (d != nullptr) {
      for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x) Store(d, c, 0.f);
    }
    return;
  }
  // Read before any thread writes d: with dlogits == logits, x[t] is overwritten in the last pass.
  const float xt = Load(x, t);
  float m = -INFINITY;
  for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x) m = fmaxf(m, Load(x, c));
  const float mx = BlockMax(m, scratch);
  float s = 0.f;
  for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x) s += expf(Load(x, c) - mx);
  const float sum = BlockSum(s, scratch);  // its barriers also order every read above before the writes
  if (threadIdx.x == 0) {
    loss[r] = static_cast<float>(log(static_cast<double>(sum)) + static_cast<double>(mx) - static_cast<double>(xt));
  }
  if (d == nullptr) return;
  const float inv = 1.f / sum;
  for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x) {
    const float p = expf(Load(x, c) - mx) * inv;  // each element read then written by this thread only
    Store(d, c, (c == t ? p - 1.f : p) * grad_scale);
  }
}

}  // namespace
}  // namespace mist_cuda

// Launch shape (ops/cross_entropy.cc): grid (rows), block (threads: a multiple of 32, <= 1024).
#define MIST_CROSS_ENTROPY_KERNELS(suffix, T)                                                                     \
  extern "C" __global__ void __launch_bounds__(1024)                                                              \
      mist_cross_entropy_##suffix(float* loss, const T* logits, const int* targets, T* dlogits, int64_t vocab,    \
                                  float grad_scale) {                                                             \
    mist_cuda::CrossEntropy<T>(loss, logits, targets, dlogits, vocab, grad_scale);                                \
  }

MIST_FOR_EACH_STORAGE(MIST_CROSS_ENTROPY_KERNELS)
