// The vocabulary-parallel embedding and cross-entropy pieces (Megatron-LM's VocabParallelEmbedding
// and vocab_parallel_cross_entropy: Shoeybi et al. 2019, Sec. 3): this rank holds the table rows or
// logit columns [lo, hi) of the vocabulary; the sums over ranks are all-reduces between the steps.
// Formulas and their order of operations are those the executor ran in TypeScript before (doubles
// for exp/log and the running sums, rounded to float once), so its losses did not change.
//   embeddingShard:          out[r] = wte[t - lo] if lo <= t < hi else 0
//   embeddingShardBackward:  dwte[t - lo] += dout[r] (rows in order)
//   positionAdd / positionGrad: x[r] += wpe[pos(r)] / dwpe[pos(r)] += dout[r] (rows in order)
//   crossEntropyShardMax:    max[r] = max_j logits[r, j]
//   crossEntropyShardSums:   sums[r] = sum_j exp(logits[r, j] - max[r]), sums[rows + r] = logits[r, t - lo] or 0
//   crossEntropyShardFinish: loss[r] = log(sums[r]) + max[r] - sums[rows + r];
//                            dlogits[r, j] = (exp(logits[r, j] - max[r]) / sums[r] - [j + lo == t]) * gradScale
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "kernels/op_args.h"
#include "kernels/thread_pool.h"

namespace mist {
namespace kernels {
namespace {

struct Shard {
  int64_t rows, hidden, vocab, lo, hi;
};

Shard ReadShard(const OpArgs& a) {
  Shard s{a.Dim(0, "rows"), a.Dim(1, "hidden"), a.Dim(2, "vocab"), a.Int(3, "lo"), a.Int(4, "hi")};
  if (s.lo < 0 || s.hi <= s.lo || s.hi > s.vocab) {
    a.Fail("the shard [lo, hi) = [" + std::to_string(s.lo) + ", " + std::to_string(s.hi) + ") must be a non-empty range inside [0, vocab = " +
           std::to_string(s.vocab) + ")");
  }
  return s;
}

void CheckTokens(const OpArgs& a, const int32_t* tokens, int64_t rows, int64_t vocab) {
  for (int64_t r = 0; r < rows; ++r) {
    if (tokens[r] < 0 || tokens[r] >= vocab) {
      a.Fail("token " + std::to_string(tokens[r]) + " at row " + std::to_string(r) + " is outside the vocabulary of " + std::to_string(vocab));
    }
  }
}

// embeddingShard: bufs [out, tokens(i32), wte (hi - lo rows)]; ints [rows, hidden, vocab, lo, hi].
void EmbeddingShardOp(const OpArgs& a) {
  const Shard s = ReadShard(a);
  float* out = a.F(0, s.rows * s.hidden, "out");
  const int32_t* tokens = a.I32(1, s.rows, "tokens");
  const float* wte = a.F(2, (s.hi - s.lo) * s.hidden, "wte");
  CheckTokens(a, tokens, s.rows, s.vocab);
  ParallelFor(s.rows, std::max<int64_t>(1, 8192 / s.hidden), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* o = out + r * s.hidden;
      const int64_t t = tokens[r];
      if (t >= s.lo && t < s.hi) std::copy(wte + (t - s.lo) * s.hidden, wte + (t - s.lo + 1) * s.hidden, o);
      else std::fill(o, o + s.hidden, 0.f);
    }
  });
}

// embeddingShardBackward: bufs [dwte (hi - lo rows), dout, tokens(i32)]; ints as embeddingShard.
// Each task owns a block of hidden columns and walks the rows in order (fixed summation order).
void EmbeddingShardBackwardOp(const OpArgs& a) {
  const Shard s = ReadShard(a);
  float* dwte = a.F(0, (s.hi - s.lo) * s.hidden, "dwte");
  const float* dout = a.F(1, s.rows * s.hidden, "dout");
  const int32_t* tokens = a.I32(2, s.rows, "tokens");
  CheckTokens(a, tokens, s.rows, s.vocab);
  constexpr int64_t kBlock = 16;
  ParallelFor((s.hidden + kBlock - 1) / kBlock, 1, [&](int64_t b0, int64_t b1) {
    const int64_t c0 = b0 * kBlock, c1 = std::min(s.hidden, b1 * kBlock);
    for (int64_t r = 0; r < s.rows; ++r) {
      const int64_t t = tokens[r];
      if (t < s.lo || t >= s.hi) continue;
      const float* g = dout + r * s.hidden;
      float* e = dwte + (t - s.lo) * s.hidden;
      for (int64_t c = c0; c < c1; ++c) e[c] += g[c];
    }
  });
}

// The position row of row r: positions[(first + r) % seq], or (first + r) % seq.
struct Positions {
  int64_t rows, hidden, seq, first;
  const int32_t* table;
  int64_t maxPos;
  int64_t Of(int64_t r) const {
    const int64_t i = (first + r) % seq;
    return table != nullptr ? table[i] : i;
  }
};

Positions ReadPositions(const OpArgs& a, size_t wpeSlot, size_t positionsSlot, const char* wpeName) {
  Positions p{a.Dim(0, "rows"), a.Dim(1, "hidden"), a.Dim(2, "seq"), a.Int(3, "first"), nullptr, 0};
  if (p.first < 0) a.Fail("first must be >= 0, got " + std::to_string(p.first));
  const Buf& w = a.bufs.size() > wpeSlot ? a.bufs[wpeSlot] : Buf{};
  p.maxPos = static_cast<int64_t>(w.length) / p.hidden;
  if (a.bufs.size() > positionsSlot && a.bufs[positionsSlot].kind != BufKind::kNull) p.table = a.I32(positionsSlot, p.seq, "positions");
  (void)a.F(wpeSlot, 1, wpeName);
  for (int64_t r = 0; r < std::min(p.rows, p.seq); ++r) {
    const int64_t pos = p.Of(r);
    if (pos < 0 || pos >= p.maxPos) a.Fail("position " + std::to_string(pos) + " of row " + std::to_string(r) + " is outside the table of " + std::to_string(p.maxPos));
  }
  return p;
}

// positionAdd: bufs [x, wpe, positions?(i32, seq)]; ints [rows, hidden, seq, first]. x += wpe rows.
void PositionAddOp(const OpArgs& a) {
  const Positions p = ReadPositions(a, 1, 2, "wpe");
  float* x = a.F(0, p.rows * p.hidden, "x");
  const float* wpe = a.F(1, p.maxPos * p.hidden, "wpe");
  ParallelFor(p.rows, std::max<int64_t>(1, 8192 / p.hidden), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* w = wpe + p.Of(r) * p.hidden;
      float* o = x + r * p.hidden;
      for (int64_t c = 0; c < p.hidden; ++c) o[c] += w[c];
    }
  });
}

// positionGrad: bufs [dwpe, dout, positions?(i32, seq)]; ints as positionAdd. dwpe += dout rows, in row order.
void PositionGradOp(const OpArgs& a) {
  const Positions p = ReadPositions(a, 0, 2, "dwpe");
  float* dwpe = a.F(0, p.maxPos * p.hidden, "dwpe");
  const float* dout = a.F(1, p.rows * p.hidden, "dout");
  constexpr int64_t kBlock = 16;
  ParallelFor((p.hidden + kBlock - 1) / kBlock, 1, [&](int64_t b0, int64_t b1) {
    const int64_t c0 = b0 * kBlock, c1 = std::min(p.hidden, b1 * kBlock);
    for (int64_t r = 0; r < p.rows; ++r) {
      const float* g = dout + r * p.hidden;
      float* w = dwpe + p.Of(r) * p.hidden;
      for (int64_t c = c0; c < c1; ++c) w[c] += g[c];
    }
  });
}

// crossEntropyShardMax: bufs [max, logits]; ints [rows, vocabLocal].
void CrossEntropyShardMaxOp(const OpArgs& a) {
  const int64_t rows = a.Dim(0, "rows"), v = a.Dim(1, "vocabLocal");
  float* max = a.F(0, rows, "max");
  const float* logits = a.F(1, rows * v, "logits");
  ParallelFor(rows, std::max<int64_t>(1, 65536 / v), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < v; ++j) m = std::max(m, logits[r * v + j]);
      max[r] = m;
    }
  });
}

void CheckTargets(const OpArgs& a, const int32_t* targets, int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) {
    if (targets[r] < -1) a.Fail("target " + std::to_string(targets[r]) + " at row " + std::to_string(r) + " is below -1 (the ignore index)");
  }
}

// crossEntropyShardSums: bufs [sums (2 rows), logits, max, targets(i32)]; ints [rows, vocabLocal, lo].
void CrossEntropyShardSumsOp(const OpArgs& a) {
  const int64_t rows = a.Dim(0, "rows"), v = a.Dim(1, "vocabLocal"), lo = a.Int(2, "lo");
  float* sums = a.F(0, 2 * rows, "sums");
  const float* logits = a.F(1, rows * v, "logits");
  const float* max = a.F(2, rows, "max");
  const int32_t* targets = a.I32(3, rows, "targets");
  CheckTargets(a, targets, rows);
  ParallelFor(rows, std::max<int64_t>(1, 16384 / v), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* l = logits + r * v;
      const double m = max[r];
      double s = 0;
      for (int64_t j = 0; j < v; ++j) s += std::exp(static_cast<double>(l[j]) - m);
      sums[r] = static_cast<float>(s);
      const int64_t t = targets[r];
      sums[rows + r] = t >= lo && t < lo + v ? l[t - lo] : 0.f;
    }
  });
}

// crossEntropyShardFinish: bufs [lossRows, dlogits?, logits, max, sums (2 rows), targets(i32)];
// ints [rows, vocabLocal, lo]; floats [gradScale]. dlogits may be logits.
void CrossEntropyShardFinishOp(const OpArgs& a) {
  const int64_t rows = a.Dim(0, "rows"), v = a.Dim(1, "vocabLocal"), lo = a.Int(2, "lo");
  float* loss = a.F(0, rows, "lossRows");
  float* dlogits = a.OptF(1, rows * v, "dlogits");
  const float* logits = a.F(2, rows * v, "logits");
  const float* max = a.F(3, rows, "max");
  const float* sums = a.F(4, 2 * rows, "sums");
  const int32_t* targets = a.I32(5, rows, "targets");
  const double scale = a.floats.empty() ? 1.0 : a.Float(0, "gradScale");
  CheckTargets(a, targets, rows);
  ParallelFor(rows, std::max<int64_t>(1, 16384 / v), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const bool ignore = targets[r] < 0;
      const double m = max[r], s = sums[r];
      loss[r] = ignore ? 0.f : static_cast<float>(std::log(s) + m - static_cast<double>(sums[rows + r]));
      if (dlogits == nullptr) continue;
      const float* l = logits + r * v;
      float* d = dlogits + r * v;
      for (int64_t j = 0; j < v; ++j) {
        const double onehot = j + lo == targets[r] ? 1.0 : 0.0;
        d[j] = ignore ? 0.f : static_cast<float>((std::exp(static_cast<double>(l[j]) - m) / s - onehot) * scale);
      }
    }
  });
}

}  // namespace

MIST_REGISTER_OP("embeddingShard", EmbeddingShardOp);
MIST_REGISTER_OP("embeddingShardBackward", EmbeddingShardBackwardOp);
MIST_REGISTER_OP("positionAdd", PositionAddOp);
MIST_REGISTER_OP("positionGrad", PositionGradOp);
MIST_REGISTER_OP("crossEntropyShardMax", CrossEntropyShardMaxOp);
MIST_REGISTER_OP("crossEntropyShardSums", CrossEntropyShardSumsOp);
MIST_REGISTER_OP("crossEntropyShardFinish", CrossEntropyShardFinishOp);

}  // namespace kernels
}  // namespace mist
