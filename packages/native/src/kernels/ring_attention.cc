// One block of ring attention (context parallelism): the causal attention of a rank's queries
// against one key/value block, each row tagged with its position in the whole sequence, so the
// causal mask is "key position <= query position" whatever chunks the rank holds (Liu et al. 2023,
// "Ring Attention with Blockwise Transformers"; Megatron-Core's context parallelism splits the
// sequence in 2*cp chunks, rank r holding chunks r and 2cp-1-r: megatron/core/utils.py
// get_batch_on_this_cp_rank). Layouts as attention.cc: q, out [batch * qSeq, heads * D]; k, v
// [batch * kSeq, kvHeads * D]; lse [batch, heads, qSeq]; qPos [qSeq], kPos [kSeq] (Int32) are the
// positions of a sequence's rows, the same for every sequence of the batch.
//
// Forward, per block (the flash-attention recurrence across blocks, Dao et al. 2022, algorithm 1):
//   lse_b(i) = log sum_{j in block, kPos_j <= qPos_i} exp(s_ij),  o_b(i) = sum_j exp(s_ij - lse_b) z_ij v_j
// and with merge = 1 the block is folded into the (out, lse) already there:
//   lse = logaddexp(lse_old, lse_b),  out = exp(lse_old - lse) out_old + exp(lse_b - lse) o_b
// A row that sees no key of the block gets lse_b = -inf and contributes nothing.
// Backward (given the merged out and lse, as FlashAttention's backward; Dao et al. 2022, algorithm 2):
//   p_ij = exp(s_ij - lse_i),  dv_j += p_ij z_ij do_i,  dp_ij = z_ij do_i . v_j,
//   ds_ij = p_ij (dp_ij - do_i . o_i),  dq_i += scale ds_ij k_j,  dk_j += scale ds_ij q_i
// (dq, dk and dv accumulate, so the blocks of the ring add up).
// Dropout on the probabilities: element (sample g, head H, query position P, key position Q) draws
// index ((g * totalHeads + H) * seqTotal + P) * seqTotal + Q, the index attention.cc draws for the
// whole sequence, so a context-parallel run drops what one process drops.
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/dropout_rng.h"
#include "kernels/attention_args.h"
#include "kernels/op_args.h"
#include "kernels/thread_pool.h"

namespace mist {
namespace kernels {
namespace {

// The block's sizes (AttentionDims: batch, q_seq, k_seq, heads, kv_heads, d, group) and the rest.
struct BlockShape : AttentionDims {
  float scale;
  bool merge;
  bool dropout;
  AttentionDropoutArgs drop;
  int64_t seq_total;

  /** z for (batch row b, local head h, query position P, key position Q). */
  float Z(int64_t b, int64_t h, int64_t P, int64_t Q) const { return dropout ? drop.Z(b, h, P, Q, seq_total) : 1.f; }
};

// ints [batch, qSeq, kSeq, heads, kvHeads, headDim, merge, (keyHi, keyLo, sampleOffset, headOffset,
// totalHeads, seqTotal)]; floats [scale, (p)].
BlockShape ReadBlockShape(const OpArgs& a) {
  BlockShape s{};
  static_cast<AttentionDims&>(s) = ReadBlockDims(a);
  const int64_t merge = a.Int(6, "merge");
  if (merge != 0 && merge != 1) a.Fail("merge must be 0 or 1");
  s.merge = merge == 1;
  s.scale = static_cast<float>(a.Float(0, "scale"));
  s.dropout = a.ints.size() > 7;
  if (s.dropout) {
    s.drop = ReadAttentionDropout(a, 7, 1, s.heads);
    s.seq_total = a.Dim(12, "seqTotal");
  }
  return s;
}

/** Positions of a block's rows: each in [0, seqTotal) when dropout names it, else >= 0. */
const int32_t* ReadPositions(const OpArgs& a, size_t buf, int64_t n, const char* name, const BlockShape& s) {
  const int32_t* p = a.I32(buf, static_cast<size_t>(n), name);
  for (int64_t i = 0; i < n; ++i) {
    if (p[i] < 0 || (s.dropout && p[i] >= s.seq_total)) a.Fail(std::string(name) + " holds a position outside 0..seqTotal-1");
  }
  return p;
}

inline float Dot(const float* a, const float* b, int64_t n) {
  float s = 0.f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// attentionBlock: bufs [out, lse, q, k, v, qPos, kPos].
void AttentionBlockOp(const OpArgs& a) {
  const BlockShape s = ReadBlockShape(a);
  const int64_t qw = s.heads * s.d, kw = s.kv_heads * s.d;
  float* out = a.F(0, s.batch * s.q_seq * qw, "out");
  float* lse = a.F(1, s.batch * s.heads * s.q_seq, "lse");
  const float* q = a.F(2, s.batch * s.q_seq * qw, "q");
  const float* k = a.F(3, s.batch * s.k_seq * kw, "k");
  const float* v = a.F(4, s.batch * s.k_seq * kw, "v");
  const int32_t* qpos = ReadPositions(a, 5, s.q_seq, "qPos", s);
  const int32_t* kpos = ReadPositions(a, 6, s.k_seq, "kPos", s);
  const float neg_inf = -std::numeric_limits<float>::infinity();
  ThreadPool::Get().Run(s.batch * s.heads, [&](int64_t task) {
    const int64_t b = task / s.heads, h = task % s.heads, kvh = h / s.group;
    std::vector<float> p(static_cast<size_t>(s.k_seq));
    std::vector<float> o(static_cast<size_t>(s.d));
    for (int64_t i = 0; i < s.q_seq; ++i) {
      const float* qi = q + (b * s.q_seq + i) * qw + h * s.d;
      float* oi = out + (b * s.q_seq + i) * qw + h * s.d;
      float* li = lse + (b * s.heads + h) * s.q_seq + i;
      float mx = neg_inf;
      for (int64_t j = 0; j < s.k_seq; ++j) {
        if (kpos[j] > qpos[i]) continue;
        p[j] = s.scale * Dot(qi, k + (b * s.k_seq + j) * kw + kvh * s.d, s.d);
        mx = std::max(mx, p[j]);
      }
      if (mx == neg_inf) {  // no key of this block is visible to the row
        if (!s.merge) {
          for (int64_t c = 0; c < s.d; ++c) oi[c] = 0.f;
          *li = neg_inf;
        }
        continue;
      }
      float sum = 0.f;
      for (int64_t j = 0; j < s.k_seq; ++j) {
        if (kpos[j] > qpos[i]) continue;
        p[j] = std::exp(p[j] - mx);
        sum += p[j];
      }
      const float inv = 1.f / sum;
      for (int64_t c = 0; c < s.d; ++c) o[c] = 0.f;
      for (int64_t j = 0; j < s.k_seq; ++j) {
        if (kpos[j] > qpos[i]) continue;
        const float pj = p[j] * inv * s.Z(b, h, qpos[i], kpos[j]);
        const float* vj = v + (b * s.k_seq + j) * kw + kvh * s.d;
        for (int64_t c = 0; c < s.d; ++c) o[c] += pj * vj[c];
      }
      const float lb = mx + std::log(sum);
      if (!s.merge || *li == neg_inf) {
        for (int64_t c = 0; c < s.d; ++c) oi[c] = o[c];
        *li = lb;
        continue;
      }
      const float lo = *li, m = std::max(lo, lb);
      const float l = m + std::log(std::exp(lo - m) + std::exp(lb - m));
      const float wo = std::exp(lo - l), wb = std::exp(lb - l);
      for (int64_t c = 0; c < s.d; ++c) oi[c] = wo * oi[c] + wb * o[c];
      *li = l;
    }
  });
}

// attentionBlockBackward: bufs [dq, dk, dv, dout, q, k, v, out, lse, qPos, kPos]; out and lse are
// the merged forward's. Adds into dq, dk, dv. One task per (batch, kv head) owns that head's dk,
// dv and its query heads' dq.
void AttentionBlockBackwardOp(const OpArgs& a) {
  const BlockShape s = ReadBlockShape(a);
  const int64_t qw = s.heads * s.d, kw = s.kv_heads * s.d;
  const int64_t qn = s.batch * s.q_seq * qw, kn = s.batch * s.k_seq * kw;
  float* dq = a.F(0, qn, "dq");
  float* dk = a.F(1, kn, "dk");
  float* dv = a.F(2, kn, "dv");
  const float* dout = a.F(3, qn, "dout");
  const float* q = a.F(4, qn, "q");
  const float* k = a.F(5, kn, "k");
  const float* v = a.F(6, kn, "v");
  const float* out = a.F(7, qn, "out");
  const float* lse = a.F(8, s.batch * s.heads * s.q_seq, "lse");
  const int32_t* qpos = ReadPositions(a, 9, s.q_seq, "qPos", s);
  const int32_t* kpos = ReadPositions(a, 10, s.k_seq, "kPos", s);
  ThreadPool::Get().Run(s.batch * s.kv_heads, [&](int64_t task) {
    const int64_t b = task / s.kv_heads, kvh = task % s.kv_heads;
    for (int64_t h = kvh * s.group; h < (kvh + 1) * s.group; ++h) {
      for (int64_t i = 0; i < s.q_seq; ++i) {
        const int64_t qi_off = (b * s.q_seq + i) * qw + h * s.d;
        const float* qi = q + qi_off;
        const float* doi = dout + qi_off;
        float* dqi = dq + qi_off;
        const float di = Dot(doi, out + qi_off, s.d);
        const float l = lse[(b * s.heads + h) * s.q_seq + i];
        for (int64_t j = 0; j < s.k_seq; ++j) {
          if (kpos[j] > qpos[i]) continue;
          const int64_t kj_off = (b * s.k_seq + j) * kw + kvh * s.d;
          const float* kj = k + kj_off;
          const float p = std::exp(s.scale * Dot(qi, kj, s.d) - l);
          const float z = s.Z(b, h, qpos[i], kpos[j]);
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

MIST_REGISTER_OP("attentionBlock", AttentionBlockOp);
MIST_REGISTER_OP("attentionBlockBackward", AttentionBlockBackwardOp);

}  // namespace kernels
}  // namespace mist
