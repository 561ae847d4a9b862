// Causal grouped-query attention, forward and backward, FlashAttention-2 style (Dao 2023,
// "FlashAttention-2: Faster Attention with Better Parallelism and Work Partitioning", algorithms 1
// and 2), mirroring the CPU kernels of kernels/attention.cc:
//   q, out, dq, dout [batch * seq, heads * D]; k, v, dk, dv [batch * seq, kvHeads * D] (token-major);
//   lse [batch, heads, seq] fp32 (natural log); query head h reads key/value head h / (heads / kvHeads);
//   key j is visible to query i when j <= i.
//   s_ij = scale q_i . k_j,  o_i = sum_j softmax(s_i)_j v_j,  lse_i = log sum_j exp(s_ij)
//   P_ij = exp(s_ij - lse_i),  dP_ij = do_i . v_j,  D_i = do_i . o_i,  dS_ij = P_ij (dP_ij - D_i)
//   dq_i = scale sum_j dS_ij k_j,  dk_j = scale sum_i dS_ij q_i,  dv_j = sum_i P_ij do_i  (all written)
//
// Every product runs on the CUDA cores in fp32 from fp32 shared-memory tiles (bf16/f16 storage is
// converted on load and rounded once on store), for all three storage dtypes. Scores are kept in
// the base-2 domain (scaled by log2 e) so the exponentials are exp2f, as FlashAttention does.
//
// The backward is two kernels, neither with float atomics, so the gradients are deterministic:
//   dq:   one block per (batch, head, query tile) recomputes P and dS against every key tile up to
//         the diagonal and accumulates dQ in registers (FlashAttention-2's separate dQ pass);
//   dk/dv: one block per (batch, kv head, key tile) loops over the query heads of its group and the
//         query tiles at or below the diagonal, accumulating dK and dV in registers.
// D_i = do_i . o_i is recomputed by each block for its query rows (the op has no scratch buffer to
// keep it in), an extra read of one output tile per query tile.
#include <math_constants.h>

#include "attention_tiles.cuh"
#include "dtype.cuh"

namespace {

using mist_attention::kAttnThreads;

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

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

// ---------------------------------------------------------------------------------------------
// Forward (algorithm 1). Grid: x = batch * heads, y = query tiles (the heaviest, last, tiles are
// scheduled first). Each thread owns RM query rows: for them the running max m (log2 domain), the
// running sum l and RM x D/16 output accumulators, rescaled by exp2(m_old - m_new) per key tile.
template <typename T, int D>
__device__ __forceinline__ void AttentionForward(T* out, float* lse, const T* q, const T* k, const T* v, int seq, int heads,
                                                 int kv_heads, float scale) {
  using Tiles = mist_attention::FwdTiles<D>;
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
  const long long seq_base = static_cast<long long>(b) * seq;
  const T* qb = q + seq_base * qstride + h * D;
  const T* kb = k + seq_base * kstride + kvh * D;
  const T* vb = v + seq_base * kstride + kvh * D;
  const float scale2 = scale * kLog2e;

  LoadTile<T, D>(qs, kRows, qb, qstride, i0, seq);

  float m[RM], l[RM], o[RM][DN];
#pragma unroll
  for (int r = 0; r < RM; ++r) {
    m[r] = -CUDART_INF_F;
    l[r] = 0.f;
#pragma unroll
    for (int c = 0; c < DN; ++c) o[r][c] = 0.f;
  }

  // Keys 0 .. min(seq, i0 + kRows) - 1 are visible to some row of this tile.
  const int key_end = min(seq, i0 + kRows);
  for (int j0 = 0; j0 < key_end; j0 += kCols) {
    __syncthreads();  // the previous tile's readers of ks, vs, ps are done
    LoadTile<T, D>(ks, kCols, kb, kstride, j0, seq);
    LoadTile<T, D>(vs, kCols, vb, kstride, j0, seq);
    __syncthreads();

    float s[RM][CN];
    TileDots<D, RM, CN>(s, qs, ks, tx, ty);
#pragma unroll
    for (int r = 0; r < RM; ++r) {
      const int row = ty * RM + r, i = i0 + row;
      float mx = -CUDART_INF_F;
#pragma unroll
      for (int c = 0; c < CN; ++c) {
        const int j = j0 + tx + 16 * c;
        s[r][c] = (i < seq && j <= i) ? s[r][c] * scale2 : -CUDART_INF_F;
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
        ps[row * kPld + tx + 16 * c] = p;
        sum += p;
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

#pragma unroll
  for (int r = 0; r < RM; ++r) {
    const int i = i0 + ty * RM + r;
    if (i >= seq) continue;
    // Every real row sees key 0, so l >= 1 here.
    const float inv = 1.f / l[r];
    T* orow = out + (seq_base + i) * qstride + h * D;
#pragma unroll
    for (int c = 0; c < DN; ++c) mist_cuda::Store<T>(orow, tx + 16 * c, o[r][c] * inv);
    if (tx == 0) lse[(static_cast<long long>(b) * heads + h) * seq + i] = m[r] * kLn2 + logf(l[r]);
  }
}

// ---------------------------------------------------------------------------------------------
// P and dS of one (query tile) x (key tile) block from S = Q K^T and dP = dO V^T (this thread's
// part), with the causal mask and padded rows/keys zeroed: P = exp2(S scale log2e - lse log2e),
// dS = P (dP - D). Written to the shared tiles ps (optional) and dss, leading dimension kPld.
template <int RM, int CN, int kPld>
__device__ __forceinline__ void ProbsAndGrads(float* ps, float* dss, const float (&s)[RM][CN], const float (&dp)[RM][CN],
                                              const float* lse2, const float* drow, int i0, int j0, int seq, float scale2,
                                              int tx, int ty) {
#pragma unroll
  for (int r = 0; r < RM; ++r) {
    const int row = ty * RM + r, i = i0 + row;
    const float l2 = lse2[row], dr = drow[row];
#pragma unroll
    for (int c = 0; c < CN; ++c) {
      const int col = tx + 16 * c, j = j0 + col;
      const float p = (i < seq && j <= i) ? exp2f(s[r][c] * scale2 - l2) : 0.f;
      if (ps != nullptr) ps[row * kPld + col] = p;
      dss[row * kPld + col] = p * (dp[r][c] - dr);
    }
  }
}

// Backward dQ pass. Grid: x = batch * heads, y = query tiles (heaviest first).
template <typename T, int D>
__device__ __forceinline__ void AttentionBackwardDq(T* dq, const T* dout, const T* q, const T* k, const T* v, const T* out,
                                                    const float* lse, int seq, int heads, int kv_heads, float scale) {
  using Tiles = mist_attention::DqTiles<D>;
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
  const long long seq_base = static_cast<long long>(b) * seq;
  const long long qoff = seq_base * qstride + h * D, koff = seq_base * kstride + kvh * D;
  const float scale2 = scale * kLog2e;

  LoadTile<T, D>(qs, kRows, q + qoff, qstride, i0, seq);
  LoadTile<T, D>(dos, kRows, dout + qoff, qstride, i0, seq);
  LoadLse(lse2, kRows, lse + (static_cast<long long>(b) * heads + h) * seq, i0, seq);
  __syncthreads();  // dos complete for RowDots
  RowDots<T, D>(drow, kRows, dos, out + qoff, qstride, i0, seq);
  // drow and lse2 are read after the __syncthreads that follows the first key tile's load.

  float acc[RM][DN];
#pragma unroll
  for (int r = 0; r < RM; ++r) {
#pragma unroll
    for (int c = 0; c < DN; ++c) acc[r][c] = 0.f;
  }

  const int key_end = min(seq, i0 + kRows);
  for (int j0 = 0; j0 < key_end; j0 += kCols) {
    __syncthreads();  // the previous tile's readers of ks, vs, dss are done
    LoadTile<T, D>(ks, kCols, k + koff, kstride, j0, seq);
    LoadTile<T, D>(vs, kCols, v + koff, kstride, j0, seq);
    __syncthreads();

    float s[RM][CN], dp[RM][CN];
    TileDots<D, RM, CN>(s, qs, ks, tx, ty);
    TileDots<D, RM, CN>(dp, dos, vs, tx, ty);
    ProbsAndGrads<RM, CN, kPld>(nullptr, dss, s, dp, lse2, drow, i0, j0, seq, scale2, tx, ty);
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
    if (i >= seq) continue;
    T* row = dq + qoff + static_cast<long long>(i) * qstride;
#pragma unroll
    for (int c = 0; c < DN; ++c) mist_cuda::Store<T>(row, tx + 16 * c, acc[r][c] * scale);
  }
}

// Backward dK/dV pass. Grid: x = batch * kvHeads, y = key tiles (the lightest, last, key tiles see
// the fewest queries, so the first tiles are scheduled first as they are).
template <typename T, int D>
__device__ __forceinline__ void AttentionBackwardDkv(T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                                                     const T* out, const float* lse, int seq, int heads, int kv_heads,
                                                     float scale) {
  using Tiles = mist_attention::DkvTiles<D>;
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
  const long long seq_base = static_cast<long long>(b) * seq;
  const long long koff = seq_base * kstride + kvh * D;
  const float scale2 = scale * kLog2e;

  LoadTile<T, D>(ks, kCols, k + koff, kstride, j0, seq);
  LoadTile<T, D>(vs, kCols, v + koff, kstride, j0, seq);

  // This thread owns keys ty * KM + r (r < KM) and features tx + 16 c of dK and dV.
  float dka[KM][DN], dva[KM][DN];
#pragma unroll
  for (int r = 0; r < KM; ++r) {
#pragma unroll
    for (int c = 0; c < DN; ++c) dka[r][c] = dva[r][c] = 0.f;
  }

  // Queries i >= j0 see some key of this tile; start at the query tile holding j0.
  const int first = (j0 / kRows) * kRows;
  for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
    const long long qoff = seq_base * qstride + h * D;
    const float* lse_h = lse + (static_cast<long long>(b) * heads + h) * seq;
    for (int i0 = first; i0 < seq; i0 += kRows) {
      __syncthreads();  // the previous tile's readers of qs, dos, ps, dss, lse2, drow are done
      LoadTile<T, D>(qs, kRows, q + qoff, qstride, i0, seq);
      LoadTile<T, D>(dos, kRows, dout + qoff, qstride, i0, seq);
      LoadLse(lse2, kRows, lse_h, i0, seq);
      __syncthreads();  // qs, dos, lse2 (and, the first time, ks, vs) complete
      RowDots<T, D>(drow, kRows, dos, out + qoff, qstride, i0, seq);

      float s[RM][CN], dp[RM][CN];
      TileDots<D, RM, CN>(s, qs, ks, tx, ty);
      TileDots<D, RM, CN>(dp, dos, vs, tx, ty);
      __syncthreads();  // drow complete
      ProbsAndGrads<RM, CN, kPld>(ps, dss, s, dp, lse2, drow, i0, j0, seq, scale2, tx, ty);
      __syncthreads();  // ps, dss complete

      // dv_j += sum_i P_ij do_i, dk_j += sum_i dS_ij q_i over the tile's queries.
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
    if (j >= seq) continue;
    const long long off = koff + static_cast<long long>(j) * kstride;
#pragma unroll
    for (int c = 0; c < DN; ++c) {
      mist_cuda::Store<T>(dk + off, tx + 16 * c, dka[r][c] * scale);
      mist_cuda::Store<T>(dv + off, tx + 16 * c, dva[r][c]);
    }
  }
}

}  // namespace

// Exported variants: mist_attention_{fwd,bwd_dq,bwd_dkv}_d<D>_<dtype>, launched by ops/attention.cc
// with kAttnThreads threads and the Tiles' kShared bytes of dynamic shared memory.
#define MIST_ATTENTION_KERNELS(D, suffix, T)                                                                        \
  extern "C" __global__ void __launch_bounds__(kAttnThreads)                                                      \
      mist_attention_fwd_d##D##_##suffix(T* out, float* lse, const T* q, const T* k, const T* v, int seq, int heads, \
                                         int kv_heads, float scale) {                                             \
    AttentionForward<T, D>(out, lse, q, k, v, seq, heads, kv_heads, scale);                                       \
  }                                                                                                               \
  extern "C" __global__ void __launch_bounds__(kAttnThreads)                                                      \
      mist_attention_bwd_dq_d##D##_##suffix(T* dq, const T* dout, const T* q, const T* k, const T* v, const T* out, \
                                            const float* lse, int seq, int heads, int kv_heads, float scale) {    \
    AttentionBackwardDq<T, D>(dq, dout, q, k, v, out, lse, seq, heads, kv_heads, scale);                         \
  }                                                                                                               \
  extern "C" __global__ void __launch_bounds__(kAttnThreads) mist_attention_bwd_dkv_d##D##_##suffix(            \
      T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out, const float* lse, int seq,   \
      int heads, int kv_heads, float scale) {                                                                     \
    AttentionBackwardDkv<T, D>(dk, dv, dout, q, k, v, out, lse, seq, heads, kv_heads, scale);                    \
  }

#define MIST_ATTENTION_ALL_D(suffix, T) \
  MIST_ATTENTION_KERNELS(16, suffix, T) \
  MIST_ATTENTION_KERNELS(32, suffix, T) \
  MIST_ATTENTION_KERNELS(64, suffix, T) \
  MIST_ATTENTION_KERNELS(128, suffix, T)

MIST_FOR_EACH_STORAGE(MIST_ATTENTION_ALL_D)
