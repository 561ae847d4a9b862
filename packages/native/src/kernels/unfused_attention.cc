// The unfused attention core (flashAttention off: Megatron-LM's core attention before flash
// attention, Shoeybi et al. 2019), one kernel per step so that the s x s tensors exist between
// them and selective recompute (Korthikanti et al. 2022, Sec. 5) can drop and recompute them:
//   scores  S = scale * Q K^T              [batch, heads, seq, seq] (query i, key j; j > i written 0)
//   softmax P = causal softmax of S over j <= i (0 for j > i)
//   dropout Pd = P * Z, Z = keep / (1 - p) (same draws as the fused kernel, attention.cc)
//   values  O = Pd V                       [batch * seq, heads * D] (token-major, as q)
// Backward, each step in its own kernel(s):
//   dPd = dO V^T (valuesGradProbs), dV = Pd^T dO (valuesGradV),
//   dS = P * (dP - rowsum(P * dP)) (softmaxBackward), dQ = scale dS K, dK = scale dS^T Q (scoresGradQ/K).
// Grouped-query heads (Ainslie et al. 2023): query head h reads key/value head h / (heads / kvHeads).
// Layouts as attention.cc: q [batch * seq, heads * D]; k, v [batch * seq, kvHeads * D].
// Dropout: element (sample g, head H, query i, key j) draws index ((g * totalHeads + H) * seq + i) * seq + j,
// g and H global, so the unfused and the fused attention drop the same elements.
#include <cmath>
#include <limits>

#include "kernels/dropout_rng.h"
#include "kernels/attention_args.h"
#include "kernels/op_args.h"
#include "kernels/thread_pool.h"

namespace mist {
namespace kernels {
namespace {

struct CoreShape {
  int64_t batch, seq, heads, kv_heads, d, group;
  int64_t QW() const { return heads * d; }
  int64_t KW() const { return kv_heads * d; }
  /** Elements of the [batch, heads, seq, seq] score tensor. */
  int64_t S() const { return batch * heads * seq * seq; }
};

// ints [batch, seq, heads, kvHeads, headDim, ...].
CoreShape ReadCore(const OpArgs& a) {
  const AttentionDims dims = ReadAttentionDims(a);
  CoreShape s{};
  s.batch = dims.batch;
  s.seq = dims.q_seq;
  s.heads = dims.heads;
  s.kv_heads = dims.kv_heads;
  s.d = dims.d;
  s.group = dims.group;
  return s;
}

inline float Dot(const float* a, const float* b, int64_t n) {
  float s = 0.f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// The unfused core's six products are three causal shapes, each with a factor (the softmax scale
// where it applies, else 1):
//   row dots    out[b, h, i, j] = factor * x_i . y_j (j <= i, else 0): S = scale Q K^T, dP = dO V^T;
//   weighted    out_i = factor * sum_{j <= i} w_ij y_j:                 O = P V, dQ = scale dS K;
//   key rows    out_j = factor * sum over the query heads of the key/value head and i >= j of
//               w_ij x_i:                                               dV = P^T dO, dK = scale dS^T Q.
// x has a row per query head (width QW), y per key/value head (width KW).
void CausalRowDots(float* out, const float* x, const float* y, float factor, const CoreShape& s) {
  ThreadPool::Get().Run(s.batch * s.heads, [&](int64_t task) {
    const int64_t b = task / s.heads, h = task % s.heads, kvh = h / s.group;
    for (int64_t i = 0; i < s.seq; ++i) {
      const float* xi = x + (b * s.seq + i) * s.QW() + h * s.d;
      float* row = out + (task * s.seq + i) * s.seq;
      for (int64_t j = 0; j < s.seq; ++j) row[j] = j <= i ? factor * Dot(xi, y + (b * s.seq + j) * s.KW() + kvh * s.d, s.d) : 0.f;
    }
  });
}

void CausalKeyRows(float* out, const float* w, const float* x, float factor, const CoreShape& s) {
  ThreadPool::Get().Run(s.batch * s.kv_heads, [&](int64_t task) {
    const int64_t b = task / s.kv_heads, kvh = task % s.kv_heads;
    for (int64_t j = 0; j < s.seq; ++j) {
      float* oj = out + (b * s.seq + j) * s.KW() + kvh * s.d;
      for (int64_t c = 0; c < s.d; ++c) oj[c] = 0.f;
      for (int64_t h = kvh * s.group; h < (kvh + 1) * s.group; ++h) {
        for (int64_t i = j; i < s.seq; ++i) {
          const float g = factor * w[((b * s.heads + h) * s.seq + i) * s.seq + j];
          const float* xi = x + (b * s.seq + i) * s.QW() + h * s.d;
          for (int64_t c = 0; c < s.d; ++c) oj[c] += g * xi[c];
        }
      }
    }
  });
}

void CausalWeightedRows(float* out, const float* w, const float* y, float factor, const CoreShape& s) {
  ThreadPool::Get().Run(s.batch * s.heads, [&](int64_t task) {
    const int64_t b = task / s.heads, h = task % s.heads, kvh = h / s.group;
    for (int64_t i = 0; i < s.seq; ++i) {
      float* oi = out + (b * s.seq + i) * s.QW() + h * s.d;
      const float* row = w + (task * s.seq + i) * s.seq;
      for (int64_t c = 0; c < s.d; ++c) oi[c] = 0.f;
      for (int64_t j = 0; j <= i; ++j) {
        const float g = factor * row[j];
        const float* yj = y + (b * s.seq + j) * s.KW() + kvh * s.d;
        for (int64_t c = 0; c < s.d; ++c) oi[c] += g * yj[c];
      }
    }
  });
}

// attentionScores: bufs [scores, q, k]; ints core; floats [scale].
void ScoresOp(const OpArgs& a) {
  const CoreShape s = ReadCore(a);
  const float scale = static_cast<float>(a.Float(0, "scale"));
  float* sc = a.F(0, s.S(), "scores");
  const float* q = a.F(1, s.batch * s.seq * s.QW(), "q");
  const float* k = a.F(2, s.batch * s.seq * s.KW(), "k");
  CausalRowDots(sc, q, k, scale, s);
}

// attentionScoresGradQ: bufs [dq, dscores, k]; ints core; floats [scale]. dq (written) = scale dS K.
void ScoresGradQOp(const OpArgs& a) {
  const CoreShape s = ReadCore(a);
  const float scale = static_cast<float>(a.Float(0, "scale"));
  float* dq = a.F(0, s.batch * s.seq * s.QW(), "dq");
  const float* ds = a.F(1, s.S(), "dscores");
  const float* k = a.F(2, s.batch * s.seq * s.KW(), "k");
  CausalWeightedRows(dq, ds, k, scale, s);
}

// attentionScoresGradK: bufs [dk, dscores, q]; ints core; floats [scale]. dk (written) = scale dS^T Q,
// summed over the query heads of each key/value head.
void ScoresGradKOp(const OpArgs& a) {
  const CoreShape s = ReadCore(a);
  const float scale = static_cast<float>(a.Float(0, "scale"));
  float* dk = a.F(0, s.batch * s.seq * s.KW(), "dk");
  const float* ds = a.F(1, s.S(), "dscores");
  const float* q = a.F(2, s.batch * s.seq * s.QW(), "q");
  CausalKeyRows(dk, ds, q, scale, s);
}

// causalSoftmax: bufs [probs, scores]; ints [rows, seq] (rows = batch * heads * seq, row r is
// query r % seq). probs may be scores.
void SoftmaxOp(const OpArgs& a) {
  const int64_t rows = a.Dim(0, "rows"), seq = a.Dim(1, "seq");
  if (rows % seq != 0) a.Fail("rows must be a multiple of seq");
  float* p = a.F(0, rows * seq, "probs");
  const float* sc = a.F(1, rows * seq, "scores");
  ParallelFor(rows, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t i = r % seq;
      const float* x = sc + r * seq;
      float* y = p + r * seq;
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j <= i; ++j) mx = std::max(mx, x[j]);
      float sum = 0.f;
      for (int64_t j = 0; j <= i; ++j) {
        y[j] = std::exp(x[j] - mx);
        sum += y[j];
      }
      const float inv = 1.f / sum;
      for (int64_t j = 0; j <= i; ++j) y[j] *= inv;
      for (int64_t j = i + 1; j < seq; ++j) y[j] = 0.f;
    }
  });
}

// causalSoftmaxBackward: bufs [dscores, dprobs, probs]; ints [rows, seq]. dscores may be dprobs.
void SoftmaxBackwardOp(const OpArgs& a) {
  const int64_t rows = a.Dim(0, "rows"), seq = a.Dim(1, "seq");
  if (rows % seq != 0) a.Fail("rows must be a multiple of seq");
  float* ds = a.F(0, rows * seq, "dscores");
  const float* dp = a.F(1, rows * seq, "dprobs");
  const float* p = a.F(2, rows * seq, "probs");
  ParallelFor(rows, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t i = r % seq;
      const float* pr = p + r * seq;
      const float* dpr = dp + r * seq;
      float* dsr = ds + r * seq;
      float dot = 0.f;
      for (int64_t j = 0; j <= i; ++j) dot += pr[j] * dpr[j];
      for (int64_t j = 0; j <= i; ++j) dsr[j] = pr[j] * (dpr[j] - dot);
      for (int64_t j = i + 1; j < seq; ++j) dsr[j] = 0.f;
    }
  });
}

// attentionProbsDropout: bufs [out, mask, probs]; ints core + [keyHi, keyLo, sampleOffset,
// headOffset, totalHeads]; floats [p]. out = probs * keep / (1 - p) (out may be probs); mask (1
// byte per element, packed 4 per float as dropout.cc) = keep.
void ProbsDropoutOp(const OpArgs& a) {
  const CoreShape s = ReadCore(a);
  const AttentionDropoutArgs d = ReadAttentionDropout(a, 5, 0, s.heads);
  const int64_t n = s.S();
  float* out = a.F(0, n, "out");
  uint8_t* mask = reinterpret_cast<uint8_t*>(a.F(1, static_cast<size_t>((n + 3) / 4), "mask"));
  const float* p = a.F(2, n, "probs");
  ThreadPool::Get().Run(s.batch * s.heads, [&](int64_t task) {
    const int64_t b = task / s.heads, h = task % s.heads;
    const uint64_t base = d.Index(b, h, 0, 0, s.seq);
    const int64_t off = task * s.seq * s.seq;
    for (int64_t e = 0; e < s.seq * s.seq; ++e) {
      const bool keep = d.rng.Keep(base + static_cast<uint64_t>(e));
      mask[off + e] = keep ? 1 : 0;
      out[off + e] = keep ? p[off + e] * d.rng.scale : 0.f;
    }
  });
}

// attentionValues: bufs [out, probs, v]; ints core. out (written) = P V.
void ValuesOp(const OpArgs& a) {
  const CoreShape s = ReadCore(a);
  float* out = a.F(0, s.batch * s.seq * s.QW(), "out");
  const float* p = a.F(1, s.S(), "probs");
  const float* v = a.F(2, s.batch * s.seq * s.KW(), "v");
  CausalWeightedRows(out, p, v, 1.f, s);
}

// attentionValuesGradProbs: bufs [dprobs, dout, v]; ints core. dprobs (written) = dO V^T (0 for j > i).
void ValuesGradProbsOp(const OpArgs& a) {
  const CoreShape s = ReadCore(a);
  float* dp = a.F(0, s.S(), "dprobs");
  const float* dout = a.F(1, s.batch * s.seq * s.QW(), "dout");
  const float* v = a.F(2, s.batch * s.seq * s.KW(), "v");
  CausalRowDots(dp, dout, v, 1.f, s);
}

// attentionValuesGradV: bufs [dv, dout, probs]; ints core. dv (written) = P^T dO, summed over the
// query heads of each key/value head.
void ValuesGradVOp(const OpArgs& a) {
  const CoreShape s = ReadCore(a);
  float* dv = a.F(0, s.batch * s.seq * s.KW(), "dv");
  const float* dout = a.F(1, s.batch * s.seq * s.QW(), "dout");
  const float* p = a.F(2, s.S(), "probs");
  CausalKeyRows(dv, p, dout, 1.f, s);
}

}  // namespace

MIST_REGISTER_OP("attentionScores", ScoresOp);
MIST_REGISTER_OP("attentionScoresGradQ", ScoresGradQOp);
MIST_REGISTER_OP("attentionScoresGradK", ScoresGradKOp);
MIST_REGISTER_OP("causalSoftmax", SoftmaxOp);
MIST_REGISTER_OP("causalSoftmaxBackward", SoftmaxBackwardOp);
MIST_REGISTER_OP("attentionProbsDropout", ProbsDropoutOp);
MIST_REGISTER_OP("attentionValues", ValuesOp);
MIST_REGISTER_OP("attentionValuesGradProbs", ValuesGradProbsOp);
MIST_REGISTER_OP("attentionValuesGradV", ValuesGradVOp);

}  // namespace kernels
}  // namespace mist
