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
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/dropout_rng.h"
#include "kernels/op_args.h"
#include "kernels/thread_pool.h"

namespace mist {
namespace kernels {
namespace {

struct AttnShape {
  int64_t batch, seq, heads, kv_heads, d, group;
  float scale;
  bool dropout;
  DropoutRng rng;
  int64_t sample_offset, head_offset, total_heads;

  /** z_ij for (batch row b, local head h, query i, key j): 0 or 1 / (1 - p); 1 without dropout. */
  float Z(int64_t b, int64_t h, int64_t i, int64_t j) const {
    if (!dropout) return 1.f;
    const uint64_t idx = ((static_cast<uint64_t>(sample_offset + b) * total_heads + head_offset + h) * seq + i) * seq + j;
    return rng.Keep(idx) ? rng.scale : 0.f;
  }
};

AttnShape ReadShape(const OpArgs& a) {
  AttnShape s{};
  s.batch = a.Dim(0, "batch");
  s.seq = a.Dim(1, "seq");
  s.heads = a.Dim(2, "heads");
  s.kv_heads = a.Dim(3, "kvHeads");
  s.d = a.Dim(4, "headDim");
  if (s.heads % s.kv_heads != 0) a.Fail("kvHeads must divide heads");
  s.group = s.heads / s.kv_heads;
  s.scale = a.floats.empty() ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.d)))
                             : static_cast<float>(a.Float(0, "scale"));
  // Optional dropout: ints [..., keyHi, keyLo, sampleOffset, headOffset, totalHeads]; floats [scale, p].
  s.dropout = a.ints.size() > 5;
  if (s.dropout) {
    s.rng = ReadDropoutRng(a, 5, 1);
    s.sample_offset = a.Int(7, "sampleOffset");
    s.head_offset = a.Int(8, "headOffset");
    s.total_heads = a.Dim(9, "totalHeads");
    if (s.sample_offset < 0 || s.head_offset < 0 || s.head_offset + s.heads > s.total_heads) {
      a.Fail("sampleOffset must be >= 0 and headOffset + heads <= totalHeads");
    }
  }
  return s;
}

inline float Dot(const float* a, const float* b, int64_t n) {
  float s = 0.f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// attention: bufs [out, lse, q, k, v]; ints [batch, seq, heads, kvHeads, headDim]; floats [scale?].
void AttentionOp(const OpArgs& a) {
  const AttnShape s = ReadShape(a);
  const int64_t rows = s.batch * s.seq, qw = s.heads * s.d, kw = s.kv_heads * s.d;
  float* out = a.F(0, rows * qw, "out");
  float* lse = a.F(1, s.batch * s.heads * s.seq, "lse");
  const float* q = a.F(2, rows * qw, "q");
  const float* k = a.F(3, rows * kw, "k");
  const float* v = a.F(4, rows * kw, "v");
  ThreadPool::Get().Run(s.batch * s.heads, [&](int64_t task) {
    const int64_t b = task / s.heads, h = task % s.heads, kvh = h / s.group;
    std::vector<float> p(static_cast<size_t>(s.seq));
    for (int64_t i = 0; i < s.seq; ++i) {
      const float* qi = q + (b * s.seq + i) * qw + h * s.d;
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j <= i; ++j) {
        p[j] = s.scale * Dot(qi, k + (b * s.seq + j) * kw + kvh * s.d, s.d);
        mx = std::max(mx, p[j]);
      }
      float sum = 0.f;
      for (int64_t j = 0; j <= i; ++j) {
        p[j] = std::exp(p[j] - mx);
        sum += p[j];
      }
      const float inv = 1.f / sum;
      float* oi = out + (b * s.seq + i) * qw + h * s.d;
      for (int64_t c = 0; c < s.d; ++c) oi[c] = 0.f;
      for (int64_t j = 0; j <= i; ++j) {
        const float pj = p[j] * inv * s.Z(b, h, i, j);
        const float* vj = v + (b * s.seq + j) * kw + kvh * s.d;
        for (int64_t c = 0; c < s.d; ++c) oi[c] += pj * vj[c];
      }
      lse[(b * s.heads + h) * s.seq + i] = mx + std::log(sum);
    }
  });
}

// attentionBackward: bufs [dq, dk, dv, dout, q, k, v, out, lse]; ints and floats as attention.
// Writes dq, dk, dv. One task per (batch, kv head) owns that head's dk, dv and its query heads' dq.
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
  ThreadPool::Get().Run(s.batch * s.kv_heads, [&](int64_t task) {
    const int64_t b = task / s.kv_heads, kvh = task % s.kv_heads;
    for (int64_t j = 0; j < s.seq; ++j) {
      float* dkj = dk + (b * s.seq + j) * kw + kvh * s.d;
      float* dvj = dv + (b * s.seq + j) * kw + kvh * s.d;
      for (int64_t c = 0; c < s.d; ++c) dkj[c] = dvj[c] = 0.f;
    }
    for (int64_t h = kvh * s.group; h < (kvh + 1) * s.group; ++h) {
      for (int64_t i = 0; i < s.seq; ++i) {
        const int64_t qi_off = (b * s.seq + i) * qw + h * s.d;
        const float* qi = q + qi_off;
        const float* doi = dout + qi_off;
        float* dqi = dq + qi_off;
        const float di = Dot(doi, out + qi_off, s.d);
        const float l = lse[(b * s.heads + h) * s.seq + i];
        for (int64_t c = 0; c < s.d; ++c) dqi[c] = 0.f;
        for (int64_t j = 0; j <= i; ++j) {
          const int64_t kj_off = (b * s.seq + j) * kw + kvh * s.d;
          const float* kj = k + kj_off;
          const float p = std::exp(s.scale * Dot(qi, kj, s.d) - l);
          const float z = s.Z(b, h, i, j);
          const float dp = z * Dot(doi, v + kj_off, s.d);
          const float ds = p * (dp - di) * s.scale;
          const float pz = p * z;
          float* dkj = dk + kj_off;
          float* dvj = dv + kj_off;
          for (int64_t c = 0; c < s.d; ++c) {
            dqi[c] += ds * kj[c];
            dkj[c] += ds * qi[c];
            dvj[c] += pz * doi[c];
          }
        }
      }
    }
  });
}

}  // namespace

MIST_REGISTER_OP("attention", AttentionOp);
MIST_REGISTER_OP("attentionBackward", AttentionBackwardOp);

}  // namespace kernels
}  // namespace mist
