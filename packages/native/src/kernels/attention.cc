// Causal scaled dot-product self-attention with grouped-query heads (Ainslie et al. 2023): query
// head h reads key/value head h / (heads / kvHeads). Layouts are token-major, as the projections
// produce them: q, out [batch * seq, heads * D]; k, v [batch * seq, kvHeads * D]. The forward keeps
// only the log-sum-exp per query row ([batch, heads, seq]); the backward recomputes the
// probabilities from it, as FlashAttention does (Dao et al. 2022, algorithm 2), so no S x S matrix
// is stored between passes. Softmax is computed stably: p_j = exp(s_j - max_j s_j) / sum.
//   s_ij = scale * q_i . k_j (j <= i),  o_i = sum_j p_ij v_j,  lse_i = max + log sum exp(s - max)
//   dv_j += p_ij do_i,  dp_ij = do_i . v_j,  ds_ij = p_ij (dp_ij - do_i . o_i)
//   dq_i += scale ds_ij k_j,  dk_j += scale ds_ij q_i
// With dropout on the probabilities (optional parameters), z_ij = keep_ij / (1 - p) from the
// counter-based generator, regenerated in the backward instead of stored (FlashAttention's way):
//   o_i = sum_j p_ij z_ij v_j,  dv_j += p_ij z_ij do_i,  dp_ij = z_ij do_i . v_j,
//   ds_ij = p_ij (dp_ij - do_i . o_i)  (do_i . o_i still equals sum_j p_ij dp_ij).
// Element (sample g, head H, query i, key j) draws index ((g * totalHeads + H) * seq + i) * seq + j,
// g and H global (sampleOffset, headOffset), so every TP and batch split draws the same mask.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/attention_args.h"
#include "kernels/dropout_rng.h"
#include "kernels/op_args.h"
#include "kernels/thread_pool.h"
#include "kernels/vec_math.h"

namespace mist {
namespace kernels {
namespace {

struct AttnShape {
  int64_t batch, seq, heads, kv_heads, d, group;
  float scale;
  bool dropout;
  AttentionDropoutArgs drop;

  /** z_ij for (batch row b, local head h, query i, key j): 0 or 1 / (1 - p); 1 without dropout. */
  float Z(int64_t b, int64_t h, int64_t i, int64_t j) const { return dropout ? drop.Z(b, h, i, j, seq) : 1.f; }
};

AttnShape ReadShape(const OpArgs& a) {
  const AttentionDims dims = ReadAttentionDims(a);
  AttnShape s{};
  s.batch = dims.batch;
  s.seq = dims.q_seq;
  s.heads = dims.heads;
  s.kv_heads = dims.kv_heads;
  s.d = dims.d;
  s.group = dims.group;
  s.scale = ReadAttentionScale(a, s.d);
  // Optional dropout: ints [..., keyHi, keyLo, sampleOffset, headOffset, totalHeads]; floats [scale, p].
  s.dropout = a.ints.size() > 5;
  if (s.dropout) s.drop = ReadAttentionDropout(a, 5, 1, s.heads);
  return s;
}

// Keys, values and their gradients are held feature-major per head with rows of kBlock-padded
// length, so the score loops run over whole blocks of kBlock keys (the padding is zero, and the
// scores past the causal limit are masked out).
constexpr int64_t kBlock = 16;

inline int64_t Padded(int64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

// Per-thread work arrays, reused across calls (sized to the largest shape seen).
struct AttnWork {
  std::vector<float> kt, vt, dkt, dvt, s;
  void Size(int64_t ld, int64_t d) {
    const size_t sd = static_cast<size_t>(ld * d), sq = static_cast<size_t>(ld);
    if (kt.size() < sd) kt.resize(sd), vt.resize(sd), dkt.resize(sd), dvt.resize(sd);
    if (s.size() < sq) s.resize(sq);
  }
};
thread_local AttnWork tls_attn;

// dst[c * ld + j] = src[(row0 + j) * width + c] for j < seq, 0 for seq <= j < ld: one head's keys
// (or values), feature-major.
void Transpose(const float* src, int64_t row0, int64_t width, int64_t seq, int64_t ld, int64_t d, float* dst) {
  for (int64_t c = 0; c < d; ++c) std::fill(dst + c * ld + seq, dst + (c + 1) * ld, 0.f);
  for (int64_t j = 0; j < seq; ++j) {
    const float* r = src + (row0 + j) * width;
    for (int64_t c = 0; c < d; ++c) dst[c * ld + j] = r[c];
  }
}

// s[j] = sum_c (scale q[c]) kt[c * ld + j] for j in [0, Padded(n)): the scores of one query
// against the first n keys, a block of kBlock keys held in registers across the features.
template <int kD>
inline void Scores(const float* __restrict q, const float* __restrict kt, int64_t ld, int64_t dd, int64_t n, float scale,
                   float* __restrict s) {
  const int64_t d = kD > 0 ? kD : dd;
  for (int64_t j0 = 0; j0 < n; j0 += kBlock) {
    V16 acc{};
    for (int64_t c = 0; c < d; ++c) acc += Splat(scale * q[c]) * Load16(kt + c * ld + j0);
    Store16(s + j0, acc);
  }
}

// o[c] = sum_j w[j] rows[j * stride + c], c < d, j < n.
template <int kD>
inline void WeightedRows(const float* __restrict w, const float* __restrict rows, int64_t stride, int64_t dd, int64_t n,
                         float* __restrict o) {
  if constexpr (kD > 0) {
    float acc[kD] = {};
    for (int64_t j = 0; j < n; ++j) {
      const float wj = w[j];
      const float* r = rows + j * stride;
      for (int c = 0; c < kD; ++c) acc[c] += wj * r[c];
    }
    for (int c = 0; c < kD; ++c) o[c] = acc[c];
  } else {
    for (int64_t c = 0; c < dd; ++c) o[c] = 0.f;
    for (int64_t j = 0; j < n; ++j) {
      const float wj = w[j];
      const float* r = rows + j * stride;
      for (int64_t c = 0; c < dd; ++c) o[c] += wj * r[c];
    }
  }
}

// attention: bufs [out, lse, q, k, v]; ints [batch, seq, heads, kvHeads, headDim]; floats [scale?].
// One task per (batch, query head): the head's keys are transposed once, then per query row the
// scores, their maximum, the exponentials and the weighted sum of values are vector loops.
template <int kD>
void AttentionForward(const AttnShape& s, float* out, float* lse, const float* q, const float* k, const float* v) {
  const int64_t qw = s.heads * s.d, kw = s.kv_heads * s.d, d = kD > 0 ? kD : s.d, ld = Padded(s.seq);
  ThreadPool::Get().Run(s.batch * s.heads, [&](int64_t task) {
    const int64_t b = task / s.heads, h = task % s.heads, kvh = h / s.group;
    AttnWork& w = tls_attn;
    w.Size(ld, d);
    float* kt = w.kt.data();
    float* sc = w.s.data();
    Transpose(k + kvh * d, b * s.seq, kw, s.seq, ld, d, kt);
    const float* vb = v + b * s.seq * kw + kvh * d;
    V16i lane;
    for (int l = 0; l < kBlock; ++l) lane[l] = l;
    for (int64_t i = 0; i < s.seq; ++i) {
      const int64_t n = i + 1;
      const float* qi = q + (b * s.seq + i) * qw + h * d;
      Scores<kD>(qi, kt, ld, d, n, s.scale, sc);
      // Max, exponentials and their sum over whole blocks, the keys past i masked out.
      const int64_t np = Padded(n);
      const V16 ninf = Splat(-std::numeric_limits<float>::infinity());
      const V16i limit = V16i{} + static_cast<int32_t>(i);
      V16 vmax = ninf;
      for (int64_t j0 = 0; j0 < np; j0 += kBlock) {
        const V16 x = lane + static_cast<int32_t>(j0) <= limit ? Load16(sc + j0) : ninf;
        vmax = x > vmax ? x : vmax;
      }
      float mx = vmax[0];
      for (int l = 1; l < kBlock; ++l) mx = vmax[l] > mx ? vmax[l] : mx;
      V16 vsum{};
      for (int64_t j0 = 0; j0 < np; j0 += kBlock) {
        const V16 e = lane + static_cast<int32_t>(j0) <= limit ? VecExp(Load16(sc + j0) - mx) : V16{};
        Store16(sc + j0, e);
        vsum += e;
      }
      float sum = 0.f;
      for (int l = 0; l < kBlock; ++l) sum += vsum[l];
      if (s.dropout) {
        for (int64_t j = 0; j < n; ++j) sc[j] *= s.Z(b, h, i, j);
      }
      float* oi = out + (b * s.seq + i) * qw + h * d;
      WeightedRows<kD>(sc, vb, kw, d, n, oi);
      const float inv = 1.f / sum;
      for (int64_t c = 0; c < d; ++c) oi[c] *= inv;
      lse[(b * s.heads + h) * s.seq + i] = mx + std::log(sum);
    }
  });
}

// attentionBackward: bufs [dq, dk, dv, dout, q, k, v, out, lse]; ints and floats as attention.
// Writes dq, dk, dv. One task per (batch, kv head) owns that head's dk, dv and its query heads' dq.
// The work goes by tiles of kBlock queries x kBlock keys on and below the diagonal (FlashAttention's
// tiling, Dao et al. 2022, algorithm 2): a tile's probabilities P (recomputed from lse) and score
// gradients dS are formed in registers, then dq += dS K, dk += dS^T Q and dv += P^T dO are small
// products that touch each accumulator once per tile. dk and dv accumulate feature-major and are
// transposed back at the end.
template <int kD>
void AttentionBackward(const AttnShape& s, float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                       const float* v, const float* out, const float* lse) {
  const int64_t qw = s.heads * s.d, kw = s.kv_heads * s.d, d = kD > 0 ? kD : s.d, seq = s.seq, ld = Padded(seq);
  ThreadPool::Get().Run(s.batch * s.kv_heads, [&](int64_t task) {
    const int64_t b = task / s.kv_heads, kvh = task % s.kv_heads;
    AttnWork& w = tls_attn;
    w.Size(ld, d);
    float *kt = w.kt.data(), *vt = w.vt.data(), *dkt = w.dkt.data(), *dvt = w.dvt.data();
    Transpose(k + kvh * d, b * seq, kw, seq, ld, d, kt);
    Transpose(v + kvh * d, b * seq, kw, seq, ld, d, vt);
    std::fill(dkt, dkt + ld * d, 0.f);
    std::fill(dvt, dvt + ld * d, 0.f);
    const float* kb = k + b * seq * kw + kvh * d;
    static_assert(kBlock == 16, "the tiles are 16-lane vectors");
    V16 P[kBlock], DS[kBlock];
    float lrow[kBlock], drow[kBlock];
    V16i lane;
    for (int l = 0; l < kBlock; ++l) lane[l] = l;
    for (int64_t h = kvh * s.group; h < (kvh + 1) * s.group; ++h) {
      for (int64_t i0 = 0; i0 < seq; i0 += kBlock) {
        const int64_t nr = std::min<int64_t>(kBlock, seq - i0);
        const float* qrow[kBlock];
        const float* dorow[kBlock];
        float* dqrow[kBlock];
        for (int64_t r = 0; r < nr; ++r) {
          const int64_t off = (b * seq + i0 + r) * qw + h * d;
          qrow[r] = q + off;
          dorow[r] = dout + off;
          dqrow[r] = dq + off;
          lrow[r] = lse[(b * s.heads + h) * seq + i0 + r];
          drow[r] = LaneDot(dout + off, out + off, d);
          for (int64_t c = 0; c < d; ++c) dqrow[r][c] = 0.f;
        }
        for (int64_t j0 = 0; j0 < i0 + nr; j0 += kBlock) {
          // P and dS of the tile; zero above the diagonal (and past the last key).
          const V16i key = lane + static_cast<int32_t>(j0);
          for (int64_t r = 0; r < nr; ++r) {
            const int64_t i = i0 + r;
            V16 sc{}, dp{};
            for (int64_t c = 0; c < d; ++c) {
              sc += Splat(s.scale * qrow[r][c]) * Load16(kt + c * ld + j0);
              dp += Splat(dorow[r][c]) * Load16(vt + c * ld + j0);
            }
            V16 p = VecExp(sc - lrow[r]);
            p = key <= static_cast<int32_t>(i) ? p : V16{};
            P[r] = p;
            DS[r] = p * (dp - drow[r]) * s.scale;
            if (s.dropout) {
              for (int l = 0; l < kBlock && j0 + l <= i; ++l) {
                const float z = s.Z(b, h, i, j0 + l);
                DS[r][l] = P[r][l] * (z * dp[l] - drow[r]) * s.scale;
                P[r][l] *= z;
              }
            }
          }
          // dq_i += sum_j dS_ij k_j over the tile's keys up to the diagonal.
          for (int64_t r = 0; r < nr; ++r) {
            const int64_t nl = std::min<int64_t>(kBlock, i0 + r - j0 + 1);
            float* dqr = dqrow[r];
            if constexpr (kD > 0 && kD % 16 == 0) {
              V16 acc[kD / 16];
              for (int u = 0; u < kD / 16; ++u) acc[u] = Load16(dqr + 16 * u);
              for (int64_t l = 0; l < nl; ++l) {
                const V16 g = Splat(DS[r][l]);
                const float* kj = kb + (j0 + l) * kw;
                for (int u = 0; u < kD / 16; ++u) acc[u] += g * Load16(kj + 16 * u);
              }
              for (int u = 0; u < kD / 16; ++u) Store16(dqr + 16 * u, acc[u]);
            } else {
              for (int64_t l = 0; l < nl; ++l) {
                const float g = DS[r][l];
                const float* kj = kb + (j0 + l) * kw;
                for (int64_t c = 0; c < d; ++c) dqr[c] += g * kj[c];
              }
            }
          }
          // dk_j += sum_i dS_ij q_i, dv_j += sum_i P_ij do_i, feature-major.
          for (int64_t c = 0; c < d; ++c) {
            V16 ak{}, av{};
            for (int64_t r = 0; r < nr; ++r) {
              ak += Splat(qrow[r][c]) * DS[r];
              av += Splat(dorow[r][c]) * P[r];
            }
            float* dkc = dkt + c * ld + j0;
            float* dvc = dvt + c * ld + j0;
            Store16(dkc, Load16(dkc) + ak);
            Store16(dvc, Load16(dvc) + av);
          }
        }
      }
    }
    for (int64_t j = 0; j < seq; ++j) {
      float* dkj = dk + (b * seq + j) * kw + kvh * d;
      float* dvj = dv + (b * seq + j) * kw + kvh * d;
      for (int64_t c = 0; c < d; ++c) {
        dkj[c] = dkt[c * ld + j];
        dvj[c] = dvt[c * ld + j];
      }
    }
  });
}

void AttentionOp(const OpArgs& a) {
  const AttnShape s = ReadShape(a);
  const int64_t rows = s.batch * s.seq, qw = s.heads * s.d, kw = s.kv_heads * s.d;
  float* out = a.F(0, rows * qw, "out");
  float* lse = a.F(1, s.batch * s.heads * s.seq, "lse");
  const float* q = a.F(2, rows * qw, "q");
  const float* k = a.F(3, rows * kw, "k");
  const float* v = a.F(4, rows * kw, "v");
  // Common head sizes get a kernel with the head size fixed at compile time (unrolled, in registers).
  switch (s.d) {
    case 16: return AttentionForward<16>(s, out, lse, q, k, v);
    case 32: return AttentionForward<32>(s, out, lse, q, k, v);
    case 64: return AttentionForward<64>(s, out, lse, q, k, v);
    case 128: return AttentionForward<128>(s, out, lse, q, k, v);
    default: return AttentionForward<0>(s, out, lse, q, k, v);
  }
}

void AttentionBackwardOp(const OpArgs& a) {
  const AttnShape s = ReadShape(a);
  const int64_t rows = s.batch * s.seq, qw = s.heads * s.d, kw = s.kv_heads * s.d;
  float* dq = a.F(0, rows * qw, "dq");
  float* dk = a.F(1, rows * kw, "dk");
  float* dv = a.F(2, rows * kw, "dv");
  const float* dout = a.F(3, rows * qw, "dout");
  const float* q = a.F(4, rows * qw, "q");
  const float* k = a.F(5, rows * kw, "k");
  const float* v = a.F(6, rows * kw, "v");
  const float* out = a.F(7, rows * qw, "out");
  const float* lse = a.F(8, s.batch * s.heads * s.seq, "lse");
  switch (s.d) {
    case 16: return AttentionBackward<16>(s, dq, dk, dv, dout, q, k, v, out, lse);
    case 32: return AttentionBackward<32>(s, dq, dk, dv, dout, q, k, v, out, lse);
    case 64: return AttentionBackward<64>(s, dq, dk, dv, dout, q, k, v, out, lse);
    case 128: return AttentionBackward<128>(s, dq, dk, dv, dout, q, k, v, out, lse);
    default: return AttentionBackward<0>(s, dq, dk, dv, dout, q, k, v, out, lse);
  }
}

}  // namespace

MIST_REGISTER_OP("attention", AttentionOp);
MIST_REGISTER_OP("attentionBackward", AttentionBackwardOp);

}  // namespace kernels
}  // namespace mist
