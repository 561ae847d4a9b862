// Rotary position embedding (Su et al. 2021, RoFormer, eq. 34), the CUDA twin of kernels/rope.cc:
// "rotate half" pairing as in GPT-NeoX and Llama: within each head of size D, element i pairs with
// element i + D/2 and both rotate by the angle pos * theta^(-2i/D). Input [rows = batch * seq,
// heads, D] (token-major); row r has position posOffset + r % seq.
//   forward:  y_i = x_i cos - x_{i+D/2} sin,  y_{i+D/2} = x_{i+D/2} cos + x_i sin
//   backward: the inverse rotation (sin negated).
// The angles' cos/sin are computed in double and rounded to float, as the CPU kernel's table is,
// so f32 results agree with it to the last bits of the products.
#include <cstdint>

#include "dtype.cuh"

namespace mist_cuda {
namespace {

// One block per row. The row's cos/sin for the D/2 frequencies go to dynamic shared memory first
// (2 * D/2 floats), then the threads rotate every (head, pair) of the row. out may alias in: each
// pair is read and written by one thread.
template <typename T>
__device__ __forceinline__ void Rope(T* out, const T* in, int64_t seq, int64_t heads, int64_t head_dim,
                                     int64_t offset, double theta, int inverse) {
  extern __shared__ float table[];  // [half] cos, then [half] sin
  const int64_t half = head_dim / 2;
  float* cs = table;
  float* sn = table + half;
  const int64_t r = blockIdx.x;
  const double pos = static_cast<double>(r % seq + offset);
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
    const double freq = pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
    double s, c;
    sincos(pos * freq, &s, &c);
    cs[i] = static_cast<float>(c);
    sn[i] = static_cast<float>(inverse ? -s : s);
  }
  __syncthreads();
  const int64_t width = heads * head_dim;
  const int64_t pairs = heads * half;
  for (int64_t k = threadIdx.x; k < pairs; k += blockDim.x) {
    const int64_t h = k / half, i = k - h * half;
    const int64_t base = r * width + h * head_dim;
    const float x0 = Load(in, base + i), x1 = Load(in, base + i + half);
    const float c = cs[i], s = sn[i];
    Store(out, base + i, x0 * c - x1 * s);
    Store(out, base + i + half, x1 * c + x0 * s);
  }
}

}  // namespace
}  // namespace mist_cuda

// Launch shape (ops/rope.cc): grid (rows), block (threads <= 1024), dynamic shared memory
// headDim * sizeof(float) bytes. `inverse` != 0 gives ropeBackward.
#define MIST_ROPE_KERNELS(suffix, T)                                                                              \
  extern "C" __global__ void __launch_bounds__(1024)                                                              \
      mist_rope_##suffix(T* out, const T* in, int64_t seq, int64_t heads, int64_t head_dim, int64_t offset,       \
                         double theta, int inverse) {                                                             \
    mist_cuda::Rope<T>(out, in, seq, heads, head_dim, offset, theta, inverse);                                    \
  }

MIST_FOR_EACH_STORAGE(MIST_ROPE_KERNELS)
