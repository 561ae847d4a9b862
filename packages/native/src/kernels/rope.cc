// Rotary position embedding (Su et al. 2021, RoFormer, eq. 34), "rotate half" pairing as in
// GPT-NeoX and Llama: within each head of size D, element i pairs with element i + D/2 and both are
// rotated by the angle pos * theta^(-2i/D). The input is [batch * seq, heads, D] (token-major, the
// layout of a Q or K projection); the position of row r is posOffset + r % seq.
//   forward:  y_i = x_i cos - x_{i+D/2} sin,  y_{i+D/2} = x_{i+D/2} cos + x_i sin
//   backward: the inverse rotation of dy (the rotation is orthogonal).
#include <cmath>
#include <vector>

#include "kernels/op_args.h"
#include "kernels/thread_pool.h"

namespace mist {
namespace kernels {
namespace {

// rope / ropeBackward: bufs [out, in]; ints [rows, seq, heads, headDim, posOffset]; floats [theta].
// out may alias in.
void RopeImpl(const OpArgs& a, bool inverse) {
  const int64_t rows = a.Dim(0, "rows"), seq = a.Dim(1, "seq"), heads = a.Dim(2, "heads"), d = a.Dim(3, "headDim");
  const int64_t offset = a.Int(4, "posOffset");
  const double theta = a.Float(0, "theta");
  if (d % 2 != 0) a.Fail("headDim must be even");
  const int64_t half = d / 2, width = heads * d;
  float* out = a.F(0, rows * width, "out");
  const float* in = a.F(1, rows * width, "in");
  // cos/sin table for the positions in use, computed in double; kept per thread for the next call
  // with the same shape (every layer's calls of a step share it), where it cost more than the
  // rotation itself.
  struct Table {
    int64_t seq = -1, d = -1, offset = 0;
    double theta = 0;
    bool inverse = false;
    std::vector<float> cs, sn;
  };
  thread_local Table table;
  if (table.seq != seq || table.d != d || table.offset != offset || table.theta != theta || table.inverse != inverse) {
    table.cs.assign(static_cast<size_t>(seq * half), 0.f);
    table.sn.assign(static_cast<size_t>(seq * half), 0.f);
    for (int64_t i = 0; i < half; ++i) {
      const double freq = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(d));
      for (int64_t p = 0; p < seq; ++p) {
        const double ang = static_cast<double>(p + offset) * freq;
        table.cs[p * half + i] = static_cast<float>(std::cos(ang));
        table.sn[p * half + i] = static_cast<float>((inverse ? -1.0 : 1.0) * std::sin(ang));
      }
    }
    table.seq = seq, table.d = d, table.offset = offset, table.theta = theta, table.inverse = inverse;
  }
  const std::vector<float>& cs = table.cs;
  const std::vector<float>& sn = table.sn;
  ParallelFor(rows, std::max<int64_t>(1, 8192 / width), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const float* c = cs.data() + (r % seq) * half;
      const float* s = sn.data() + (r % seq) * half;
      for (int64_t h = 0; h < heads; ++h) {
        const float* x = in + r * width + h * d;
        float* y = out + r * width + h * d;
        for (int64_t i = 0; i < half; ++i) {
          const float x0 = x[i], x1 = x[i + half];
          y[i] = x0 * c[i] - x1 * s[i];
          y[i + half] = x1 * c[i] + x0 * s[i];
        }
      }
    }
  });
}

void RopeOp(const OpArgs& a) { RopeImpl(a, false); }
void RopeBackwardOp(const OpArgs& a) { RopeImpl(a, true); }

}  // namespace

MIST_REGISTER_OP("rope", RopeOp);
MIST_REGISTER_OP("ropeBackward", RopeBackwardOp);

}  // namespace kernels
}  // namespace mist
