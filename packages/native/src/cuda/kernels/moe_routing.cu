// Mixture-of-experts routing and data movement, the CUDA twins of kernels/moe_routing.cc (Megatron-
// Core's MoELayer with the all-to-all dispatcher; Mixtral, Jiang et al. 2024, Sec. 2.1):
//   moeTopK          per token the topK largest router logits (ties to the lower expert index) and
//                    the softmax over them
//   moeGatherRows    dst[pos[c]] = src[c / topK] (times probs[c] when given): the dispatch copy
//   moeScatterRows   dst[c] = src[pos[c]]: back to token order
//   moeCombine       out[n] += sum_j w_c * src[row of c], j ascending
//   moeGateBackward  the router logits' gradient through the weighted sum and the top-k softmax
// Storage f32, bf16 or f16 (<base>_<suffix>); probabilities are fp32, arithmetic fp32 or (softmax,
// dot products) double as the CPU kernels do it.
//
// Deterministic and free of atomics: every output element is written by one thread, and every sum has
// one fixed order (the weighted sum adds a token's copies in j order; the dot products reduce over a
// block in a fixed tree).
//
// Positions and expert indices live on the device, so the launchers cannot check them as the CPU
// kernels do (they throw naming the entry). Instead: a dispatch position outside [0, copies) writes
// nothing, a gather or combine position outside it gives a NaN row, and an expert index outside
// [0, experts) leaves that copy out of the logits' gradient. Nothing is read or written out of bounds.
#include <climits>
#include <cstdint>

#include "dtype.cuh"

namespace mist_cuda {
namespace {

// The largest topK the top-k kernels keep per token (Mixtral 2, DeepSeek-V3 8); the launchers check it.
constexpr int kMaxTopK = 32;

__device__ __forceinline__ float NaNf() { return __int_as_float(0x7fc00000); }

// Top-k gate, one warp per token (grid x blocks of blockDim.x / 32 warps). Round j picks, among the
// experts not chosen yet, what the CPU's sequential scan picks: the first candidate in expert order
// unless a later one has a strictly larger logit. So ties go to the lower index, and a NaN logit is
// never larger than another but is kept when it is the first candidate. Each lane scans experts
// lane, lane + 32, ...; the warp then combines (the lowest candidate; the largest non-NaN logit, the
// lower index on ties), an associative and commutative choice, so every lane ends with the same pick.
template <typename T>
__device__ __forceinline__ void TopK(int* index, float* probs, const T* logits, int64_t tokens, int experts, int topk) {
  const int lane = threadIdx.x & 31;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (n >= tokens) return;  // uniform over the warp: the shuffles below always see all 32 lanes
  const T* row = logits + n * experts;
  int chosen[kMaxTopK];  // the same in every lane
  for (int j = 0; j < topk; ++j) {
    int first = INT_MAX, best = -1;
    float best_v = 0.f;
    for (int e = lane; e < experts; e += 32) {
      bool taken = false;
      for (int i = 0; i < j; ++i) taken = taken || chosen[i] == e;
      if (taken) continue;
      if (first == INT_MAX) first = e;  // the lane's experts rise, so its first candidate is its lowest
      const float v = Load(row, e);
      if (isnan(v)) continue;
      if (best < 0 || v > best_v) {
        best = e;
        best_v = v;
      }
    }
    for (int offset = 16; offset > 0; offset >>= 1) {
      const int other_first = __shfl_xor_sync(0xffffffffu, first, offset);
      const int other_best = __shfl_xor_sync(0xffffffffu, best, offset);
      const float other_v = __shfl_xor_sync(0xffffffffu, best_v, offset);
      first = min(first, other_first);
      if (other_best >= 0 && (best < 0 || other_v > best_v || (other_v == best_v && other_best < best))) {
        best = other_best;
        best_v = other_v;
      }
    }
    // topk <= experts (launcher), so a candidate exists; when the first one is not NaN, best >= 0.
    chosen[j] = isnan(Load(row, first)) ? first : best;
  }
  // Softmax over the chosen logits relative to the first (largest), in double like the CPU kernel.
  const double mx = static_cast<double>(Load(row, chosen[0]));
  double sum = 0.0;
  for (int j = 0; j < topk; ++j) sum += exp(static_cast<double>(Load(row, chosen[j])) - mx);
  for (int j = lane; j < topk; j += 32) {
    index[n * topk + j] = chosen[j];
    probs[n * topk + j] = static_cast<float>(exp(static_cast<double>(Load(row, chosen[j])) - mx) / sum);
  }
}

// One block per copy c, threads over the hidden columns: dst[pos[c]] = src[c / topk] (* probs[c]).
template <typename T>
__device__ __forceinline__ void GatherRows(T* dst, const T* src, const int* pos, const float* probs, int64_t copies,
                                           int64_t topk, int64_t hidden) {
  const int64_t c = blockIdx.x;
  const int64_t r = pos[c];
  if (r < 0 || r >= copies) return;  // uniform over the block; no barriers here
  const T* from = src + (c / topk) * hidden;
  T* to = dst + r * hidden;
  if (probs != nullptr) {
    const float p = probs[c];
    for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) Store(to, i, p * Load(from, i));
  } else {
    for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) Store(to, i, Load(from, i));
  }
}

// One block per copy c: dst[c] = src[pos[c]] (a NaN row for a position outside [0, copies)).
template <typename T>
__device__ __forceinline__ void ScatterRows(T* dst, const T* src, const int* pos, int64_t copies, int64_t hidden) {
  const int64_t c = blockIdx.x;
  const int64_t r = pos[c];
  T* to = dst + c * hidden;
  if (r < 0 || r >= copies) {
    for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) Store(to, i, NaNf());
    return;
  }
  const T* from = src + r * hidden;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) Store(to, i, Load(from, i));
}

// One block per token n, threads over the hidden columns; each thread owns out[n, i] and adds the
// token's copies in j order, acc = fma(w, src, acc) in fp32 (a single rounding per term, as the CPU's
// double sum of an exact product rounded to float), stored once.
template <typename T>
__device__ __forceinline__ void Combine(T* out, const T* src, const float* probs, const int* pos, int64_t copies,
                                        int64_t topk, int64_t hidden) {
  const int64_t n = blockIdx.x;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    float acc = Load(out, n * hidden + i);
    for (int64_t j = 0; j < topk; ++j) {
      const int64_t c = n * topk + j;
      const int64_t r = pos != nullptr ? static_cast<int64_t>(pos[c]) : c;
      if (r < 0 || r >= copies) {
        acc = NaNf();
        continue;
      }
      const float w = probs != nullptr ? probs[c] : 1.f;
      acc = fmaf(w, Load(src, r * hidden + i), acc);
    }
    Store(out, n * hidden + i, acc);
  }
}

// Sum over the block in double (blockDim.x a multiple of 32); every thread gets the sum. Contains
// __syncthreads: every thread of the block must reach it. scratch holds 32 doubles.
__device__ __forceinline__ double BlockSumD(double v, double* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  __syncthreads();  // scratch may still be read by the previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  double total = lane < warps ? scratch[lane] : 0.0;
  for (int offset = 16; offset > 0; offset >>= 1) total += __shfl_xor_sync(0xffffffffu, total, offset);
  return total;
}

// One block per token n (threads over hidden, then over the experts):
//   dp_j = <yc[c], dOut[n]> (double; c = n * topk + j), dot = sum_j probs[c] dp_j,
//   dLogits[n, e] = probs[c] (dp_j - dot) for e = index[c] (the last such j, as the CPU writes them),
//   0 for the experts not chosen.
template <typename T>
__device__ __forceinline__ void GateBackward(T* dlogits, const T* dout, const T* yc, const float* probs, const int* index,
                                             int64_t experts, int topk, int64_t hidden) {
  __shared__ double scratch[32];
  __shared__ double dp[kMaxTopK];
  const int64_t n = blockIdx.x;
  const T* g = dout + n * hidden;
  for (int j = 0; j < topk; ++j) {
    const T* y = yc + (n * topk + j) * hidden;
    double partial = 0.0;
    // Each product of two floats is exact in double, so a fused multiply-add here rounds the same.
    for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) partial += static_cast<double>(Load(y, i)) * static_cast<double>(Load(g, i));
    const double total = BlockSumD(partial, scratch);
    if (threadIdx.x == 0) dp[j] = total;
  }
  __syncthreads();  // dp complete
  double dot = 0.0;
  for (int j = 0; j < topk; ++j) dot = __dadd_rn(dot, __dmul_rn(static_cast<double>(probs[n * topk + j]), dp[j]));  // no fma, as the CPU
  for (int64_t e = threadIdx.x; e < experts; e += blockDim.x) {
    float v = 0.f;
    for (int j = 0; j < topk; ++j) {
      const int64_t c = n * topk + j;
      if (index[c] == e) v = static_cast<float>(static_cast<double>(probs[c]) * (dp[j] - dot));
    }
    Store(dlogits, n * experts + e, v);
  }
}

}  // namespace
}  // namespace mist_cuda

// Launch shapes (ops/moe_routing.cc): mist_moe_topk grid (ceil(tokens / 4)), block (128: a warp per
// token); mist_moe_gather_rows and mist_moe_scatter_rows grid (copies); mist_moe_combine and
// mist_moe_gate_backward grid (tokens); the row kernels' blocks a multiple of 32, at most 256.
#define MIST_MOE_ROUTING_KERNELS(suffix, T)                                                                         \
  extern "C" __global__ void __launch_bounds__(128)                                                                 \
      mist_moe_topk_##suffix(int* index, float* probs, const T* logits, int64_t tokens, int experts, int topk) {     \
    mist_cuda::TopK<T>(index, probs, logits, tokens, experts, topk);                                                \
  }                                                                                                                 \
  extern "C" __global__ void __launch_bounds__(256)                                                                 \
      mist_moe_gather_rows_##suffix(T* dst, const T* src, const int* pos, const float* probs, int64_t copies,       \
                                    int64_t topk, int64_t hidden) {                                                 \
    mist_cuda::GatherRows<T>(dst, src, pos, probs, copies, topk, hidden);                                           \
  }                                                                                                                 \
  extern "C" __global__ void __launch_bounds__(256)                                                                 \
      mist_moe_scatter_rows_##suffix(T* dst, const T* src, const int* pos, int64_t copies, int64_t hidden) {        \
    mist_cuda::ScatterRows<T>(dst, src, pos, copies, hidden);                                                       \
  }                                                                                                                 \
  extern "C" __global__ void __launch_bounds__(256)                                                                 \
      mist_moe_combine_##suffix(T* out, const T* src, const float* probs, const int* pos, int64_t copies,           \
                                int64_t topk, int64_t hidden) {                                                     \
    mist_cuda::Combine<T>(out, src, probs, pos, copies, topk, hidden);                                              \
  }                                                                                                                 \
  extern "C" __global__ void __launch_bounds__(256)                                                                 \
      mist_moe_gate_backward_##suffix(T* dlogits, const T* dout, const T* yc, const float* probs, const int* index,  \
                                      int64_t experts, int topk, int64_t hidden) {                                  \
    mist_cuda::GateBackward<T>(dlogits, dout, yc, probs, index, experts, topk, hidden);                             \
  }

MIST_FOR_EACH_STORAGE(MIST_MOE_ROUTING_KERNELS)
