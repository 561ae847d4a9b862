// Squared ReLU (So et al. 2021, "Primer: Searching for Efficient Transformers for Language
// Modeling", Sec. 3; the MLP activation of Nemotron-4, Parmar et al. 2024, Sec. 2):
//   y = relu(x)^2,   dy/dx = 2 relu(x)
// (Megatron-LM's megatron/core/activations.py squared_relu: torch.pow(F.relu(x), 2)).
#include <cstdint>

#include "kernels/op_args.h"
#include "kernels/thread_pool.h"

namespace mist {
namespace kernels {
namespace {

constexpr int64_t kGrain = 1 << 14;  // elements per task: below this, threading costs more than it saves

// squaredRelu: bufs [y, x]; ints [n]. y = relu(x)^2 (y may alias x).
void SquaredReluOp(const OpArgs& a) {
  const int64_t n = a.Dim(0, "n");
  float* y = a.F(0, n, "y");
  const float* x = a.F(1, n, "x");
  ParallelFor(n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const float r = x[i] > 0.f ? x[i] : 0.f;
      y[i] = r * r;
    }
  });
}

// squaredReluBackward: bufs [dx, dy, x]; ints [n]. dx = dy * 2 relu(x) (written; dx may alias dy).
void SquaredReluBackwardOp(const OpArgs& a) {
  const int64_t n = a.Dim(0, "n");
  float* dx = a.F(0, n, "dx");
  const float* dy = a.F(1, n, "dy");
  const float* x = a.F(2, n, "x");
  ParallelFor(n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const float r = x[i] > 0.f ? x[i] : 0.f;
      dx[i] = dy[i] * 2.f * r;
    }
  });
}

}  // namespace

MIST_REGISTER_OP("squaredRelu", SquaredReluOp);
MIST_REGISTER_OP("squaredReluBackward", SquaredReluBackwardOp);

}  // namespace kernels
}  // namespace mist
