// CUDA optimizer kernels, the device side of cuda/ops/adamw.cc, mirroring kernels/adamw.cc:
//
// AdamW with decoupled weight decay (Loshchilov & Hutter 2019, Algorithm 2). The master parameter
// and the moments are fp32; the gradient is in the storage dtype; an optional output receives the
// updated parameter rounded to the storage dtype (the bf16/fp16 model copy), written in the same
// pass so the model copy never needs a separate cast:
//   g = grad * gradScale
//   m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2
//   p -= lr * (wd * p + (m c1) / (sqrt(v c2) + eps)),  c1 = 1 / (1 - b1^t), c2 = 1 / (1 - b2^t)
// (c1, c2 are computed by the launcher in double, as the CPU kernel does.)
//
// sumSquares: out[0] = sum x^2 in double (the CPU kernel sums in double too), for gradient clipping
// by global norm (Pascanu et al. 2013). One block of kSumSquaresThreads threads walks the whole
// buffer: thread t adds its elements in a fixed order, the block then adds the threads' sums in a
// fixed tree, so the result is the same bits on every run (no atomics, no scratch memory).
#include <cstdint>

#include "dtype.cuh"

namespace mist_cuda {
namespace {

template <typename T>
__device__ __forceinline__ void AdamWBody(float* param, const T* grad, float* m, float* v, T* paramOut, int64_t n,
                                          float lr, float b1, float b2, float eps, float wd, float gs, float c1,
                                          float c2) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float gi = Load(grad, i) * gs;
    const float mi = b1 * m[i] + (1.f - b1) * gi;
    const float vi = b2 * v[i] + (1.f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float p = param[i];
    const float updated = p - lr * (wd * p + (mi * c1) / (sqrtf(vi * c2) + eps));
    param[i] = updated;
    if (paramOut != nullptr) Store(paramOut, i, updated);
  }
}

constexpr int kSumSquaresThreads = 1024;

// Sum over the block in double (blockDim.x == kSumSquaresThreads); the result is valid in thread 0.
// The shuffle tree and the order of the warps' sums are fixed, so the sum is deterministic.
__device__ __forceinline__ double BlockSumDouble(double s) {
  __shared__ double warpSums[kSumSquaresThreads / 32];
  for (int offset = 16; offset > 0; offset >>= 1) s += __shfl_xor_sync(0xffffffffu, s, offset);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warpSums[warp] = s;
  __syncthreads();
  double total = 0.0;
  if (warp == 0) {
    total = lane < kSumSquaresThreads / 32 ? warpSums[lane] : 0.0;
    for (int offset = 16; offset > 0; offset >>= 1) total += __shfl_xor_sync(0xffffffffu, total, offset);
  }
  return total;
}

// One block only. When x is 16-byte aligned the loop reads 16 bytes per thread per load (4 fp32 or
// 8 bf16/fp16 values) and issues four such loads before adding, so enough bytes are in flight for a
// single multiprocessor to stream the buffer; the tail (and an unaligned x) goes element by element.
template <typename T>
__device__ __forceinline__ void SumSquaresBody(float* out, const T* x, int64_t n) {
  constexpr int kVec = 16 / sizeof(T);
  constexpr int kUnroll = 4;
  const int t = threadIdx.x;
  double acc = 0.0;
  int64_t tailStart = 0;
  if ((reinterpret_cast<uintptr_t>(x) & 15) == 0) {
    const int64_t vectors = n / kVec;
    const uint4* xv = reinterpret_cast<const uint4*>(x);
    int64_t j = t;
    for (; j + (kUnroll - 1) * kSumSquaresThreads < vectors; j += kUnroll * kSumSquaresThreads) {
      uint4 raw[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) raw[u] = xv[j + u * kSumSquaresThreads];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const T* vals = reinterpret_cast<const T*>(&raw[u]);
#pragma unroll
        for (int k = 0; k < kVec; ++k) {
          const double e = Load(vals, k);
          acc += e * e;
        }
      }
    }
    for (; j < vectors; j += kSumSquaresThreads) {
      const uint4 raw = xv[j];
      const T* vals = reinterpret_cast<const T*>(&raw);
#pragma unroll
      for (int k = 0; k < kVec; ++k) {
        const double e = Load(vals, k);
        acc += e * e;
      }
    }
    tailStart = vectors * kVec;
  }
  for (int64_t i = tailStart + t; i < n; i += kSumSquaresThreads) {
    const double e = Load(x, i);
    acc += e * e;
  }
  const double total = BlockSumDouble(acc);
  if (t == 0) out[0] = static_cast<float>(total);
}

}  // namespace
}  // namespace mist_cuda

#define MIST_OPTIMIZER_VARIANTS(S, T)                                                                          \
  extern "C" __global__ void __launch_bounds__(256)                                                         \
      mist_adamw_##S(float* param, const T* grad, float* m, float* v, T* paramOut, int64_t n, float lr,     \
                     float beta1, float beta2, float eps, float weightDecay, float gradScale, float c1,     \
                     float c2) {                                                                            \
    mist_cuda::AdamWBody<T>(param, grad, m, v, paramOut, n, lr, beta1, beta2, eps, weightDecay, gradScale, \
                            c1, c2);                                                                        \
  }                                                                                                         \
  extern "C" __global__ void __launch_bounds__(mist_cuda::kSumSquaresThreads)                               \
      mist_sum_squares_##S(float* out, const T* x, int64_t n) {                                             \
    mist_cuda::SumSquaresBody<T>(out, x, n);                                                                \
  }

MIST_FOR_EACH_STORAGE(MIST_OPTIMIZER_VARIANTS)
