// Softmax cross-entropy over the vocabulary, fused with its gradient. No probability matrix is
// kept: the gradient (softmax - onehot) * gradScale is written straight into dlogits, which may be
// the logits buffer itself.
//   lse_r = max_j x_rj + log sum_j exp(x_rj - max_j x_rj),  loss_r = lse_r - x_{r, t_r}
// A target of -1 marks a row to ignore (loss 0, gradient 0). The exponentials and sums are
// vectorised (vec_math.h), in double.
#include <cmath>
#include <string>

#include "kernels/op_args.h"
#include "kernels/thread_pool.h"
#include "kernels/vec_math.h"

namespace mist {
namespace kernels {
namespace {

// crossEntropy: bufs [lossRows, logits, targets(i32), dlogits?]; ints [rows, vocab]; floats [gradScale].
void CrossEntropyOp(const OpArgs& a) {
  const int64_t rows = a.Dim(0, "rows"), vocab = a.Dim(1, "vocab");
  float* loss = a.F(0, rows, "lossRows");
  const float* logits = a.F(1, rows * vocab, "logits");
  const int32_t* targets = a.I32(2, rows, "targets");
  float* dlogits = a.OptF(3, rows * vocab, "dlogits");
  const float scale = a.floats.empty() ? 1.f : static_cast<float>(a.Float(0, "gradScale"));
  for (int64_t r = 0; r < rows; ++r) {
    if (targets[r] < -1 || targets[r] >= vocab) a.Fail("target " + std::to_string(targets[r]) + " at row " + std::to_string(r) + " is outside the vocabulary");
  }
  ParallelFor(rows, std::max<int64_t>(1, 4096 / vocab), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const float* x = logits + r * vocab;
      const int32_t t = targets[r];
      const float mx = LaneMax(x, vocab);
      // The exponentials and their sum in double (ExpD vectorises).
      double acc[8] = {};
      int64_t j = 0;
      for (; j + 8 <= vocab; j += 8) {
        for (int l = 0; l < 8; ++l) acc[l] += ExpD(static_cast<double>(x[j + l]) - mx);
      }
      for (int l = 0; j < vocab; ++j, ++l) acc[l] += ExpD(static_cast<double>(x[j]) - mx);
      double sumd = 0;
      for (int l = 0; l < 8; ++l) sumd += acc[l];
      // The sum rounded to float and the gradient (p - onehot) * gradScale formed in double, as the
      // vocab-parallel cross-entropy (packages/executor's head) forms them, so both agree closely.
      const double sum = static_cast<float>(sumd);
      loss[r] = t < 0 ? 0.f : static_cast<float>(std::log(sum) + mx - x[t]);
      if (dlogits) {
        float* d = dlogits + r * vocab;
        if (t < 0) {
          for (int64_t c = 0; c < vocab; ++c) d[c] = 0.f;
        } else {
          const double xt = x[t], inv = 1.0 / sum;
          for (int64_t c = 0; c < vocab; ++c) d[c] = static_cast<float>(ExpD(static_cast<double>(x[c]) - mx) * inv * scale);
          d[t] = static_cast<float>((ExpD(xt - mx) * inv - 1.0) * scale);
        }
      }
    }
  });
}

}  // namespace

MIST_REGISTER_OP("crossEntropy", CrossEntropyOp);

}  // namespace kernels
}  // namespace mist
