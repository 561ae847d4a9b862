// Element-wise kernels: residual add, accumulate, copy/scale/fill, bias add and its gradient,
// GELU (tanh form) and SwiGLU with their backward passes. Shapes are row-major [rows, cols].
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/op_args.h"
#include "kernels/thread_pool.h"
#include "kernels/vec_math.h"

namespace mist {
namespace kernels {
namespace {

constexpr int64_t kGrain = 1 << 14;  // elements per task: below this, threading costs more than it saves
// The same for the memory-bound kernels (add, copy, ...), which do about a nanosecond of work per
// element: a smaller split costs more in hand-offs (a few microseconds each) than it saves.
constexpr int64_t kMemGrain = 1 << 16;

int64_t Count(const OpArgs& x, size_t i) { return x.Dim(i, "n"); }

// add: bufs [out, a, b]; ints [n]. out = a + b (residual connection; out may alias a or b).
void AddOp(const OpArgs& x) {
  const int64_t n = Count(x, 0);
  float* out = x.F(0, n, "out");
  const float* a = x.F(1, n, "a");
  const float* b = x.F(2, n, "b");
  ParallelFor(n, kMemGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) out[i] = a[i] + b[i];
  });
}

// accumulate: bufs [dst, src]; ints [n]; floats [alpha]. dst += alpha * src (gradient of a residual
// branch, gradient accumulation).
void AccumulateOp(const OpArgs& x) {
  const int64_t n = Count(x, 0);
  float* dst = x.F(0, n, "dst");
  const float* src = x.F(1, n, "src");
  const float alpha = x.floats.empty() ? 1.f : static_cast<float>(x.Float(0, "alpha"));
  ParallelFor(n, kMemGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) dst[i] += alpha * src[i];
  });
}

// copy: bufs [dst, src]; ints [n]. dst = src.
void CopyOp(const OpArgs& x) {
  const int64_t n = Count(x, 0);
  float* dst = x.F(0, n, "dst");
  const float* src = x.F(1, n, "src");
  ParallelFor(n, kMemGrain, [&](int64_t lo, int64_t hi) { std::copy(src + lo, src + hi, dst + lo); });
}

// scale: bufs [x]; ints [n]; floats [alpha]. x *= alpha.
void ScaleOp(const OpArgs& x) {
  const int64_t n = Count(x, 0);
  float* v = x.F(0, n, "x");
  const float alpha = static_cast<float>(x.Float(0, "alpha"));
  ParallelFor(n, kMemGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) v[i] *= alpha;
  });
}

// fill: bufs [x]; ints [n]; floats [value]. x = value.
void FillOp(const OpArgs& x) {
  const int64_t n = Count(x, 0);
  float* v = x.F(0, n, "x");
  const float value = static_cast<float>(x.Float(0, "value"));
  ParallelFor(n, kMemGrain, [&](int64_t lo, int64_t hi) { std::fill(v + lo, v + hi, value); });
}

// biasAdd: bufs [y, bias]; ints [rows, cols]. y[r, c] += bias[c].
void BiasAddOp(const OpArgs& x) {
  const int64_t rows = x.Dim(0, "rows"), cols = x.Dim(1, "cols");
  float* y = x.F(0, rows * cols, "y");
  const float* bias = x.F(1, cols, "bias");
  ParallelFor(rows, std::max<int64_t>(1, kMemGrain / cols), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      float* yr = y + r * cols;
      for (int64_t c = 0; c < cols; ++c) yr[c] += bias[c];
    }
  });
}

// biasGrad: bufs [dbias, dy]; ints [rows, cols]. dbias[c] += sum_r dy[r, c]. Column blocks are the
// tasks, rows are summed in order: the result does not depend on the thread count.
void BiasGradOp(const OpArgs& x) {
  const int64_t rows = x.Dim(0, "rows"), cols = x.Dim(1, "cols");
  float* db = x.F(0, cols, "dbias");
  const float* dy = x.F(1, rows * cols, "dy");
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (cols + kBlock - 1) / kBlock;
  auto run = [&](int64_t blo, int64_t bhi) {
    for (int64_t bidx = blo; bidx < bhi; ++bidx) {
      const int64_t c0 = bidx * kBlock, c1 = std::min(cols, c0 + kBlock);
      float acc[kBlock] = {};
      for (int64_t r = 0; r < rows; ++r) {
        const float* row = dy + r * cols;
        for (int64_t c = c0; c < c1; ++c) acc[c - c0] += row[c];
      }
      for (int64_t c = c0; c < c1; ++c) db[c] += acc[c - c0];
    }
  };
  if (rows * cols < kGrain) run(0, blocks); else ParallelFor(blocks, 1, run);
}

// GELU, tanh approximation (Hendrycks & Gimpel 2016, eq. in section 2), tanh and the sigmoid
// below from vec_math.h so that the loops vectorise:
//   gelu(x) = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
//   gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2),  t = tanh(u)
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluC = 0.044715f;

// gelu: bufs [y, x]; ints [n]. y = gelu(x) (y may alias x).
void GeluOp(const OpArgs& a) {
  const int64_t n = Count(a, 0);
  float* y = a.F(0, n, "y");
  const float* x = a.F(1, n, "x");
  ParallelFor(n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const float v = x[i];
      y[i] = 0.5f * v * (1.f + FastTanh(kSqrt2OverPi * (v + kGeluC * v * v * v)));
    }
  });
}

// geluBackward: bufs [dx, dy, x]; ints [n]. dx = dy * gelu'(x) (dx may alias dy).
void GeluBackwardOp(const OpArgs& a) {
  const int64_t n = Count(a, 0);
  float* dx = a.F(0, n, "dx");
  const float* dy = a.F(1, n, "dy");
  const float* x = a.F(2, n, "x");
  ParallelFor(n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const float v = x[i];
      const float t = FastTanh(kSqrt2OverPi * (v + kGeluC * v * v * v));
      const float d = 0.5f * (1.f + t) + 0.5f * v * (1.f - t * t) * kSqrt2OverPi * (1.f + 3.f * kGeluC * v * v);
      dx[i] = dy[i] * d;
    }
  });
}

// SwiGLU (Shazeer 2020, "GLU Variants Improve Transformer"): y = silu(gate) * up,
// silu(g) = g * sigmoid(g), silu'(g) = s (1 + g (1 - s)) with s = sigmoid(g).
// swiglu: bufs [y, gate, up]; ints [n].
void SwigluOp(const OpArgs& a) {
  const int64_t n = Count(a, 0);
  float* y = a.F(0, n, "y");
  const float* g = a.F(1, n, "gate");
  const float* u = a.F(2, n, "up");
  ParallelFor(n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const float s = FastSigmoid(g[i]);
      y[i] = g[i] * s * u[i];
    }
  });
}

// swigluBackward: bufs [dgate, dup, dy, gate, up]; ints [n]. Writes (does not accumulate).
void SwigluBackwardOp(const OpArgs& a) {
  const int64_t n = Count(a, 0);
  float* dg = a.F(0, n, "dgate");
  float* du = a.F(1, n, "dup");
  const float* dy = a.F(2, n, "dy");
  const float* g = a.F(3, n, "gate");
  const float* u = a.F(4, n, "up");
  ParallelFor(n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const float s = FastSigmoid(g[i]);
      const float silu = g[i] * s;
      const float gy = dy[i];
      const float uu = u[i];
      dg[i] = gy * uu * s * (1.f + g[i] * (1.f - s));
      du[i] = gy * silu;
    }
  });
}

}  // namespace

MIST_REGISTER_OP("add", AddOp);
MIST_REGISTER_OP("accumulate", AccumulateOp);
MIST_REGISTER_OP("copy", CopyOp);
MIST_REGISTER_OP("scale", ScaleOp);
MIST_REGISTER_OP("fill", FillOp);
MIST_REGISTER_OP("biasAdd", BiasAddOp);
MIST_REGISTER_OP("biasGrad", BiasGradOp);
MIST_REGISTER_OP("gelu", GeluOp);
MIST_REGISTER_OP("geluBackward", GeluBackwardOp);
MIST_REGISTER_OP("swiglu", SwigluOp);
MIST_REGISTER_OP("swigluBackward", SwigluBackwardOp);

}  // namespace kernels
}  // namespace mist
