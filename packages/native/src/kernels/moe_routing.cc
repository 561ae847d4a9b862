// Routing and data movement of the mixture-of-experts MLP (executor model/moe.ts), following
// Megatron-Core's MoELayer with the all-to-all token dispatcher:
//   moeTopK          per token the topK largest router logits (ties to the lower expert index) and a
//                    softmax over those topK (moe_utils.py topk_routing_with_score_function with
//                    use_pre_softmax false; Mixtral, Jiang et al. 2024, Sec. 2.1, Eq. 1)
//   moeGatherRows    the dispatch copy: token n's copy j (c = n * topK + j) to row pos[c] of the
//                    expert-sorted send buffer (moe_utils.py permute), optionally scaled by probs[c]
//                    (the weighted sum's backward sends probs[c] * dOut[n] the same way)
//   moeScatterRows   its reverse: copy c back from row pos[c] into token order (moe_utils.py unpermute)
//   moeCombine       out[n] += sum_j w_c * src[row of c], j ascending: the probability-weighted sum of
//                    the experts' outputs, and (w = 1, rows by pos) the sum of a token's copies'
//                    input gradients in the backward
//   moeGateBackward  the router logits' gradient through the weighted sum and the top-k softmax
// The counting sort that makes the send positions, and every count, stay on the host (the
// all-to-all needs them there); only float math and row movement are kernels.
//
// The arithmetic reproduces the TypeScript loops these kernels replaced bit for bit: the softmax and
// the dot products in double, every accumulation into a float buffer done in double and rounded to
// float once per term (as a JavaScript `f32[i] += a * b` does). Each output row is written by one
// task, so results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/op_args.h"
#include "kernels/thread_pool.h"

namespace mist {
namespace kernels {
namespace {

struct CopyShape {
  int64_t tokens, topK, hidden, copies;
};

// ints [tokens, topK, hidden] of the row kernels; the permuted side always holds tokens * topK rows.
CopyShape ReadCopyShape(const OpArgs& a) {
  CopyShape s{};
  s.tokens = a.Dim(0, "tokens");
  s.topK = a.Dim(1, "topK");
  s.hidden = a.Dim(2, "hidden");
  s.copies = s.tokens * s.topK;
  return s;
}

/** Every pos[c] in [0, copies). */
void CheckRows(const OpArgs& a, const int32_t* pos, int64_t copies) {
  for (int64_t c = 0; c < copies; ++c) {
    if (pos[c] < 0 || pos[c] >= copies) {
      a.Fail("pos[" + std::to_string(c) + "] = " + std::to_string(pos[c]) + " is outside the " + std::to_string(copies) + " rows");
    }
  }
}

/** pos is a permutation of [0, copies): every destination row written exactly once. */
void CheckPermutation(const OpArgs& a, const int32_t* pos, int64_t copies) {
  CheckRows(a, pos, copies);
  std::vector<uint8_t> seen(static_cast<size_t>(copies), 0);
  for (int64_t c = 0; c < copies; ++c) {
    if (seen[pos[c]]) a.Fail("pos[" + std::to_string(c) + "] = " + std::to_string(pos[c]) + " repeats an earlier row (pos must be a permutation)");
    seen[pos[c]] = 1;
  }
}

int64_t Grain(int64_t width) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, width)); }

// moeTopK: bufs [index(i32) tokens*topK, probs tokens*topK, logits tokens*experts];
// ints [tokens, experts, topK]. Writes both outputs.
// Selection j picks, among the experts not chosen yet, the first one in expert order unless a later
// one has a strictly larger logit (so ties go to the lower index; a NaN logit is never larger than
// another, and is kept only when it is the first candidate). The softmax is taken over the chosen
// logits, relative to the first (largest) one, in double.
void MoeTopKOp(const OpArgs& a) {
  const int64_t tokens = a.Dim(0, "tokens"), experts = a.Dim(1, "experts"), k = a.Dim(2, "topK");
  if (k > experts) a.Fail("topK " + std::to_string(k) + " exceeds the " + std::to_string(experts) + " experts");
  int32_t* index = const_cast<int32_t*>(a.I32(0, tokens * k, "index"));
  float* probs = a.F(1, tokens * k, "probs");
  const float* logits = a.F(2, tokens * experts, "logits");
  ParallelFor(tokens, Grain(experts * k), [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n) {
      const float* row = logits + n * experts;
      int32_t* chosen = index + n * k;
      for (int64_t j = 0; j < k; ++j) {
        int64_t best = -1;
        for (int64_t e = 0; e < experts; ++e) {
          bool taken = false;
          for (int64_t i = 0; i < j; ++i) taken = taken || chosen[i] == e;
          if (!taken && (best < 0 || row[e] > row[best])) best = e;
        }
        chosen[j] = static_cast<int32_t>(best);
      }
      const double mx = row[chosen[0]];
      double sum = 0;
      for (int64_t j = 0; j < k; ++j) sum += std::exp(static_cast<double>(row[chosen[j]]) - mx);
      for (int64_t j = 0; j < k; ++j) probs[n * k + j] = static_cast<float>(std::exp(static_cast<double>(row[chosen[j]]) - mx) / sum);
    }
  });
}

// moeGatherRows: bufs [dst copies*hidden, src tokens*hidden, pos(i32) copies, probs? copies];
// ints [tokens, topK, hidden]. dst[pos[c]] (=) src[c / topK], times probs[c] when given (a float
// product); pos must be a permutation of [0, copies).
void MoeGatherRowsOp(const OpArgs& a) {
  const CopyShape s = ReadCopyShape(a);
  float* dst = a.F(0, s.copies * s.hidden, "dst");
  const float* src = a.F(1, s.tokens * s.hidden, "src");
  const int32_t* pos = a.I32(2, s.copies, "pos");
  const float* probs = a.OptF(3, s.copies, "probs");
  CheckPermutation(a, pos, s.copies);
  const int64_t h = s.hidden;
  ParallelFor(s.copies, Grain(h), [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) {
      const float* from = src + (c / s.topK) * h;
      float* to = dst + static_cast<int64_t>(pos[c]) * h;
      if (probs) {
        const float p = probs[c];
        for (int64_t i = 0; i < h; ++i) to[i] = p * from[i];
      } else {
        std::copy(from, from + h, to);
      }
    }
  });
}

// moeScatterRows: bufs [dst copies*hidden, src copies*hidden, pos(i32) copies]; ints [tokens, topK,
// hidden]. dst[c] (=) src[pos[c]]: rows in send order back to token order.
void MoeScatterRowsOp(const OpArgs& a) {
  const CopyShape s = ReadCopyShape(a);
  float* dst = a.F(0, s.copies * s.hidden, "dst");
  const float* src = a.F(1, s.copies * s.hidden, "src");
  const int32_t* pos = a.I32(2, s.copies, "pos");
  CheckRows(a, pos, s.copies);
  const int64_t h = s.hidden;
  ParallelFor(s.copies, Grain(h), [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) {
      const float* from = src + static_cast<int64_t>(pos[c]) * h;
      std::copy(from, from + h, dst + c * h);
    }
  });
}

// moeCombine: bufs [out tokens*hidden, src copies*hidden, probs? copies, pos?(i32) copies];
// ints [tokens, topK, hidden]. For j = 0..topK-1 in order, c = n * topK + j:
//   out[n] = float(double(out[n]) + double(w_c) * double(src[r_c]))
// with w_c = probs[c] (1 without probs) and r_c = pos[c] (c without pos): accumulates (+=).
void MoeCombineOp(const OpArgs& a) {
  const CopyShape s = ReadCopyShape(a);
  float* out = a.F(0, s.tokens * s.hidden, "out");
  const float* src = a.F(1, s.copies * s.hidden, "src");
  const float* probs = a.OptF(2, s.copies, "probs");
  const int32_t* pos = nullptr;
  if (a.bufs.size() > 3 && a.bufs[3].kind != BufKind::kNull) pos = a.I32(3, s.copies, "pos");
  if (pos) CheckRows(a, pos, s.copies);
  const int64_t h = s.hidden, k = s.topK;
  ParallelFor(s.tokens, Grain(h * k), [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n) {
      float* o = out + n * h;
      for (int64_t j = 0; j < k; ++j) {
        const int64_t c = n * k + j;
        const double w = probs ? static_cast<double>(probs[c]) : 1.0;
        const float* from = src + (pos ? static_cast<int64_t>(pos[c]) : c) * h;
        // w * from[i] is exact in double (two floats' product), so a fused multiply-add rounds the same.
        for (int64_t i = 0; i < h; ++i) o[i] = static_cast<float>(static_cast<double>(o[i]) + w * static_cast<double>(from[i]));
      }
    }
  });
}

// moeGateBackward: bufs [dLogits tokens*experts, dOut tokens*hidden, yc copies*hidden,
// probs copies, index(i32) copies]; ints [tokens, experts, topK, hidden]. Per token n, in double:
//   dp_j = <yc[c], dOut[n]>  (c = n * topK + j; the weighted sum's gradient in probs[c])
//   dot  = sum_j probs[c] * dp_j
//   dLogits[n, index[c]] (=) probs[c] * (dp_j - dot)   (the softmax over the chosen logits)
// and 0 for the experts not chosen: the whole row is written.
void MoeGateBackwardOp(const OpArgs& a) {
  const int64_t tokens = a.Dim(0, "tokens"), experts = a.Dim(1, "experts"), k = a.Dim(2, "topK"), h = a.Dim(3, "hidden");
  const int64_t copies = tokens * k;
  float* dlogits = a.F(0, tokens * experts, "dLogits");
  const float* dout = a.F(1, tokens * h, "dOut");
  const float* yc = a.F(2, copies * h, "yc");
  const float* probs = a.F(3, copies, "probs");
  const int32_t* index = a.I32(4, copies, "index");
  for (int64_t c = 0; c < copies; ++c) {
    if (index[c] < 0 || index[c] >= experts) {
      a.Fail("index[" + std::to_string(c) + "] = " + std::to_string(index[c]) + " is outside the " + std::to_string(experts) + " experts");
    }
  }
  ParallelFor(tokens, Grain(h * k), [&](int64_t lo, int64_t hi) {
    std::vector<double> dp(static_cast<size_t>(k));
    for (int64_t n = lo; n < hi; ++n) {
      const float* g = dout + n * h;
      double dot = 0;
      for (int64_t j = 0; j < k; ++j) {
        const int64_t c = n * k + j;
        const float* y = yc + c * h;
        double d = 0;
        for (int64_t i = 0; i < h; ++i) d += static_cast<double>(y[i]) * static_cast<double>(g[i]);
        dp[j] = d;
        // The product is rounded to double before the sum (no fused multiply-add), as in JavaScript.
        volatile double pd = static_cast<double>(probs[c]) * d;
        dot += pd;
      }
      float* row = dlogits + n * experts;
      std::fill(row, row + experts, 0.f);
      for (int64_t j = 0; j < k; ++j) {
        const int64_t c = n * k + j;
        row[index[c]] = static_cast<float>(static_cast<double>(probs[c]) * (dp[j] - dot));
      }
    }
  });
}

}  // namespace

MIST_REGISTER_OP("moeTopK", MoeTopKOp);
MIST_REGISTER_OP("moeGatherRows", MoeGatherRowsOp);
MIST_REGISTER_OP("moeScatterRows", MoeScatterRowsOp);
MIST_REGISTER_OP("moeCombine", MoeCombineOp);
MIST_REGISTER_OP("moeGateBackward", MoeGateBackwardOp);

}  // namespace kernels
}  // namespace mist
