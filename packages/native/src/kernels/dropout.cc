// Dropout (Srivastava et al. 2014) with its 1-byte keep mask, and the fused residual form Megatron-LM
// uses (bias-dropout-add: out = stream + dropout(branch)). Masks are n bytes packed into a
// Float32Array of ceil(n / 4) floats, so the executor accounts and offloads them like any saved
// tensor at 1 byte per element. Draws come from dropout_rng.h: element (r, c) of a [rows, cols]
// tensor has index (rowOffset + r) * cols + c, rowOffset placing a sequence-parallel shard (or a
// micro-batch) in the whole batch.
#include <cstring>

#include "kernels/dropout_rng.h"
#include "kernels/op_args.h"
#include "kernels/thread_pool.h"

namespace mist {
namespace kernels {
namespace {

constexpr int64_t kGrain = 1 << 14;

uint8_t* MaskBytes(const OpArgs& x, size_t i, int64_t n) {
  return reinterpret_cast<uint8_t*>(x.F(i, static_cast<size_t>((n + 3) / 4), "mask"));
}

// What dropout and dropoutAdd share: bufs [out, mask, ...]; ints [rows, cols, rowOffset, keyHi,
// keyLo]; floats [p]. Element i of the rows draws the key of its index in the whole tensor.
struct DrawArgs {
  int64_t n;
  float* out;
  uint8_t* mask;
  DropoutRng rng;
  uint64_t base;
};

DrawArgs ReadDrawArgs(const OpArgs& x) {
  const int64_t rows = x.Dim(0, "rows"), cols = x.Dim(1, "cols"), off = x.Int(2, "rowOffset"), n = rows * cols;
  if (off < 0) x.Fail("rowOffset must be >= 0");
  return {n, x.F(0, n, "out"), MaskBytes(x, 1, n), ReadDropoutRng(x, 3, 0), static_cast<uint64_t>(off) * static_cast<uint64_t>(cols)};
}

// Draws every element's keep into the mask and writes out[i] = value(i, keep).
template <typename Value>
void DrawEach(const DrawArgs& d, Value value) {
  ParallelFor(d.n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const bool keep = d.rng.Keep(d.base + static_cast<uint64_t>(i));
      d.mask[i] = keep ? 1 : 0;
      d.out[i] = value(i, keep);
    }
  });
}

// dropout: bufs [out, mask, x]. out = x * keep / (1 - p) (out may be x); mask = keep (0 or 1).
void DropoutOp(const OpArgs& x) {
  const DrawArgs d = ReadDrawArgs(x);
  const float* in = x.F(2, d.n, "x");
  DrawEach(d, [&](int64_t i, bool keep) { return keep ? in[i] * d.rng.scale : 0.f; });
}

// dropoutAdd: bufs [out, mask, stream, branch]. out = stream + branch * keep / (1 - p) (out may be
// stream or branch).
void DropoutAddOp(const OpArgs& x) {
  const DrawArgs d = ReadDrawArgs(x);
  const float* stream = x.F(2, d.n, "stream");
  const float* branch = x.F(3, d.n, "branch");
  DrawEach(d, [&](int64_t i, bool keep) { return stream[i] + (keep ? branch[i] * d.rng.scale : 0.f); });
}

// dropoutBackward: bufs [dx, mask, dy]; ints [n]; floats [p]. dx = dy * mask / (1 - p) (dx may be dy).
void DropoutBackwardOp(const OpArgs& x) {
  const int64_t n = x.Dim(0, "n");
  float* dx = x.F(0, n, "dx");
  const uint8_t* mask = MaskBytes(x, 1, n);
  const float* dy = x.F(2, n, "dy");
  const double p = x.Float(0, "p");
  if (!(p >= 0.0 && p < 1.0)) x.Fail("dropout probability p must be in [0, 1), got " + std::to_string(p));
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  ParallelFor(n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) dx[i] = mask[i] ? dy[i] * scale : 0.f;
  });
}

}  // namespace

MIST_REGISTER_OP("dropout", DropoutOp);
MIST_REGISTER_OP("dropoutAdd", DropoutAddOp);
MIST_REGISTER_OP("dropoutBackward", DropoutBackwardOp);

}  // namespace kernels
}  // namespace mist
