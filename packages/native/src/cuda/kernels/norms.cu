// LayerNorm (Ba et al. 2016, "Layer Normalization") and RMSNorm (Zhang & Sennrich 2019, "Root Mean
// Square Layer Normalization") over the last dimension of a row-major [rows, cols] tensor, forward
// and backward; the CUDA twins of kernels/norms.cc (same formulas, same saved statistics):
//   LayerNorm: xhat = (x - mean) * rstd, rstd = 1 / sqrt(var + eps), y = xhat * gamma + beta
//     dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = dy * gamma
//   RMSNorm:   xhat = x * rstd, rstd = 1 / sqrt(mean(x^2) + eps), y = xhat * gamma
//     dx = rstd * (g - xhat * mean(g * xhat))
//   dgamma += sum_rows dy * xhat, dbeta += sum_rows dy
// Storage is f32, bf16 or f16 (the <base>_<suffix> variants); every sum is fp32 and the saved
// mean/rstd are fp32. One thread block per row (blockDim.x a multiple of 32, at most 1024) for the
// row kernels; the column sums for dgamma/dbeta are a separate kernel in which each column is summed
// by one fixed set of threads in a fixed order, so results are deterministic (no float atomics).
#include <cstdint>

#include "dtype.cuh"

namespace mist_cuda {
namespace {

// Row kernel of the forward: one block per row. kCentered selects LayerNorm (mean subtracted,
// optional beta) over RMSNorm. y may alias x: every read of x that feeds the statistics happens
// before the second BlockSum's barriers, and the last loop reads and writes element c in the same
// thread.
template <typename T, bool kCentered>
__device__ __forceinline__ void NormForward(T* y, float* mean, float* rstd, const T* x, const T* gamma, const T* beta,
                                            int64_t cols, float eps) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const T* xr = x + r * cols;
  T* yr = y + r * cols;
  float mu = 0.f;
  float ss = 0.f;
  if (kCentered) {
    float s = 0.f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) s += Load(xr, c);
    mu = BlockSum(s, scratch) / static_cast<float>(cols);
    // Two passes (sum of squared deviations from the mean), as the CPU kernel: stable for large means.
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const float d = Load(xr, c) - mu;
      ss += d * d;
    }
  } else {
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const float v = Load(xr, c);
      ss += v * v;
    }
  }
  const float var = BlockSum(ss, scratch) / static_cast<float>(cols);
  // rstd in double from the fp32 variance, as the CPU kernel forms it.
  const float rs = static_cast<float>(1.0 / sqrt(static_cast<double>(var) + static_cast<double>(eps)));
  if (threadIdx.x == 0) {
    if (kCentered) mean[r] = mu;
    rstd[r] = rs;
  }
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    float v = (Load(xr, c) - mu) * rs * Load(gamma, c);
    if (kCentered && beta != nullptr) v += Load(beta, c);
    Store(yr, c, v);
  }
}

// Row kernel of the backward (dx only): one block per row. dx is written, or added to when
// `accumulate` (residual gradients). dx may alias dy (each element is read and written by one thread,
// after the row sums).
template <typename T, bool kCentered>
__device__ __forceinline__ void NormBackwardDx(T* dx, const T* dy, const T* x, const T* gamma, const float* mean,
                                               const float* rstd, int64_t cols, int accumulate) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const T* dyr = dy + r * cols;
  const T* xr = x + r * cols;
  T* dxr = dx + r * cols;
  const float mu = kCentered ? mean[r] : 0.f;
  const float rs = rstd[r];
  float sg = 0.f, sgx = 0.f;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    const float g = Load(dyr, c) * Load(gamma, c);
    sg += g;
    sgx += g * (Load(xr, c) - mu);
  }
  if (kCentered) sg = BlockSum(sg, scratch);
  sgx = BlockSum(sgx, scratch);
  const float mg = kCentered ? sg / static_cast<float>(cols) : 0.f;
  const float mgx = sgx * rs / static_cast<float>(cols);
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    float v = rs * (Load(dyr, c) * Load(gamma, c) - mg - (Load(xr, c) - mu) * rs * mgx);
    if (accumulate) v += Load(dxr, c);
    Store(dxr, c, v);
  }
}

// dgamma[c] += sum_r dy[r, c] * (x[r, c] - mean[r]) * rstd[r], dbeta[c] += sum_r dy[r, c] (dbeta and
// mean may be null: RMSNorm has neither). Block (32, kRowLanes): threadIdx.x is a column of the
// block's 32-column tile (coalesced reads along a row), threadIdx.y one of kRowLanes row lanes that
// each sum rows y, y + kRowLanes, ... ; the lanes' partials are then added in lane order by the
// threads of row lane 0. Every column's sum has one fixed order, whatever the launch: deterministic.
constexpr int kRowLanes = 32;

template <typename T>
__device__ __forceinline__ void NormParamGrads(T* dgamma, T* dbeta, const T* dy, const T* x, const float* mean,
                                               const float* rstd, int64_t rows, int64_t cols) {
  __shared__ float part_g[kRowLanes][33];  // 33: no bank conflicts on the column-wise reads below
  __shared__ float part_b[kRowLanes][33];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * 32 + tx;
  float g = 0.f, b = 0.f;
  if (c < cols) {
#pragma unroll 4
    for (int64_t r = ty; r < rows; r += kRowLanes) {
      const float mu = mean != nullptr ? mean[r] : 0.f;
      const float rs = rstd[r];
      const float d = Load(dy, r * cols + c);
      g += d * (Load(x, r * cols + c) - mu) * rs;
      b += d;
    }
  }
  part_g[ty][tx] = g;
  part_b[ty][tx] = b;
  __syncthreads();
  if (ty == 0 && c < cols) {
    float tg = 0.f, tb = 0.f;
    for (int k = 0; k < kRowLanes; ++k) {
      tg += part_g[k][tx];
      tb += part_b[k][tx];
    }
    Store(dgamma, c, Load(dgamma, c) + tg);
    if (dbeta != nullptr) Store(dbeta, c, Load(dbeta, c) + tb);
  }
}

}  // namespace
}  // namespace mist_cuda

// Exported variants. Launch shapes (ops/norms.cc): row kernels grid (rows), block (threads, 1, 1)
// with threads a multiple of 32 up to 1024; mist_norm_param_grads grid (ceil(cols / 32)), block
// (32, 32).
#define MIST_NORM_KERNELS(suffix, T)                                                                                  \
  extern "C" __global__ void __launch_bounds__(1024)                                                                  \
      mist_layer_norm_##suffix(T* y, float* mean, float* rstd, const T* x, const T* gamma, const T* beta,             \
                               int64_t cols, float eps) {                                                             \
    mist_cuda::NormForward<T, true>(y, mean, rstd, x, gamma, beta, cols, eps);                                        \
  }                                                                                                                   \
  extern "C" __global__ void __launch_bounds__(1024)                                                                  \
      mist_rms_norm_##suffix(T* y, float* rstd, const T* x, const T* gamma, int64_t cols, float eps) {                \
    mist_cuda::NormForward<T, false>(y, nullptr, rstd, x, gamma, nullptr, cols, eps);                                 \
  }                                                                                                                   \
  extern "C" __global__ void __launch_bounds__(1024)                                                                  \
      mist_layer_norm_backward_dx_##suffix(T* dx, const T* dy, const T* x, const T* gamma, const float* mean,         \
                                           const float* rstd, int64_t cols, int accumulate) {                         \
    mist_cuda::NormBackwardDx<T, true>(dx, dy, x, gamma, mean, rstd, cols, accumulate);                               \
  }                                                                                                                   \
  extern "C" __global__ void __launch_bounds__(1024)                                                                  \
      mist_rms_norm_backward_dx_##suffix(T* dx, const T* dy, const T* x, const T* gamma, const float* rstd,           \
                                         int64_t cols, int accumulate) {                                              \
    mist_cuda::NormBackwardDx<T, false>(dx, dy, x, gamma, nullptr, rstd, cols, accumulate);                           \
  }                                                                                                                   \
  extern "C" __global__ void __launch_bounds__(1024)                                                                  \
      mist_norm_param_grads_##suffix(T* dgamma, T* dbeta, const T* dy, const T* x, const float* mean,                 \
                                     const float* rstd, int64_t rows, int64_t cols) {                                 \
    mist_cuda::NormParamGrads<T>(dgamma, dbeta, dy, x, mean, rstd, rows, cols);                                       \
  }

MIST_FOR_EACH_STORAGE(MIST_NORM_KERNELS)
