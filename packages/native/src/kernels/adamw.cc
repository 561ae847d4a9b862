// AdamW with decoupled weight decay (Loshchilov & Hutter 2019, algorithm 2) and the sum of squares
// that gradient clipping by global norm needs (Pascanu et al. 2013): the caller sums the squares of
// all gradient buffers, computes scale = min(1, maxNorm / (norm + 1e-6)) and passes it as gradScale.
//   g = grad * gradScale
//   m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2
//   p -= lr * (wd * p + (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps))
#include <cmath>
#include <vector>

#include "kernels/op_args.h"
#include "kernels/thread_pool.h"

namespace mist {
namespace kernels {
namespace {

// adamw: bufs [param, grad, m, v]; ints [n, step]; floats [lr, beta1, beta2, eps, weightDecay, gradScale].
void AdamWOp(const OpArgs& a) {
  const int64_t n = a.Dim(0, "n"), step = a.Dim(1, "step");
  float* p = a.F(0, n, "param");
  const float* g = a.F(1, n, "grad");
  float* m = a.F(2, n, "m");
  float* v = a.F(3, n, "v");
  const double lr = a.Float(0, "lr"), b1 = a.Float(1, "beta1"), b2 = a.Float(2, "beta2");
  const float eps = static_cast<float>(a.Float(3, "eps"));
  const float wd = static_cast<float>(a.Float(4, "weightDecay")), gs = static_cast<float>(a.Float(5, "gradScale"));
  const float c1 = static_cast<float>(1.0 / (1.0 - std::pow(b1, static_cast<double>(step))));
  const float c2 = static_cast<float>(1.0 / (1.0 - std::pow(b2, static_cast<double>(step))));
  const float lrf = static_cast<float>(lr), b1f = static_cast<float>(b1), b2f = static_cast<float>(b2);
  ParallelFor(n, 1 << 14, [=](int64_t lo, int64_t hi) {
    // Local restrict copies of the buffers (the four never overlap), so the loop vectorises.
    float* __restrict pp = p;
    float* __restrict mm = m;
    float* __restrict vv = v;
    const float* __restrict gg = g;
    for (int64_t i = lo; i < hi; ++i) {
      const float gi = gg[i] * gs;
      const float mi = b1f * mm[i] + (1.f - b1f) * gi;
      const float vi = b2f * vv[i] + (1.f - b2f) * gi * gi;
      mm[i] = mi;
      vv[i] = vi;
      pp[i] -= lrf * (wd * pp[i] + (mi * c1) / (std::sqrt(vi * c2) + eps));
    }
  });
}

// sumSquares: bufs [out(len>=1), x]; ints [n]. out[0] = sum x^2, in double over fixed 4096-element
// chunks added in order (independent of the thread count).
void SumSquaresOp(const OpArgs& a) {
  const int64_t n = a.Dim(0, "n");
  float* out = a.F(0, 1, "out");
  const float* x = a.F(1, n, "x");
  constexpr int64_t kChunk = 4096;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(static_cast<size_t>(chunks));
  ParallelFor(chunks, 8, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) {
      // Eight interleaved double partial sums (vectorise), added in a fixed order.
      double acc[8] = {};
      const int64_t b0 = c * kChunk, e = std::min(n, (c + 1) * kChunk);
      int64_t i = b0;
      for (; i + 8 <= e; i += 8) {
        for (int l = 0; l < 8; ++l) acc[l] += static_cast<double>(x[i + l]) * x[i + l];
      }
      for (int l = 0; i < e; ++i, ++l) acc[l] += static_cast<double>(x[i]) * x[i];
      double s = 0;
      for (int l = 0; l < 8; ++l) s += acc[l];
      part[c] = s;
    }
  });
  double total = 0;
  for (double s : part) total += s;
  out[0] = static_cast<float>(total);
}

}  // namespace

MIST_REGISTER_OP("adamw", AdamWOp);
MIST_REGISTER_OP("sumSquares", SumSquaresOp);

}  // namespace kernels
}  // namespace mist
