// Device helpers shared by the CUDA kernels: the three storage dtypes (fp32, bf16, fp16) with fp32
// arithmetic, and warp/block sums. Every kernel family instantiates its templates once per storage
// dtype with MIST_FOR_EACH_STORAGE and exports them as extern "C" <base>_<suffix>.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace mist_cuda {

template <typename T>
__device__ __forceinline__ float Load(const T* p, long long i);
template <>
__device__ __forceinline__ float Load<float>(const float* p, long long i) { return p[i]; }
template <>
__device__ __forceinline__ float Load<__nv_bfloat16>(const __nv_bfloat16* p, long long i) { return __bfloat162float(p[i]); }
template <>
__device__ __forceinline__ float Load<__half>(const __half* p, long long i) { return __half2float(p[i]); }

// Round-to-nearest-even conversion from fp32, as the CPU side's reference rounding does.
template <typename T>
__device__ __forceinline__ T FromFloat(float v);
template <>
__device__ __forceinline__ float FromFloat<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half FromFloat<__half>(float v) { return __float2half_rn(v); }

template <typename T>
__device__ __forceinline__ void Store(T* p, long long i, float v) { p[i] = FromFloat<T>(v); }

__device__ __forceinline__ float WarpSum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ __forceinline__ float WarpMax(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets the sum.
// `scratch` holds 32 floats of shared memory; the call contains __syncthreads, so every thread of the
// block must reach it.
__device__ __forceinline__ float BlockSum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = WarpSum(v);
  __syncthreads();  // scratch may still be read by a previous BlockSum
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = lane < warps ? scratch[lane] : 0.f;
  return WarpSum(total);
}

__device__ __forceinline__ float BlockMax(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = WarpMax(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float m = lane < warps ? scratch[lane] : -INFINITY;
  return WarpMax(m);
}

}  // namespace mist_cuda

// MIST_FOR_EACH_STORAGE(M) expands M(suffix, type) for the three storage dtypes.
#define MIST_FOR_EACH_STORAGE(M) M(f32, float) M(bf16, __nv_bfloat16) M(f16, __half)
