// CUDA element-wise kernels, the device side of cuda/ops/elementwise.cc: residual add, accumulate,
// copy/scale/fill, bias add and its gradient, GELU (tanh form), squared ReLU and SwiGLU with their
// backward passes, and cast between the storage dtypes. Each mirrors the CPU kernel of the same
// name (kernels/elementwise.cc, kernels/squared_relu.cc): the same formulas, the same written vs
// accumulated outputs; bf16/f16 values are loaded to fp32, computed in fp32 and rounded to nearest
// even once on store.
//
// Layout: every kernel body is a template over the storage type T, exported once per storage dtype
// as extern "C" mist_<op>_<f32|bf16|f16> (cast: mist_cast_<src>_to_<dst>). The element-wise bodies
// are grid-stride loops (any grid size covers any n), so the launcher may cap the grid. Outputs may
// alias inputs where the CPU kernel allows it (out = a in add, y = x in gelu, ...): every element is
// read and written by the same thread, and no pointer is declared __restrict.
#include <cstdint>

#include "dtype.cuh"

namespace mist_cuda {
namespace {

__device__ __forceinline__ int64_t FirstIndex() { return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t GridStride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// add: out = a + b.
template <typename T>
__device__ __forceinline__ void AddBody(T* out, const T* a, const T* b, int64_t n) {
  for (int64_t i = FirstIndex(); i < n; i += GridStride()) Store(out, i, Load(a, i) + Load(b, i));
}

// accumulate: dst += alpha * src.
template <typename T>
__device__ __forceinline__ void AccumulateBody(T* dst, const T* src, int64_t n, float alpha) {
  for (int64_t i = FirstIndex(); i < n; i += GridStride()) Store(dst, i, Load(dst, i) + alpha * Load(src, i));
}

// copy: dst = src, bit for bit (no round trip through fp32).
template <typename T>
__device__ __forceinline__ void CopyBody(T* dst, const T* src, int64_t n) {
  for (int64_t i = FirstIndex(); i < n; i += GridStride()) dst[i] = src[i];
}

// scale: x *= alpha.
template <typename T>
__device__ __forceinline__ void ScaleBody(T* x, int64_t n, float alpha) {
  for (int64_t i = FirstIndex(); i < n; i += GridStride()) Store(x, i, Load(x, i) * alpha);
}

// fill: x = value (rounded to the storage dtype once).
template <typename T>
__device__ __forceinline__ void FillBody(T* x, int64_t n, float value) {
  const T v = FromFloat<T>(value);
  for (int64_t i = FirstIndex(); i < n; i += GridStride()) x[i] = v;
}

// biasAdd: y[r, c] += bias[c]. Grid: x covers the columns (one thread per column), y strides over
// the rows, so no thread divides an index by cols.
template <typename T>
__device__ __forceinline__ void BiasAddBody(T* y, const T* bias, int64_t rows, int64_t cols) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  const float b = Load(bias, c);
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const int64_t i = r * cols + c;
    Store(y, i, Load(y, i) + b);
  }
}

// biasGrad: dbias[c] += sum_r dy[r, c], a column reduction without atomics, so the bits never
// depend on scheduling. A block (kBiasGradCols x kBiasGradLanes threads) owns kBiasGradCols
// adjacent columns (a warp reads one contiguous row segment per step: coalesced); lane ty sums rows
// ty, ty + kBiasGradLanes, ... in fp32 in that order, then thread (tx, 0) adds the lanes' partial
// sums in lane order and adds the total to dbias once.
constexpr int kBiasGradCols = 32;
constexpr int kBiasGradLanes = 16;

template <typename T>
__device__ __forceinline__ void BiasGradBody(T* dbias, const T* dy, int64_t rows, int64_t cols) {
  __shared__ float part[kBiasGradLanes][kBiasGradCols + 1];  // +1: no bank conflicts on the column reads
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kBiasGradCols + tx;
  float acc = 0.f;
  if (c < cols) {
#pragma unroll 4
    for (int64_t r = ty; r < rows; r += kBiasGradLanes) acc += Load(dy, r * cols + c);
  }
  part[ty][tx] = acc;
  __syncthreads();  // every thread of the block reaches this (no early return above)
  if (ty == 0 && c < cols) {
    float s = 0.f;
    for (int k = 0; k < kBiasGradLanes; ++k) s += part[k][tx];
    Store(dbias, c, Load(dbias, c) + s);
  }
}

// GELU, tanh approximation (Hendrycks & Gimpel 2016, section 2), as kernels/elementwise.cc:
//   gelu(x) = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
//   gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2),  t = tanh(u)
// tanhf is CUDA's accurate tanh (a few ulp); the CPU's FastTanh is within about 1e-7 of it.
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluC = 0.044715f;

template <typename T>
__device__ __forceinline__ void GeluBody(T* y, const T* x, int64_t n) {
  for (int64_t i = FirstIndex(); i < n; i += GridStride()) {
    const float v = Load(x, i);
    Store(y, i, 0.5f * v * (1.f + tanhf(kSqrt2OverPi * (v + kGeluC * v * v * v))));
  }
}

// geluBackward: dx = dy * gelu'(x) (written).
template <typename T>
__device__ __forceinline__ void GeluBackwardBody(T* dx, const T* dy, const T* x, int64_t n) {
  for (int64_t i = FirstIndex(); i < n; i += GridStride()) {
    const float v = Load(x, i);
    const float t = tanhf(kSqrt2OverPi * (v + kGeluC * v * v * v));
    const float d = 0.5f * (1.f + t) + 0.5f * v * (1.f - t * t) * kSqrt2OverPi * (1.f + 3.f * kGeluC * v * v);
    Store(dx, i, Load(dy, i) * d);
  }
}

// Squared ReLU (So et al. 2021, "Primer", Sec. 3): y = relu(x)^2, dy/dx = 2 relu(x).
template <typename T>
__device__ __forceinline__ void SquaredReluBody(T* y, const T* x, int64_t n) {
  for (int64_t i = FirstIndex(); i < n; i += GridStride()) {
    const float v = Load(x, i);
    const float r = v > 0.f ? v : 0.f;
    Store(y, i, r * r);
  }
}

template <typename T>
__device__ __forceinline__ void SquaredReluBackwardBody(T* dx, const T* dy, const T* x, int64_t n) {
  for (int64_t i = FirstIndex(); i < n; i += GridStride()) {
    const float v = Load(x, i);
    const float r = v > 0.f ? v : 0.f;
    Store(dx, i, Load(dy, i) * 2.f * r);
  }
}

// SwiGLU (Shazeer 2020, "GLU Variants Improve Transformer"): y = silu(gate) * up, silu(g) = g s,
// silu'(g) = s (1 + g (1 - s)), s = sigmoid(g) = 1 / (1 + e^-g). expf(-g) = inf for g < -88 gives
// s = 0 exactly, which is the limit.
__device__ __forceinline__ float Sigmoid(float g) { return 1.f / (1.f + expf(-g)); }

template <typename T>
__device__ __forceinline__ void SwigluBody(T* y, const T* gate, const T* up, int64_t n) {
  for (int64_t i = FirstIndex(); i < n; i += GridStride()) {
    const float g = Load(gate, i);
    Store(y, i, g * Sigmoid(g) * Load(up, i));
  }
}

// swigluBackward: dgate = dy up silu'(gate), dup = dy silu(gate) (both written).
template <typename T>
__device__ __forceinline__ void SwigluBackwardBody(T* dgate, T* dup, const T* dy, const T* gate, const T* up, int64_t n) {
  for (int64_t i = FirstIndex(); i < n; i += GridStride()) {
    const float g = Load(gate, i), u = Load(up, i), gy = Load(dy, i);
    const float s = Sigmoid(g);
    Store(dgate, i, gy * u * s * (1.f + g * (1.f - s)));
    Store(dup, i, gy * (g * s));
  }
}

// cast: dst = src converted through fp32 (exact for bf16/f16 sources), rounded to nearest even once.
template <typename D, typename S>
__device__ __forceinline__ void CastBody(D* dst, const S* src, int64_t n) {
  for (int64_t i = FirstIndex(); i < n; i += GridStride()) Store(dst, i, Load(src, i));
}

}  // namespace
}  // namespace mist_cuda

// The exported variants. Parameter lists are the launchers' argument lists (cuda/ops/elementwise.cc).
#define MIST_ELEMENTWISE_VARIANTS(S, T)                                                                       \
  extern "C" __global__ void __launch_bounds__(256)                                                        \
      mist_add_##S(T* out, const T* a, const T* b, int64_t n) {                                            \
    mist_cuda::AddBody<T>(out, a, b, n);                                                                   \
  }                                                                                                        \
  extern "C" __global__ void __launch_bounds__(256)                                                        \
      mist_accumulate_##S(T* dst, const T* src, int64_t n, float alpha) {                                  \
    mist_cuda::AccumulateBody<T>(dst, src, n, alpha);                                                      \
  }                                                                                                        \
  extern "C" __global__ void __launch_bounds__(256) mist_copy_##S(T* dst, const T* src, int64_t n) {      \
    mist_cuda::CopyBody<T>(dst, src, n);                                                                   \
  }                                                                                                        \
  extern "C" __global__ void __launch_bounds__(256) mist_scale_##S(T* x, int64_t n, float alpha) {        \
    mist_cuda::ScaleBody<T>(x, n, alpha);                                                                  \
  }                                                                                                        \
  extern "C" __global__ void __launch_bounds__(256) mist_fill_##S(T* x, int64_t n, float value) {         \
    mist_cuda::FillBody<T>(x, n, value);                                                                   \
  }                                                                                                        \
  extern "C" __global__ void __launch_bounds__(256)                                                        \
      mist_bias_add_##S(T* y, const T* bias, int64_t rows, int64_t cols) {                                 \
    mist_cuda::BiasAddBody<T>(y, bias, rows, cols);                                                        \
  }                                                                                                        \
  extern "C" __global__ void __launch_bounds__(mist_cuda::kBiasGradCols * mist_cuda::kBiasGradLanes)       \
      mist_bias_grad_##S(T* dbias, const T* dy, int64_t rows, int64_t cols) {                              \
    mist_cuda::BiasGradBody<T>(dbias, dy, rows, cols);                                                     \
  }                                                                                                        \
  extern "C" __global__ void __launch_bounds__(256) mist_gelu_##S(T* y, const T* x, int64_t n) {          \
    mist_cuda::GeluBody<T>(y, x, n);                                                                       \
  }                                                                                                        \
  extern "C" __global__ void __launch_bounds__(256)                                                        \
      mist_gelu_backward_##S(T* dx, const T* dy, const T* x, int64_t n) {                                  \
    mist_cuda::GeluBackwardBody<T>(dx, dy, x, n);                                                          \
  }                                                                                                        \
  extern "C" __global__ void __launch_bounds__(256) mist_squared_relu_##S(T* y, const T* x, int64_t n) {  \
    mist_cuda::SquaredReluBody<T>(y, x, n);                                                                \
  }                                                                                                        \
  extern "C" __global__ void __launch_bounds__(256)                                                        \
      mist_squared_relu_backward_##S(T* dx, const T* dy, const T* x, int64_t n) {                          \
    mist_cuda::SquaredReluBackwardBody<T>(dx, dy, x, n);                                                   \
  }                                                                                                        \
  extern "C" __global__ void __launch_bounds__(256)                                                        \
      mist_swiglu_##S(T* y, const T* gate, const T* up, int64_t n) {                                       \
    mist_cuda::SwigluBody<T>(y, gate, up, n);                                                              \
  }                                                                                                        \
  extern "C" __global__ void __launch_bounds__(256)                                                        \
      mist_swiglu_backward_##S(T* dgate, T* dup, const T* dy, const T* gate, const T* up, int64_t n) {     \
    mist_cuda::SwigluBackwardBody<T>(dgate, dup, dy, gate, up, n);                                         \
  }

MIST_FOR_EACH_STORAGE(MIST_ELEMENTWISE_VARIANTS)

// mist_cast_<src>_to_<dst> for the nine (src, dst) pairs.
#define MIST_CAST_VARIANT(SS, ST, DS, DT)                                                                   \
  extern "C" __global__ void __launch_bounds__(256)                                                        \
      mist_cast_##SS##_to_##DS(DT* dst, const ST* src, int64_t n) {                                        \
    mist_cuda::CastBody<DT, ST>(dst, src, n);                                                              \
  }
#define MIST_CAST_FROM(SS, ST) \
  MIST_CAST_VARIANT(SS, ST, f32, float) MIST_CAST_VARIANT(SS, ST, bf16, __nv_bfloat16) MIST_CAST_VARIANT(SS, ST, f16, __half)
MIST_FOR_EACH_STORAGE(MIST_CAST_FROM)
