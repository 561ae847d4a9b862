// The device code of the CUDA attention kernels, FlashAttention-2 style (Dao 2023,
// "FlashAttention-2: Faster Attention with Better Parallelism and Work Partitioning", algorithms 1
// and 2), shared by the causal attention (attention.cu) and the ring-attention blocks
// (ring_attention.cu). The two differ only in which keys a query sees, a Mask policy:
//   CausalMask     key j visible to query i when j <= i (one sequence, q and k of the same length);
//   PositionMask   key j visible to query i when kPos[j] <= qPos[i] (a block of keys of another
//                  length, each row tagged with its position in the whole sequence).
// A mask gives every query row a key RowKey(i) and every key column a key ColKey(j), visible when
// ColKey(j) <= RowKey(i); the same two numbers are the positions P, Q of the dropout index.
//
// Layouts (token-major, as the projections produce them): q, out, dq, dout [batch * qSeq, heads * D];
// k, v, dk, dv [batch * kSeq, kvHeads * D]; lse [batch, heads, qSeq] fp32 (natural log); query head h
// reads key/value head h / (heads / kvHeads).
//   s_ij = scale q_i . k_j,  lse_i = log sum_j exp(s_ij),  o_i = sum_j exp(s_ij - lse_i) z_ij v_j
//   P_ij = exp(s_ij - lse_i),  dP_ij = z_ij do_i . v_j,  D_i = do_i . o_i,  dS_ij = P_ij (dP_ij - D_i)
//   dq_i = scale sum_j dS_ij k_j,  dk_j = scale sum_i dS_ij q_i,  dv_j = sum_i P_ij z_ij do_i
// with z_ij the dropout factor (keep / (1 - p), regenerated in the backward from the same counter-based
// draw as the CPU kernels: kernels/dropout_hash.h), 1 without dropout.
//
// Every product runs on the CUDA cores in fp32 from fp32 shared-memory tiles (bf16/f16 storage is
// converted on load and rounded once on store), for all three storage dtypes. Scores are kept in
// the base-2 domain (scaled by log2 e) so the exponentials are exp2f, as FlashAttention does.
//
// The backward is two kernels, neither with float atomics, so the gradients are deterministic:
//   dq:   one block per (batch, head, query tile) recomputes P and dS against every key tile it can
//         see and accumulates dQ in registers (FlashAttention-2's separate dQ pass);
//   dk/dv: one block per (batch, kv head, key tile) loops over the query heads of its group and the
//         query tiles that can see it, accumulating dK and dV in registers.
// D_i = do_i . o_i is recomputed by each block for its query rows (the op has no scratch buffer to
// keep it in), an extra read of one output tile per query tile.
#pragma once
#include <math_constants.h>
#include <stdint.h>

#include "attention_tiles.cuh"
#include "dtype.cuh"
#include "kernels/dropout_hash.h"

namespace mist_attention {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Row and column keys of padded rows / columns (past the sequence): no column is visible to a padded
// row and a padded column to no row, whatever int32 positions the real rows carry.
constexpr long long kNoRow = -9223372036854775807LL - 1;
constexpr long long kNoCol = 9223372036854775807LL;

// Causal attention over one sequence of `seq` rows.
struct CausalMask {
  int seq;
  __device__ __forceinline__ long long RowKey(int i) const { return i; }
  __device__ __forceinline__ long long ColKey(int j) const { return j; }
  /** Keys at or past this are invisible to every row of the query tile [i0, i0 + rows). */
  __device__ __forceinline__ int KeyEnd(int i0, int rows) const { return min(seq, i0 + rows); }
  /** Query tiles (of `rows`) before this one see no key of the key tile starting at j0. */
  __device__ __forceinline__ int QueryBegin(int j0, int rows) const { return j0 / rows * rows; }
};

// A ring-attention block: rows carry positions (int32, device memory) in the whole sequence. No tile
// is skipped: positions need not be sorted.
struct PositionMask {
  const int* qpos;
  const int* kpos;
  int k_seq;
  __device__ __forceinline__ long long RowKey(int i) const { return qpos[i]; }
  __device__ __forceinline__ long long ColKey(int j) const { return kpos[j]; }
  __device__ __forceinline__ int KeyEnd(int, int) const { return k_seq; }
  __device__ __forceinline__ int QueryBegin(int, int) const { return 0; }
};

template <class Mask>
__device__ __forceinline__ long long RowKeyOf(const Mask& mask, int i, int q_seq) {
  return i < q_seq ? mask.RowKey(i) : kNoRow;
}
template <class Mask>
__device__ __forceinline__ long long ColKeyOf(const Mask& mask, int j, int k_seq) {
  return j < k_seq ? mask.ColKey(j) : kNoCol;
}

// The dropout index ((g * totalHeads + H) * seq + P) * seq + Q in the CPU kernels' unsigned 64-bit
// arithmetic, in three steps: per (batch, head), per query row, per key.
__device__ __forceinline__ uint64_t DropHeadBase(const AttnDropout& d, int b, int h) {
  return static_cast<uint64_t>(d.sample_offset + b) * static_cast<uint64_t>(d.total_heads) +
         static_cast<uint64_t>(d.head_offset + h);
}
__device__ __forceinline__ uint64_t DropRowBase(const AttnDropout& d, uint64_t head_base, long long row_key) {
  const uint64_t seq = static_cast<uint64_t>(d.seq);
  return (head_base * seq + static_cast<uint64_t>(row_key)) * seq;
}
/** z for one visible element: 1 / (1 - p) when kept, 0 when dropped (d.enabled checked by the caller). */
__device__ __forceinline__ float DropZ(const AttnDropout& d, uint64_t row_base, long long col_key) {
  return mist::kernels::DropoutDraw24(d.key, row_base + static_cast<uint64_t>(col_key)) >= d.threshold ? d.scale : 0.f;
}

// dst[r * (D + 1) + c] = src[(row0 + r) * stride + c] for the tile's `rows` rows; rows at or past
// `limit` (the sequence length) are zero, so masked keys and padded queries never hold garbage.
template <typename T, int D>
__device__ __forceinline__ void LoadTile(float* dst, int rows, const T* src, long long stride, int row0, int limit) {
  constexpr int kLd = D + 1;
  for (int idx = threadIdx.x; idx < rows * D; idx += kAttnThreads) {
    const int r = idx / D, c = idx % D;
    const int row = row0 + r;
    dst[r * kLd + c] = row < limit ? mist_cuda::Load<T>(src, static_cast<long long>(row) * stride + c) : 0.f;
  }
}

// lse2[r] = lse[row0 + r] * log2 e (0 past the sequence; those rows are masked).
__device__ __forceinline__ void LoadLse(float* lse2, int rows, const float* lse, int row0, int limit) {
  for (int r = threadIdx.x; r < rows; r += kAttnThreads) {
    const int row = row0 + r;
    lse2[r] = row < limit ? lse[row] * kLog2e : 0.f;
  }
}

// drow[r] = sum_c dO[r][c] * out[row0 + r][c]: one warp per row, lanes over the features.
// dO is the shared tile (leading dimension D + 1); out is read from global memory.
template <typename T, int D>
__device__ __forceinline__ void RowDots(float* drow, int rows, const float* dO, const T* out, long long stride, int row0,
                                        int limit) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int r = warp; r < rows; r += kAttnThreads / 32) {
    const int row = row0 + r;
    float acc = 0.f;
    if (row < limit) {
      for (int c = lane; c < D; c += 32) {
        acc += dO[r * (D + 1) + c] * mist_cuda::Load<T>(out, static_cast<long long>(row) * stride + c);
      }
    }
    acc = mist_cuda::WarpSum(acc);
    if (lane == 0) drow[r] = acc;
  }
}

// acc[r][c] = sum_k A[(ty * RM + r)][k] * B[(tx + 16 c)][k]: this thread's part of a
// (16 RM) x (16 CN) tile of A B^T, A and B shared tiles with leading dimension D + 1.
template <int D, int RM, int CN>
__device__ __forceinline__ void TileDots(float (&acc)[RM][CN], const float* A, const float* B, int tx, int ty) {
  constexpr int kLd = D + 1;
#pragma unroll
  for (int r = 0; r < RM; ++r) {
#pragma unroll
    for (int c = 0; c < CN; ++c) acc[r][c] = 0.f;
  }
  const float* a = A + ty * RM * kLd;
  const float* b = B + tx * kLd;
#pragma unroll 4
  for (int k = 0; k < D; ++k) {
    float av[RM], bv[CN];
#pragma unroll
    for (int r = 0; r < RM; ++r) av[r] = a[r * kLd + k];
#pragma unroll
    for (int c = 0; c < CN; ++c) bv[c] = b[c * 16 * kLd + k];
#pragma unroll
    for (int r = 0; r < RM; ++r) {
#pragma unroll
      for (int c = 0; c < CN; ++c) acc[r][c] = fmaf(av[r], bv[c], acc[r][c]);
    }
  }
}

// Max and sum over the 16 threads of a half-warp (the 16 threads sharing ty hold one row's columns).
__device__ __forceinline__ float HalfWarpMax(float v) {
  for (int offset = 8; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}
__device__ __forceinline__ float HalfWarpSum(float v) {
  for (int offset = 8; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Row keys (and, with dropout, the rows' dropout index bases) of this thread's RM rows of the
// query tile at i0: rows ty * RM + r.
template <int RM, class Mask>
__device__ __forceinline__ void RowKeys(long long (&rk)[RM], uint64_t (&rbase)[RM], const Mask& mask, int i0, int q_seq,
                                        int ty, const AttnDropout& drop, uint64_t head_base) {
#pragma unroll
  for (int r = 0; r < RM; ++r) {
    rk[r] = RowKeyOf(mask, i0 + ty * RM + r, q_seq);
    rbase[r] = drop.enabled ? DropRowBase(drop, head_base, rk[r]) : 0;
  }
}

// Column keys of this thread's CN columns of the key tile at j0: columns tx + 16 c.
template <int CN, class Mask>
__device__ __forceinline__ void ColKeys(long long (&ck)[CN], const Mask& mask, int j0, int k_seq, int tx) {
#pragma unroll
  for (int c = 0; c < CN; ++c) ck[c] = ColKeyOf(mask, j0 + tx + 16 * c, k_seq);
}

// ---------------------------------------------------------------------------------------------
// Forward (algorithm 1). Grid: x = batch * heads, y = query tiles (the last tiles, the heaviest
// under the causal mask, are scheduled first). Each thread owns RM query rows: for them the running
// max m (log2 domain), the running sum l and RM x D/16 output accumulators, rescaled by
// exp2(m_old - m_new) per key tile. The sum l runs over the probabilities before dropout, the
// accumulators over the dropped ones (o_i = sum_j p_ij z_ij v_j / sum_j p_ij).
//
// merge = 0: out and lse are written; a row that sees no key gets out = 0 and lse = -inf.
// merge = 1: the block is folded into the (out, lse) already there by their log-sum-exp,
//   lse = logaddexp(lse_old, lse_b), out = exp(lse_old - lse) out_old + exp(lse_b - lse) o_b;
//   a row that sees no key keeps them, a row whose lse_old is -inf takes the block's.
template <typename T, int D, class Mask>
__device__ __forceinline__ void AttentionForward(T* out, float* lse, const T* q, const T* k, const T* v, const Mask& mask,
                                                 int q_seq, int k_seq, int heads, int kv_heads, float scale, int merge,
                                                 const AttnDropout& drop) {
  using Tiles = FwdTiles<D>;
  constexpr int kRows = Tiles::kRows, kCols = Tiles::kCols, kLd = D + 1, kPld = kCols + 1;
  constexpr int RM = kRows / 16, CN = kCols / 16, DN = D / 16;
  extern __shared__ float smem[];
  float* qs = smem;                  // [kRows][kLd]
  float* ks = qs + kRows * kLd;      // [kCols][kLd]
  float* vs = ks + kCols * kLd;      // [kCols][kLd]
  float* ps = vs + kCols * kLd;      // [kRows][kPld]

  const int bh = blockIdx.x, b = bh / heads, h = bh % heads, kvh = h / (heads / kv_heads);
  const int i0 = (gridDim.y - 1 - blockIdx.y) * kRows;
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  const long long qstride = static_cast<long long>(heads) * D, kstride = static_cast<long long>(kv_heads) * D;
  const long long q_base = static_cast<long long>(b) * q_seq, k_base = static_cast<long long>(b) * k_seq;
  const T* qb = q + q_base * qstride + h * D;
  const T* kb = k + k_base * kstride + kvh * D;
  const T* vb = v + k_base * kstride + kvh * D;
  const float scale2 = scale * kLog2e;

  LoadTile<T, D>(qs, kRows, qb, qstride, i0, q_seq);

  long long rk[RM];
  uint64_t rbase[RM];
  RowKeys<RM>(rk, rbase, mask, i0, q_seq, ty, drop, drop.enabled ? DropHeadBase(drop, b, h) : 0);

  float m[RM], l[RM], o[RM][DN];
#pragma unroll
  for (int r = 0; r < RM; ++r) {
    m[r] = -CUDART_INF_F;
    l[r] = 0.f;
#pragma unroll
    for (int c = 0; c < DN; ++c) o[r][c] = 0.f;
  }

  const int key_end = mask.KeyEnd(i0, kRows);
  for (int j0 = 0; j0 < key_end; j0 += kCols) {
    __syncthreads();  // the previous tile's readers of ks, vs, ps are done
    LoadTile<T, D>(ks, kCols, kb, kstride, j0, k_seq);
    LoadTile<T, D>(vs, kCols, vb, kstride, j0, k_seq);
    __syncthreads();

    long long ck[CN];
    ColKeys<CN>(ck, mask, j0, k_seq, tx);
    float s[RM][CN];
    TileDots<D, RM, CN>(s, qs, ks, tx, ty);
#pragma unroll
    for (int r = 0; r < RM; ++r) {
      const int row = ty * RM + r;
      float mx = -CUDART_INF_F;
#pragma unroll
      for (int c = 0; c < CN; ++c) {
        s[r][c] = ck[c] <= rk[r] ? s[r][c] * scale2 : -CUDART_INF_F;
        mx = fmaxf(mx, s[r][c]);
      }
      mx = HalfWarpMax(mx);
      const float m_new = fmaxf(m[r], mx);
      // A row that has seen no visible key yet keeps everything at 0 (exp2(-inf) = 0, no NaN).
      const float m_use = m_new == -CUDART_INF_F ? 0.f : m_new;
      const float alpha = exp2f(m[r] - m_use);
      float sum = 0.f;
#pragma unroll
      for (int c = 0; c < CN; ++c) {
        const float p = exp2f(s[r][c] - m_use);
        sum += p;
        const float z = drop.enabled && ck[c] <= rk[r] ? DropZ(drop, rbase[r], ck[c]) : 1.f;
        ps[row * kPld + tx + 16 * c] = p * z;
      }
      sum = HalfWarpSum(sum);
      l[r] = l[r] * alpha + sum;
      m[r] = m_new;
#pragma unroll
      for (int c = 0; c < DN; ++c) o[r][c] *= alpha;
    }
    __syncthreads();  // ps complete

    // o += P V over the tile's keys (masked keys have P = 0 and zero-filled V).
#pragma unroll 4
    for (int kk = 0; kk < kCols; ++kk) {
      float vv[DN];
#pragma unroll
      for (int c = 0; c < DN; ++c) vv[c] = vs[kk * kLd + tx + 16 * c];
#pragma unroll
      for (int r = 0; r < RM; ++r) {
        const float p = ps[(ty * RM + r) * kPld + kk];
#pragma unroll
        for (int c = 0; c < DN; ++c) o[r][c] = fmaf(p, vv[c], o[r][c]);
      }
    }
  }

  const long long lse_base = (static_cast<long long>(b) * heads + h) * q_seq;
  // The 16 threads of a row all read its old lse before thread tx = 0 overwrites it.
  float lse_old[RM];
#pragma unroll
  for (int r = 0; r < RM; ++r) {
    const int i = i0 + ty * RM + r;
    lse_old[r] = merge && i < q_seq ? lse[lse_base + i] : -CUDART_INF_F;
  }
  if (merge) __syncthreads();  // merge is the same for the whole block

#pragma unroll
  for (int r = 0; r < RM; ++r) {
    const int i = i0 + ty * RM + r;
    if (i >= q_seq) continue;
    T* orow = out + (q_base + i) * qstride + h * D;
    float* lrow = lse + lse_base + i;
    if (m[r] == -CUDART_INF_F) {  // no key of this block is visible to the row
      if (!merge) {
#pragma unroll
        for (int c = 0; c < DN; ++c) mist_cuda::Store<T>(orow, tx + 16 * c, 0.f);
        if (tx == 0) *lrow = -CUDART_INF_F;
      }
      continue;
    }
    // The row's largest visible term is exp2(0) = 1, so l >= 1 here.
    const float inv = 1.f / l[r];
    const float lse_b = m[r] * kLn2 + logf(l[r]);
    if (!merge || lse_old[r] == -CUDART_INF_F) {
#pragma unroll
      for (int c = 0; c < DN; ++c) mist_cuda::Store<T>(orow, tx + 16 * c, o[r][c] * inv);
      if (tx == 0) *lrow = lse_b;
      continue;
    }
    const float mm = fmaxf(lse_old[r], lse_b);
    const float lse_new = mm + logf(expf(lse_old[r] - mm) + expf(lse_b - mm));
    const float w_old = expf(lse_old[r] - lse_new), w_b = expf(lse_b - lse_new) * inv;
#pragma unroll
    for (int c = 0; c < DN; ++c) {
      const int col = tx + 16 * c;
      mist_cuda::Store<T>(orow, col, w_old * mist_cuda::Load<T>(orow, col) + w_b * o[r][c]);
    }
    if (tx == 0) *lrow = lse_new;
  }
}

// ---------------------------------------------------------------------------------------------
// P and dS of one (query tile) x (key tile) block from S = Q K^T and dP = dO V^T (this thread's
// part), invisible and padded elements zeroed: P = exp2(S scale log2e - lse log2e),
// dS = P (z dP - D). Written to the shared tiles ps (P z, optional) and dss, leading dimension kPld.
template <int RM, int CN, int kPld>
__device__ __forceinline__ void ProbsAndGrads(float* ps, float* dss, const float (&s)[RM][CN], const float (&dp)[RM][CN],
                                              const float* lse2, const float* drow, const long long (&rk)[RM],
                                              const uint64_t (&rbase)[RM], const long long (&ck)[CN],
                                              const AttnDropout& drop, float scale2, int tx, int ty) {
#pragma unroll
  for (int r = 0; r < RM; ++r) {
    const int row = ty * RM + r;
    const float l2 = lse2[row], dr = drow[row];
#pragma unroll
    for (int c = 0; c < CN; ++c) {
      const int col = tx + 16 * c;
      const bool visible = ck[c] <= rk[r];
      const float p = visible ? exp2f(s[r][c] * scale2 - l2) : 0.f;
      const float z = drop.enabled && visible ? DropZ(drop, rbase[r], ck[c]) : 1.f;
      if (ps != nullptr) ps[row * kPld + col] = p * z;
      dss[row * kPld + col] = p * (z * dp[r][c] - dr);
    }
  }
}

// Backward dQ pass. Grid: x = batch * heads, y = query tiles (heaviest first under the causal mask).
// accumulate = 0 writes dq, 1 adds to it.
template <typename T, int D, class Mask>
__device__ __forceinline__ void AttentionBackwardDq(T* dq, const T* dout, const T* q, const T* k, const T* v, const T* out,
                                                    const float* lse, const Mask& mask, int q_seq, int k_seq, int heads,
                                                    int kv_heads, float scale, int accumulate, const AttnDropout& drop) {
  using Tiles = DqTiles<D>;
  constexpr int kRows = Tiles::kRows, kCols = Tiles::kCols, kLd = D + 1, kPld = kCols + 1;
  constexpr int RM = kRows / 16, CN = kCols / 16, DN = D / 16;
  extern __shared__ float smem[];
  float* qs = smem;                 // [kRows][kLd]
  float* dos = qs + kRows * kLd;    // [kRows][kLd]
  float* ks = dos + kRows * kLd;    // [kCols][kLd]
  float* vs = ks + kCols * kLd;     // [kCols][kLd]
  float* dss = vs + kCols * kLd;    // [kRows][kPld]
  float* lse2 = dss + kRows * kPld; // [kRows]
  float* drow = lse2 + kRows;       // [kRows]

  const int bh = blockIdx.x, b = bh / heads, h = bh % heads, kvh = h / (heads / kv_heads);
  const int i0 = (gridDim.y - 1 - blockIdx.y) * kRows;
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  const long long qstride = static_cast<long long>(heads) * D, kstride = static_cast<long long>(kv_heads) * D;
  const long long qoff = static_cast<long long>(b) * q_seq * qstride + h * D;
  const long long koff = static_cast<long long>(b) * k_seq * kstride + kvh * D;
  const float scale2 = scale * kLog2e;

  LoadTile<T, D>(qs, kRows, q + qoff, qstride, i0, q_seq);
  LoadTile<T, D>(dos, kRows, dout + qoff, qstride, i0, q_seq);
  LoadLse(lse2, kRows, lse + (static_cast<long long>(b) * heads + h) * q_seq, i0, q_seq);
  __syncthreads();  // dos complete for RowDots
  RowDots<T, D>(drow, kRows, dos, out + qoff, qstride, i0, q_seq);
  // drow and lse2 are read after the __syncthreads that follows the first key tile's load.

  long long rk[RM];
  uint64_t rbase[RM];
  RowKeys<RM>(rk, rbase, mask, i0, q_seq, ty, drop, drop.enabled ? DropHeadBase(drop, b, h) : 0);

  float acc[RM][DN];
#pragma unroll
  for (int r = 0; r < RM; ++r) {
#pragma unroll
    for (int c = 0; c < DN; ++c) acc[r][c] = 0.f;
  }

  const int key_end = mask.KeyEnd(i0, kRows);
  for (int j0 = 0; j0 < key_end; j0 += kCols) {
    __syncthreads();  // the previous tile's readers of ks, vs, dss are done
    LoadTile<T, D>(ks, kCols, k + koff, kstride, j0, k_seq);
    LoadTile<T, D>(vs, kCols, v + koff, kstride, j0, k_seq);
    __syncthreads();

    long long ck[CN];
    ColKeys<CN>(ck, mask, j0, k_seq, tx);
    float s[RM][CN], dp[RM][CN];
    TileDots<D, RM, CN>(s, qs, ks, tx, ty);
    TileDots<D, RM, CN>(dp, dos, vs, tx, ty);
    ProbsAndGrads<RM, CN, kPld>(nullptr, dss, s, dp, lse2, drow, rk, rbase, ck, drop, scale2, tx, ty);
    __syncthreads();  // dss complete

    // dq += dS K over the tile's keys.
#pragma unroll 4
    for (int kk = 0; kk < kCols; ++kk) {
      float kv[DN];
#pragma unroll
      for (int c = 0; c < DN; ++c) kv[c] = ks[kk * kLd + tx + 16 * c];
#pragma unroll
      for (int r = 0; r < RM; ++r) {
        const float g = dss[(ty * RM + r) * kPld + kk];
#pragma unroll
        for (int c = 0; c < DN; ++c) acc[r][c] = fmaf(g, kv[c], acc[r][c]);
      }
    }
  }

#pragma unroll
  for (int r = 0; r < RM; ++r) {
    const int i = i0 + ty * RM + r;
    if (i >= q_seq) continue;
    T* row = dq + qoff + static_cast<long long>(i) * qstride;
#pragma unroll
    for (int c = 0; c < DN; ++c) {
      const int col = tx + 16 * c;
      const float g = acc[r][c] * scale;
      mist_cuda::Store<T>(row, col, accumulate ? mist_cuda::Load<T>(row, col) + g : g);
    }
  }
}

// Backward dK/dV pass. Grid: x = batch * kvHeads, y = key tiles (under the causal mask the last key
// tiles see the fewest queries, so the first tiles are scheduled first as they are). accumulate = 0
// writes dk and dv, 1 adds to them.
template <typename T, int D, class Mask>
__device__ __forceinline__ void AttentionBackwardDkv(T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                                                     const T* out, const float* lse, const Mask& mask, int q_seq, int k_seq,
                                                     int heads, int kv_heads, float scale, int accumulate,
                                                     const AttnDropout& drop) {
  using Tiles = DkvTiles<D>;
  constexpr int kRows = Tiles::kRows, kCols = Tiles::kCols, kLd = D + 1, kPld = kCols + 1;
  constexpr int RM = kRows / 16, CN = kCols / 16, KM = kCols / 16, DN = D / 16;
  extern __shared__ float smem[];
  float* ks = smem;                 // [kCols][kLd]
  float* vs = ks + kCols * kLd;     // [kCols][kLd]
  float* qs = vs + kCols * kLd;     // [kRows][kLd]
  float* dos = qs + kRows * kLd;    // [kRows][kLd]
  float* ps = dos + kRows * kLd;    // [kRows][kPld]
  float* dss = ps + kRows * kPld;   // [kRows][kPld]
  float* lse2 = dss + kRows * kPld; // [kRows]
  float* drow = lse2 + kRows;       // [kRows]

  const int group = heads / kv_heads;
  const int bk = blockIdx.x, b = bk / kv_heads, kvh = bk % kv_heads;
  const int j0 = blockIdx.y * kCols;
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  const long long qstride = static_cast<long long>(heads) * D, kstride = static_cast<long long>(kv_heads) * D;
  const long long q_base = static_cast<long long>(b) * q_seq;
  const long long koff = static_cast<long long>(b) * k_seq * kstride + kvh * D;
  const float scale2 = scale * kLog2e;

  LoadTile<T, D>(ks, kCols, k + koff, kstride, j0, k_seq);
  LoadTile<T, D>(vs, kCols, v + koff, kstride, j0, k_seq);

  long long ck[CN];
  ColKeys<CN>(ck, mask, j0, k_seq, tx);

  // This thread owns keys ty * KM + r (r < KM) and features tx + 16 c of dK and dV.
  float dka[KM][DN], dva[KM][DN];
#pragma unroll
  for (int r = 0; r < KM; ++r) {
#pragma unroll
    for (int c = 0; c < DN; ++c) dka[r][c] = dva[r][c] = 0.f;
  }

  const int first = mask.QueryBegin(j0, kRows);
  for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
    const long long qoff = q_base * qstride + h * D;
    const float* lse_h = lse + (static_cast<long long>(b) * heads + h) * q_seq;
    const uint64_t head_base = drop.enabled ? DropHeadBase(drop, b, h) : 0;
    for (int i0 = first; i0 < q_seq; i0 += kRows) {
      __syncthreads();  // the previous tile's readers of qs, dos, ps, dss, lse2, drow are done
      LoadTile<T, D>(qs, kRows, q + qoff, qstride, i0, q_seq);
      LoadTile<T, D>(dos, kRows, dout + qoff, qstride, i0, q_seq);
      LoadLse(lse2, kRows, lse_h, i0, q_seq);
      __syncthreads();  // qs, dos, lse2 (and, the first time, ks, vs) complete
      RowDots<T, D>(drow, kRows, dos, out + qoff, qstride, i0, q_seq);

      long long rk[RM];
      uint64_t rbase[RM];
      RowKeys<RM>(rk, rbase, mask, i0, q_seq, ty, drop, head_base);
      float s[RM][CN], dp[RM][CN];
      TileDots<D, RM, CN>(s, qs, ks, tx, ty);
      TileDots<D, RM, CN>(dp, dos, vs, tx, ty);
      __syncthreads();  // drow complete
      ProbsAndGrads<RM, CN, kPld>(ps, dss, s, dp, lse2, drow, rk, rbase, ck, drop, scale2, tx, ty);
      __syncthreads();  // ps, dss complete

      // dv_j += sum_i P_ij z_ij do_i, dk_j += sum_i dS_ij q_i over the tile's queries.
#pragma unroll 2
      for (int ii = 0; ii < kRows; ++ii) {
        float qv[DN], dov[DN];
#pragma unroll
        for (int c = 0; c < DN; ++c) {
          qv[c] = qs[ii * kLd + tx + 16 * c];
          dov[c] = dos[ii * kLd + tx + 16 * c];
        }
#pragma unroll
        for (int r = 0; r < KM; ++r) {
          const float p = ps[ii * kPld + ty * KM + r], g = dss[ii * kPld + ty * KM + r];
#pragma unroll
          for (int c = 0; c < DN; ++c) {
            dva[r][c] = fmaf(p, dov[c], dva[r][c]);
            dka[r][c] = fmaf(g, qv[c], dka[r][c]);
          }
        }
      }
    }
  }

#pragma unroll
  for (int r = 0; r < KM; ++r) {
    const int j = j0 + ty * KM + r;
    if (j >= k_seq) continue;
    const long long off = koff + static_cast<long long>(j) * kstride;
#pragma unroll
    for (int c = 0; c < DN; ++c) {
      const int col = tx + 16 * c;
      const float gk = dka[r][c] * scale, gv = dva[r][c];
      mist_cuda::Store<T>(dk + off, col, accumulate ? mist_cuda::Load<T>(dk + off, col) + gk : gk);
      mist_cuda::Store<T>(dv + off, col, accumulate ? mist_cuda::Load<T>(dv + off, col) + gv : gv);
    }
  }
}

}  // namespace mist_attention
