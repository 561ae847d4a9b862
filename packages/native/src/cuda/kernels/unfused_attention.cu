// CUDA kernels of the unfused attention core's six batched products, the device side of
// cuda/ops/unfused_attention.cc. They mirror kernels/unfused_attention.cc, whose six ops are three
// causal shapes with a factor (the softmax scale where it applies, else 1):
//   row dots     out[b, h, i, j] = factor * x_i . y_j for j <= i, 0 for j > i (every element
//                written):                        attentionScores (S = scale Q K^T), attentionValuesGradProbs (dP = dO V^T)
//   weighted     out_i = factor * sum_{j <= i} w_ij y_j (written; w above the diagonal is never
//                read as a value, it is masked):  attentionValues (O = P V), attentionScoresGradQ (dQ = scale dS K)
//   key rows     out_j = factor * sum over the query heads h of the key/value head, sum_{i >= j}
//                w[b, h, i, j] x_i (written):     attentionValuesGradV (dV = P^T dO), attentionScoresGradK (dK = scale dS^T Q)
// Layouts (as the CPU kernel): x of a query head is [batch * seq, heads * D] (head h at columns
// h * D), y of a key/value head [batch * seq, kvHeads * D], w and the row-dot output [batch, heads,
// seq, seq]; query head h uses key/value head h / (heads / kvHeads) (grouped-query attention,
// Ainslie et al. 2023).
//
// Each is a tiled GEMM in the classic shared-memory form (e.g. Volkov & Demmel 2008; the CUDA C
// Programming Guide's shared-memory matrix multiplication): a block of 256 threads owns a 64 x 64
// output tile, stages 32-deep slices of both operands in shared memory as fp32 (bf16/f16 loaded and
// widened once), and each thread accumulates a 4 x 4 sub-tile in fp32 registers. Thread t is
// (tx, ty) = (t % 16, t / 16) and owns the tile rows ty + 16 r and columns tx + 16 c (r, c < 4).
// Work above the diagonal is skipped where the CPU skips it: row-dot tiles wholly above the
// diagonal only write zeros, weighted rows stop at the tile's last query, key rows start at the
// tile's first key. Masked entries of w (above the diagonal) are staged as 0 by selection, so
// garbage or non-finite values there never reach the sums, as on the CPU.
// The key-row sums over the query heads of a key/value head are done by the one block that owns
// the output tile, heads in order, so the result never depends on scheduling (no atomics).
#include <cstdint>

#include "dtype.cuh"

namespace mist_cuda {
namespace {

constexpr int kTile = 64;       // output tile rows and columns
constexpr int kChunk = 32;      // depth of the reduction slice staged per step
constexpr int kThreads = 256;   // 16 x 16 threads, 4 x 4 outputs each
constexpr int kPitch = kTile + 1;  // shared row pitch: a transposed store of 32 k's of one row hits 32 banks

// The two staged operands of one step, both k-major: a[k][r] is the k-th term of output row r of
// the tile, b[k][c] that of output column c. acc[r][c] += sum_k a[k][r] * b[k][c].
struct Stage {
  float a[kChunk][kPitch];
  float b[kChunk][kPitch];
};

// Stages a 64-row x `ks`-deep slice of a matrix whose reduction index k is contiguous in memory
// (element (r, k) at src[r * ld + k]) into sh[k][r], zero for r >= rows or k >= ks. With kCausal,
// element (r, k) is kept only where k <= r + diag (the caller's global "key <= query"); the rest are
// staged as 0. Thread t loads k = t % 32 of rows t / 32 + 8 p: a warp reads 32 consecutive elements
// of one row (coalesced) and writes sh[0..31][r], 32 different banks with the pitch of 65.
template <typename T, bool kCausal>
__device__ __forceinline__ void StageKContiguous(float (*sh)[kPitch], const T* src, int64_t ld, int rows, int ks,
                                                 int64_t diag) {
  const int k = threadIdx.x % kChunk;
#pragma unroll
  for (int p = 0; p < kTile * kChunk / kThreads; ++p) {
    const int r = threadIdx.x / kChunk + p * (kThreads / kChunk);
    bool keep = r < rows && k < ks;
    if (kCausal) keep = keep && static_cast<int64_t>(k) <= static_cast<int64_t>(r) + diag;
    sh[k][r] = keep ? Load(src, static_cast<int64_t>(r) * ld + k) : 0.f;
  }
}

// Stages a `ks`-deep x 64-column slice of a matrix whose output column index c is contiguous in
// memory (element (k, c) at src[k * ld + c]) into sh[k][c], zero for k >= ks or c >= cols. With
// kCausal, element (k, c) is kept only where k >= c + diag (the caller's global "query >= key").
// Thread t loads column t % 64 of rows t / 64 + 4 p: coalesced reads, conflict-free writes.
template <typename T, bool kCausal>
__device__ __forceinline__ void StageCContiguous(float (*sh)[kPitch], const T* src, int64_t ld, int ks, int cols,
                                                 int64_t diag) {
  const int c = threadIdx.x % kTile;
#pragma unroll
  for (int p = 0; p < kTile * kChunk / kThreads; ++p) {
    const int k = threadIdx.x / kTile + p * (kThreads / kTile);
    bool keep = k < ks && c < cols;
    if (kCausal) keep = keep && static_cast<int64_t>(k) >= static_cast<int64_t>(c) + diag;
    sh[k][c] = keep ? Load(src, static_cast<int64_t>(k) * ld + c) : 0.f;
  }
}

// acc[r][c] += sum over the staged slice of a[k][ty + 16 r] * b[k][tx + 16 c]. A warp reads two
// addresses of a (two ty) and 16 consecutive ones of b per k: broadcasts, no bank conflicts.
__device__ __forceinline__ void MultiplyStage(const Stage& s, float (&acc)[4][4], int tx, int ty) {
#pragma unroll 8
  for (int k = 0; k < kChunk; ++k) {
    float av[4], bv[4];
#pragma unroll
    for (int r = 0; r < 4; ++r) av[r] = s.a[k][ty + 16 * r];
#pragma unroll
    for (int c = 0; c < 4; ++c) bv[c] = s.b[k][tx + 16 * c];
#pragma unroll
    for (int r = 0; r < 4; ++r) {
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[r][c] = fmaf(av[r], bv[c], acc[r][c]);
    }
  }
}

// Row dots. Grid (batch * heads, query tiles, key tiles). out[b, h, i, j] = factor * x_i . y_j for
// j <= i, else 0; every element of the [seq, seq] matrix of (b, h) is written.
template <typename T>
__device__ __forceinline__ void RowDotsBody(T* out, const T* x, const T* y, int seq, int heads, int kv_heads, int d,
                                            float factor) {
  __shared__ Stage s;
  const int64_t bh = blockIdx.x;
  const int64_t b = bh / heads, h = bh % heads, kvh = h / (heads / kv_heads);
  const int i0 = static_cast<int>(blockIdx.y) * kTile, j0 = static_cast<int>(blockIdx.z) * kTile;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  T* o = out + bh * seq * static_cast<int64_t>(seq);
  if (j0 > i0) {
    // Tiles start at multiples of 64, so j0 > i0 means j0 >= i0 + 64 > every query of the tile: all
    // zeros. The whole block returns here (before any barrier).
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int i = i0 + ty + 16 * r;
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int j = j0 + tx + 16 * c;
        if (i < seq && j < seq) Store(o, static_cast<int64_t>(i) * seq + j, 0.f);
      }
    }
    return;
  }
  const int64_t qw = static_cast<int64_t>(heads) * d, kw = static_cast<int64_t>(kv_heads) * d;
  const T* xt = x + (b * seq + i0) * qw + h * d;    // query i0 of the tile, head h
  const T* yt = y + (b * seq + j0) * kw + kvh * d;  // key j0 of the tile, key/value head kvh
  const int rows = min(kTile, seq - i0), cols = min(kTile, seq - j0);
  float acc[4][4] = {};
  for (int k0 = 0; k0 < d; k0 += kChunk) {
    const int ks = min(kChunk, d - k0);
    __syncthreads();  // the previous slice has been read by every thread
    StageKContiguous<T, false>(s.a, xt + k0, qw, rows, ks, 0);
    StageKContiguous<T, false>(s.b, yt + k0, kw, cols, ks, 0);
    __syncthreads();
    MultiplyStage(s, acc, tx, ty);
  }
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int i = i0 + ty + 16 * r;
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int j = j0 + tx + 16 * c;
      if (i < seq && j < seq) Store(o, static_cast<int64_t>(i) * seq + j, j <= i ? factor * acc[r][c] : 0.f);
    }
  }
}

// Weighted rows. Grid (batch * heads, query tiles, feature tiles). out_i = factor * sum_{j <= i}
// w_ij y_j for the queries of the tile and features c0 .. c0 + 63 of head h; written.
template <typename T>
__device__ __forceinline__ void WeightedRowsBody(T* out, const T* w, const T* y, int seq, int heads, int kv_heads,
                                                 int d, float factor) {
  __shared__ Stage s;
  const int64_t bh = blockIdx.x;
  const int64_t b = bh / heads, h = bh % heads, kvh = h / (heads / kv_heads);
  const int i0 = static_cast<int>(blockIdx.y) * kTile, c0 = static_cast<int>(blockIdx.z) * kTile;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t qw = static_cast<int64_t>(heads) * d, kw = static_cast<int64_t>(kv_heads) * d;
  const T* wt = w + (bh * seq + i0) * static_cast<int64_t>(seq);  // row of query i0, key 0
  const T* yt = y + b * seq * kw + kvh * d + c0;                   // key 0, feature c0
  const int rows = min(kTile, seq - i0), cols = min(kTile, d - c0);
  const int j_end = min(seq, i0 + kTile);  // no query of the tile reaches a later key
  float acc[4][4] = {};
  for (int j0 = 0; j0 < j_end; j0 += kChunk) {
    const int ks = min(kChunk, j_end - j0);
    __syncthreads();
    // Keep key j0 + k for query i0 + r only where j0 + k <= i0 + r.
    StageKContiguous<T, true>(s.a, wt + j0, seq, rows, ks, static_cast<int64_t>(i0) - j0);
    StageCContiguous<T, false>(s.b, yt + j0 * kw, kw, ks, cols, 0);
    __syncthreads();
    MultiplyStage(s, acc, tx, ty);
  }
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int i = i0 + ty + 16 * r;
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int f = c0 + tx + 16 * c;
      if (i < seq && f < d) Store(out, (b * seq + i) * qw + h * d + f, factor * acc[r][c]);
    }
  }
}

// Key rows. Grid (batch * kvHeads, key tiles, feature tiles). out_j = factor * sum over the query
// heads h of key/value head kvh (in order) and queries i >= j of w[b, h, i, j] x_i (head h's
// features c0 .. c0 + 63); written.
template <typename T>
__device__ __forceinline__ void KeyRowsBody(T* out, const T* w, const T* x, int seq, int heads, int kv_heads, int d,
                                            float factor) {
  __shared__ Stage s;
  const int64_t bk = blockIdx.x;
  const int64_t b = bk / kv_heads, kvh = bk % kv_heads;
  const int group = heads / kv_heads;
  const int j0 = static_cast<int>(blockIdx.y) * kTile, c0 = static_cast<int>(blockIdx.z) * kTile;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t qw = static_cast<int64_t>(heads) * d, kw = static_cast<int64_t>(kv_heads) * d;
  const int keys = min(kTile, seq - j0), cols = min(kTile, d - c0);
  float acc[4][4] = {};
  for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
    const int64_t bh = b * heads + h;
    const T* wt = w + bh * seq * static_cast<int64_t>(seq) + j0;  // query 0, key j0
    const T* xt = x + b * seq * qw + h * d + c0;                    // query 0, feature c0
    // Queries before the tile's first key only meet masked entries.
    for (int i0 = j0; i0 < seq; i0 += kChunk) {
      const int ks = min(kChunk, seq - i0);
      __syncthreads();
      // Keep query i0 + k for key j0 + c only where i0 + k >= j0 + c.
      StageCContiguous<T, true>(s.a, wt + static_cast<int64_t>(i0) * seq, seq, ks, keys, static_cast<int64_t>(j0) - i0);
      StageCContiguous<T, false>(s.b, xt + static_cast<int64_t>(i0) * qw, qw, ks, cols, 0);
      __syncthreads();
      MultiplyStage(s, acc, tx, ty);
    }
  }
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int j = j0 + ty + 16 * r;
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int f = c0 + tx + 16 * c;
      if (j < seq && f < d) Store(out, (b * seq + j) * kw + kvh * d + f, factor * acc[r][c]);
    }
  }
}

}  // namespace
}  // namespace mist_cuda

// The exported variants; parameter lists are the launchers' argument lists
// (cuda/ops/unfused_attention.cc): pointers, then seq, heads, kvHeads, headDim as int, then factor.
#define MIST_UNFUSED_ATTENTION_VARIANTS(S, T)                                                                     \
  extern "C" __global__ void __launch_bounds__(256)                                                            \
      mist_unfused_row_dots_##S(T* out, const T* x, const T* y, int seq, int heads, int kv_heads, int d,       \
                                float factor) {                                                                \
    mist_cuda::RowDotsBody<T>(out, x, y, seq, heads, kv_heads, d, factor);                                     \
  }                                                                                                            \
  extern "C" __global__ void __launch_bounds__(256)                                                            \
      mist_unfused_weighted_rows_##S(T* out, const T* w, const T* y, int seq, int heads, int kv_heads, int d,  \
                                     float factor) {                                                           \
    mist_cuda::WeightedRowsBody<T>(out, w, y, seq, heads, kv_heads, d, factor);                                \
  }                                                                                                            \
  extern "C" __global__ void __launch_bounds__(256)                                                            \
      mist_unfused_key_rows_##S(T* out, const T* w, const T* x, int seq, int heads, int kv_heads, int d,       \
                                float factor) {                                                                \
    mist_cuda::KeyRowsBody<T>(out, w, x, seq, heads, kv_heads, d, factor);                                     \
  }

MIST_FOR_EACH_STORAGE(MIST_UNFUSED_ATTENTION_VARIANTS)
