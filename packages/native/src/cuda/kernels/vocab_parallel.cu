// The vocabulary-parallel embedding, position embedding and cross-entropy pieces (Megatron-LM's
// VocabParallelEmbedding and vocab_parallel_cross_entropy: Shoeybi et al. 2019, Sec. 3), the CUDA
// twins of kernels/vocab_parallel.cc. This rank holds table rows / logit columns [lo, hi) of the
// vocabulary; the all-reduces between the steps are done by the caller.
//   embeddingShard:          out[r] = wte[t - lo] if lo <= t < hi else 0
//   embeddingShardBackward:  dwte[t - lo] += dout[r] (rows in order)
//   positionAdd / positionGrad: x[r] += wpe[pos(r)] / dwpe[pos(r)] += dout[r] (rows in order),
//                            pos(r) = positions[(first + r) % seq] or (first + r) % seq
//   crossEntropyShardMax:    max[r] = max_j logits[r, j]
//   crossEntropyShardSums:   sums[r] = sum_j exp(logits[r, j] - max[r]), sums[rows + r] = logits[r, t - lo] or 0
//   crossEntropyShardFinish: loss[r] = log(sums[r]) + max[r] - sums[rows + r];
//                            dlogits[r, j] = (exp(logits[r, j] - max[r]) / sums[r] - [j + lo == t]) * gradScale
// Storage f32, bf16 or f16 (<base>_<suffix>); arithmetic in fp32, except the sums of exponentials,
// which are accumulated in double (per thread, then across the block: the CPU sums in double, and an
// fp32 running sum over a 50K-column row would lose ~log2(50K) bits), and the loss, formed in double
// from the fp32 statistics as the CPU does. The exponentials themselves are expf (full precision,
// not __expf) of the fp32 difference logit - max: ~1e-7 relative per term.
//
// Tokens, targets and position tables live on the device, so the launchers cannot check them as the
// CPU kernels do (they throw naming the row). Instead, as the CUDA embedding / crossEntropy do
// (embedding.cu, cross_entropy.cu): a token outside [0, vocab) gives a NaN output row in
// embeddingShard and is skipped by its backward; a position outside the wpe table gives a NaN x row
// in positionAdd and is skipped by positionGrad; a target below -1 gives NaN sums (both halves), a
// NaN loss and a NaN gradient row. No kernel ever reads or writes outside its buffers.
//
// Determinism: the backward scatter-adds use no atomics. As in embedding.cu, thread (column c,
// bucket b) owns every table row whose index is congruent to b modulo `buckets` (a power of two) for
// column c, and walks all rows r in order, so each (table row, column) element is updated by one
// thread in increasing r: the CPU kernel's order, so fp32 results match it bit for bit.
#include <cstdint>

#include "dtype.cuh"

namespace mist_cuda {
namespace {

__device__ __forceinline__ float QuietNaN() { return __int_as_float(0x7fc00000); }

// Sum of doubles over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets
// the sum. `scratch` holds 32 doubles of shared memory; contains __syncthreads (all threads must call).
// The order of the additions is fixed by the block shape, so the result is deterministic.
__device__ __forceinline__ double BlockSumDouble(double v, double* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  double total = lane < warps ? scratch[lane] : 0.0;
  for (int offset = 16; offset > 0; offset >>= 1) total += __shfl_xor_sync(0xffffffffu, total, offset);
  return total;
}

// ---- embeddingShard: one block per row, threads over the hidden columns. out may not alias wte.
template <typename T>
__device__ __forceinline__ void EmbeddingShard(T* out, const int* tokens, const T* wte, int64_t hidden, int64_t vocab,
                                               int64_t lo, int64_t hi) {
  const int64_t r = blockIdx.x;
  const int64_t t = tokens[r];
  T* o = out + r * hidden;
  if (t < 0 || t >= vocab) {
    const float nan = QuietNaN();
    for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) Store(o, c, nan);
    return;
  }
  if (t < lo || t >= hi) {
    for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) Store(o, c, 0.f);
    return;
  }
  const T* e = wte + (t - lo) * hidden;
  // A plain copy: the storage dtypes of out and wte are the same, so no rounding happens.
  for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) o[c] = e[c];
}

// ---- embeddingShardBackward: dwte[t - lo, c] += dout[r, c] for the rows whose token is in [lo, hi).
// Grid (ceil(hidden / blockDim.x), buckets); see the ownership note at the top. With bf16/f16 tables
// each update is rounded to the storage dtype (as in embedding.cu).
template <typename T>
__device__ __forceinline__ void EmbeddingShardBackward(T* dwte, const T* dout, const int* tokens, int64_t rows,
                                                       int64_t hidden, int64_t lo, int64_t hi, int buckets) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= hidden) return;  // no barriers in this kernel
  const int64_t mask = buckets - 1;  // buckets is a power of two (launcher)
  const int64_t b = blockIdx.y;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = __ldg(tokens + r);  // read-only path: tokens are never written here
    // [lo, hi) lies inside [0, vocab) (launcher), so this also skips tokens outside the vocabulary.
    if (t < lo || t >= hi) continue;
    const int64_t local = t - lo;
    if ((local & mask) != b) continue;
    const int64_t i = local * hidden + c;
    Store(dwte, i, Load(dwte, i) + Load(dout, r * hidden + c));
  }
}

// ---- positionAdd: one block per row, x[r, :] += wpe[pos(r), :]. x may not alias wpe.
// positions may be null (pos(r) = (first + r) % seq); maxPos = the rows of wpe.
template <typename T>
__device__ __forceinline__ void PositionAdd(T* x, const T* wpe, const int* positions, int64_t hidden, int64_t seq,
                                            int64_t first, int64_t max_pos) {
  const int64_t r = blockIdx.x;
  const int64_t i = (first + r) % seq;
  const int64_t pos = positions != nullptr ? static_cast<int64_t>(positions[i]) : i;
  T* o = x + r * hidden;
  if (pos < 0 || pos >= max_pos) {  // only possible with a table (the launcher checks the other case)
    const float nan = QuietNaN();
    for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) Store(o, c, nan);
    return;
  }
  const T* w = wpe + pos * hidden;
  for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) Store(o, c, Load(o, c) + Load(w, c));
}

// ---- positionGrad: dwpe[pos(r), c] += dout[r, c], rows in order; grid (ceil(hidden / blockDim.x),
// buckets), ownership of the table rows by bucket as for embeddingShardBackward. A table position
// outside [0, maxPos) is skipped.
template <typename T>
__device__ __forceinline__ void PositionGrad(T* dwpe, const T* dout, const int* positions, int64_t rows, int64_t hidden,
                                             int64_t seq, int64_t first, int64_t max_pos, int buckets) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= hidden) return;  // no barriers in this kernel
  const int64_t mask = buckets - 1;
  const int64_t b = blockIdx.y;
  int64_t i = first % seq;  // (first + r) % seq, kept incrementally
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t pos = positions != nullptr ? static_cast<int64_t>(__ldg(positions + i)) : i;
    if (pos >= 0 && pos < max_pos && (pos & mask) == b) {
      const int64_t k = pos * hidden + c;
      Store(dwpe, k, Load(dwpe, k) + Load(dout, r * hidden + c));
    }
    if (++i == seq) i = 0;
  }
}

// ---- crossEntropyShardMax: one block per row. fmaxf ignores NaN as the CPU's std::max(m, x) does
// (m < NaN is false), and the max of a row is exact: the same value on both backends.
template <typename T>
__device__ __forceinline__ void CrossEntropyShardMax(float* max, const T* logits, int64_t v) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const T* x = logits + r * v;
  float m = -INFINITY;
  for (int64_t c = threadIdx.x; c < v; c += blockDim.x) m = fmaxf(m, Load(x, c));
  m = BlockMax(m, scratch);
  if (threadIdx.x == 0) max[r] = m;
}

// ---- crossEntropyShardSums: one block per row. sums[r] = sum_j expf(x_j - max[r]) accumulated in
// double; sums[rows + r] = x[t - lo] when this shard holds the target's column, else 0.
template <typename T>
__device__ __forceinline__ void CrossEntropyShardSums(float* sums, const T* logits, const float* max, const int* targets,
                                                      int64_t rows, int64_t v, int64_t lo) {
  __shared__ double scratch[32];
  const int64_t r = blockIdx.x;
  const int64_t t = targets[r];  // uniform over the block: the early return is taken by all threads
  if (t < -1) {
    if (threadIdx.x == 0) {
      sums[r] = QuietNaN();
      sums[rows + r] = QuietNaN();
    }
    return;
  }
  const T* x = logits + r * v;
  const float m = max[r];
  double s = 0.0;
  for (int64_t c = threadIdx.x; c < v; c += blockDim.x) s += static_cast<double>(expf(Load(x, c) - m));
  s = BlockSumDouble(s, scratch);
  if (threadIdx.x == 0) {
    sums[r] = static_cast<float>(s);
    sums[rows + r] = t >= lo && t < lo + v ? Load(x, t - lo) : 0.f;
  }
}

// ---- crossEntropyShardFinish: one block per row. dlogits may be logits: each element is read and
// then written by the same thread, and the target's logit comes from sums[rows + r], not the row.
template <typename T>
__device__ __forceinline__ void CrossEntropyShardFinish(float* loss, T* dlogits, const T* logits, const float* max,
                                                        const float* sums, const int* targets, int64_t rows, int64_t v,
                                                        int64_t lo, float grad_scale) {
  const int64_t r = blockIdx.x;
  const int64_t t = targets[r];
  T* d = dlogits != nullptr ? dlogits + r * v : nullptr;
  if (t < -1) {  // the CPU kernel throws: mark the row
    const float nan = QuietNaN();
    if (threadIdx.x == 0) loss[r] = nan;
    if (d != nullptr) {
      for (int64_t c = threadIdx.x; c < v; c += blockDim.x) Store(d, c, nan);
    }
    return;
  }
  if (t < 0) {  // -1: an ignored row
    if (threadIdx.x == 0) loss[r] = 0.f;
    if (d != nullptr) {
      for (int64_t c = threadIdx.x; c < v; c += blockDim.x) Store(d, c, 0.f);
    }
    return;
  }
  const float m = max[r], s = sums[r];
  if (threadIdx.x == 0) {
    loss[r] = static_cast<float>(log(static_cast<double>(s)) + static_cast<double>(m) - static_cast<double>(sums[rows + r]));
  }
  if (d == nullptr) return;
  const T* x = logits + r * v;
  const int64_t target_col = t - lo;  // may be outside [0, v): then no column is the target here
  for (int64_t c = threadIdx.x; c < v; c += blockDim.x) {
    const float p = expf(Load(x, c) - m) / s;
    Store(d, c, (c == target_col ? p - 1.f : p) * grad_scale);
  }
}

}  // namespace
}  // namespace mist_cuda

// Launch shapes (ops/vocab_parallel.cc): the row kernels grid (rows), block (a multiple of 32, <= 1024);
// the backward scatters grid (ceil(hidden / threads), buckets), block (threads).
#define MIST_VOCAB_PARALLEL_KERNELS(suffix, T)                                                                           \
  extern "C" __global__ void __launch_bounds__(1024)                                                                     \
      mist_embedding_shard_##suffix(T* out, const int* tokens, const T* wte, int64_t hidden, int64_t vocab, int64_t lo,  \
                                    int64_t hi) {                                                                        \
    mist_cuda::EmbeddingShard<T>(out, tokens, wte, hidden, vocab, lo, hi);                                               \
  }                                                                                                                      \
  extern "C" __global__ void __launch_bounds__(1024)                                                                     \
      mist_embedding_shard_backward_##suffix(T* dwte, const T* dout, const int* tokens, int64_t rows, int64_t hidden,    \
                                             int64_t lo, int64_t hi, int buckets) {                                      \
    mist_cuda::EmbeddingShardBackward<T>(dwte, dout, tokens, rows, hidden, lo, hi, buckets);                             \
  }                                                                                                                      \
  extern "C" __global__ void __launch_bounds__(1024)                                                                     \
      mist_position_add_##suffix(T* x, const T* wpe, const int* positions, int64_t hidden, int64_t seq, int64_t first,   \
                                 int64_t max_pos) {                                                                      \
    mist_cuda::PositionAdd<T>(x, wpe, positions, hidden, seq, first, max_pos);                                           \
  }                                                                                                                      \
  extern "C" __global__ void __launch_bounds__(1024)                                                                     \
      mist_position_grad_##suffix(T* dwpe, const T* dout, const int* positions, int64_t rows, int64_t hidden,            \
                                  int64_t seq, int64_t first, int64_t max_pos, int buckets) {                            \
    mist_cuda::PositionGrad<T>(dwpe, dout, positions, rows, hidden, seq, first, max_pos, buckets);                       \
  }                                                                                                                      \
  extern "C" __global__ void __launch_bounds__(1024)                                                                     \
      mist_cross_entropy_shard_max_##suffix(float* max, const T* logits, int64_t v) {                                    \
    mist_cuda::CrossEntropyShardMax<T>(max, logits, v);                                                                  \
  }                                                                                                                      \
  extern "C" __global__ void __launch_bounds__(1024)                                                                     \
      mist_cross_entropy_shard_sums_##suffix(float* sums, const T* logits, const float* max, const int* targets,         \
                                             int64_t rows, int64_t v, int64_t lo) {                                      \
    mist_cuda::CrossEntropyShardSums<T>(sums, logits, max, targets, rows, v, lo);                                        \
  }                                                                                                                      \
  extern "C" __global__ void __launch_bounds__(1024)                                                                     \
      mist_cross_entropy_shard_finish_##suffix(float* loss, T* dlogits, const T* logits, const float* max,               \
                                               const float* sums, const int* targets, int64_t rows, int64_t v,           \
                                               int64_t lo, float grad_scale) {                                           \
    mist_cuda::CrossEntropyShardFinish<T>(loss, dlogits, logits, max, sums, targets, rows, v, lo, grad_scale);           \
  }

MIST_FOR_EACH_STORAGE(MIST_VOCAB_PARALLEL_KERNELS)
