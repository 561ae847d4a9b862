// Token embedding plus optional learned position embedding (GPT-2: Radford et al. 2019), the CUDA
// twin of kernels/embedding.cc:
//   out[r, :] = wte[tokens[r], :] + wpe[posOffset + r % seq, :]
// and its backward, which scatters dout into the tables (dwte, dwpe accumulate).
// Storage f32, bf16 or f16 (<base>_<suffix>); sums in fp32.
//
// Tokens live on the device, so the launcher cannot check them as the CPU kernel does (it throws
// naming the row). Instead the forward writes NaN into the output row of a token outside
// [0, vocab) (the loss turns NaN, which training loops already watch for), and the backward skips
// such rows; neither ever reads or writes outside the tables.
#include <cstdint>

#include "dtype.cuh"

namespace mist_cuda {
namespace {

// One block per row, threads over the hidden columns. out may not alias the tables.
template <typename T>
__device__ __forceinline__ void EmbeddingForward(T* out, const int* tokens, const T* wte, const T* wpe, int64_t hidden,
                                                 int64_t vocab, int64_t seq, int64_t offset) {
  const int64_t r = blockIdx.x;
  const int64_t t = tokens[r];
  T* o = out + r * hidden;
  if (t < 0 || t >= vocab) {
    const float nan = __int_as_float(0x7fc00000);
    for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) Store(o, c, nan);
    return;
  }
  const T* e = wte + t * hidden;
  const T* p = wpe != nullptr ? wpe + (offset + r % seq) * hidden : nullptr;
  for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) {
    float v = Load(e, c);
    if (p != nullptr) v += Load(p, c);
    Store(o, c, v);
  }
}

// dwte[tokens[r], c] += dout[r, c] and dwpe[posOffset + r % seq, c] += dout[r, c] (dwpe may be null).
//
// Deterministic without atomics or sorting: thread (column c, bucket b) owns every table row whose
// index is congruent to b modulo `buckets` (a power of two), for column c, and walks all rows r in order, adding the
// rows whose token (position) falls in its bucket. Each (table row, column) element is therefore
// updated by exactly one thread, in increasing r: the same order as the CPU kernel, so fp32 results
// match it bit for bit. Grid (ceil(hidden / blockDim.x), buckets); the buckets exist only to spread
// the work over more threads (the column slices alone give hidden / blockDim.x blocks).
//
// Cost: every thread reads all `rows` tokens (broadcast loads of a small array, L1/L2 hits) and
// performs about rows / buckets dependent read-add-write updates of its table elements; the updates
// of one thread are serialised (one table element may repeat), so the kernel is latency bound:
// roughly rows * (token load) + (rows / buckets) * (global read-modify-write latency) per thread,
// e.g. ~tens of microseconds for 8192 rows on an H100-class GPU. With bf16/f16 tables each update is
// rounded to the storage dtype (a token that repeats k times sees k roundings), as a bf16 gradient
// buffer implies; keep fp32 tables where that matters.
template <typename T>
__device__ __forceinline__ void EmbeddingBackward(T* dwte, T* dwpe, const T* dout, const int* tokens, int64_t rows,
                                                  int64_t hidden, int64_t vocab, int64_t seq, int64_t offset,
                                                  int buckets) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= hidden) return;  // no barriers in this kernel
  const int mask = buckets - 1;  // buckets is a power of two (launcher)
  const int b = blockIdx.y;
  // Position of row r is offset + r % seq (>= 0: the launcher checks offset >= 0 when dwpe is given);
  // r % seq and the position's bucket are kept incrementally instead of dividing per row.
  const int first_pos_bucket = static_cast<int>(offset & mask);
  int64_t in_seq = 0;
  int pos_bucket = first_pos_bucket;
  for (int64_t r = 0; r < rows; ++r) {
    const int t = __ldg(tokens + r);  // read-only path: tokens are never written here
    const bool tok_mine = t >= 0 && t < vocab && (t & mask) == b;
    const bool pos_mine = dwpe != nullptr && pos_bucket == b;
    if (tok_mine || pos_mine) {
      const float g = Load(dout, r * hidden + c);
      if (tok_mine) {
        const int64_t i = static_cast<int64_t>(t) * hidden + c;
        Store(dwte, i, Load(dwte, i) + g);
      }
      if (pos_mine) {
        const int64_t i = (offset + in_seq) * hidden + c;
        Store(dwpe, i, Load(dwpe, i) + g);
      }
    }
    if (++in_seq == seq) {
      in_seq = 0;
      pos_bucket = first_pos_bucket;
    } else {
      pos_bucket = (pos_bucket + 1) & mask;
    }
  }
}

}  // namespace
}  // namespace mist_cuda

// Launch shapes (ops/embedding.cc): mist_embedding grid (rows), block (threads <= 1024);
// mist_embedding_backward grid (ceil(hidden / threads), buckets), block (threads).
#define MIST_EMBEDDING_KERNELS(suffix, T)                                                                          \
  extern "C" __global__ void __launch_bounds__(1024)                                                               \
      mist_embedding_##suffix(T* out, const int* tokens, const T* wte, const T* wpe, int64_t hidden, int64_t vocab, \
                              int64_t seq, int64_t offset) {                                                       \
    mist_cuda::EmbeddingForward<T>(out, tokens, wte, wpe, hidden, vocab, seq, offset);                             \
  }                                                                                                                \
  extern "C" __global__ void __launch_bounds__(1024)                                                               \
      mist_embedding_backward_##suffix(T* dwte, T* dwpe, const T* dout, const int* tokens, int64_t rows,           \
                                       int64_t hidden, int64_t vocab, int64_t seq, int64_t offset, int buckets) {  \
    mist_cuda::EmbeddingBackward<T>(dwte, dwpe, dout, tokens, rows, hidden, vocab, seq, offset, buckets);          \
  }

MIST_FOR_EACH_STORAGE(MIST_EMBEDDING_KERNELS)
