// Host-side launchers of the CUDA element-wise ops (kernels in cuda/kernels/elementwise.cu). Each op
// has the name, buffers, integer and float parameters of the CPU kernel of that name
// (kernels/elementwise.cc, kernels/squared_relu.cc; documented in kernels/ops.ts), checks every
// buffer's length against them before launching, and launches the variant of the call's storage
// dtype. One op exists only on CUDA: cast (buffers [dst, src], ints [n]) converts between any two
// of f32/bf16/f16, rounding to nearest even.
#include <algorithm>
#include <cstdint>
#include <string>

#include "cuda/launch.h"

namespace mist::cuda {
namespace {

constexpr unsigned kThreads = 256;

size_t Need(int64_t n) { return static_cast<size_t>(n); }

// rows * cols, refusing a product that does not fit in int64 (no buffer could hold it anyway).
int64_t Elements(const LaunchArgs& a, int64_t rows, int64_t cols) {
  if (rows > INT64_MAX / cols) a.Fail("rows * cols overflows");
  return rows * cols;
}

// add: bufs [out, a, b]; ints [n]. out = a + b (out may alias a or b).
void LaunchAdd(const LaunchArgs& a) {
  const int64_t n = a.Dim(0, "n");
  const CUdeviceptr out = a.T(0, Need(n), "out"), x = a.T(1, Need(n), "a"), y = a.T(2, Need(n), "b");
  LaunchKernel(a.Variant("mist_add"), Dim3(StreamBlocks(n)), Dim3(kThreads), 0, out, x, y, n);
}

// accumulate: bufs [dst, src]; ints [n]; floats [alpha] (default 1). dst += alpha * src.
void LaunchAccumulate(const LaunchArgs& a) {
  const int64_t n = a.Dim(0, "n");
  const CUdeviceptr dst = a.T(0, Need(n), "dst"), src = a.T(1, Need(n), "src");
  const float alpha = a.floats.empty() ? 1.f : static_cast<float>(a.Float(0, "alpha"));
  LaunchKernel(a.Variant("mist_accumulate"), Dim3(StreamBlocks(n)), Dim3(kThreads), 0, dst, src, n, alpha);
}

// copy: bufs [dst, src]; ints [n]. dst = src.
void LaunchCopy(const LaunchArgs& a) {
  const int64_t n = a.Dim(0, "n");
  const CUdeviceptr dst = a.T(0, Need(n), "dst"), src = a.T(1, Need(n), "src");
  LaunchKernel(a.Variant("mist_copy"), Dim3(StreamBlocks(n)), Dim3(kThreads), 0, dst, src, n);
}

// scale: bufs [x]; ints [n]; floats [alpha]. x *= alpha.
void LaunchScale(const LaunchArgs& a) {
  const int64_t n = a.Dim(0, "n");
  const CUdeviceptr x = a.T(0, Need(n), "x");
  const float alpha = static_cast<float>(a.Float(0, "alpha"));
  LaunchKernel(a.Variant("mist_scale"), Dim3(StreamBlocks(n)), Dim3(kThreads), 0, x, n, alpha);
}

// fill: bufs [x]; ints [n]; floats [value]. x = value.
void LaunchFill(const LaunchArgs& a) {
  const int64_t n = a.Dim(0, "n");
  const CUdeviceptr x = a.T(0, Need(n), "x");
  const float value = static_cast<float>(a.Float(0, "value"));
  LaunchKernel(a.Variant("mist_fill"), Dim3(StreamBlocks(n)), Dim3(kThreads), 0, x, n, value);
}

// biasAdd: bufs [y, bias]; ints [rows, cols]. y[r, c] += bias[c]. Grid x: column blocks of 256;
// grid y: row slots (each block strides over rows), as many as keep the total near StreamBlocks.
void LaunchBiasAdd(const LaunchArgs& a) {
  const int64_t rows = a.Dim(0, "rows"), cols = a.Dim(1, "cols");
  const int64_t n = Elements(a, rows, cols);
  const CUdeviceptr y = a.T(0, Need(n), "y"), bias = a.T(1, Need(cols), "bias");
  const int64_t colBlocks = (cols + kThreads - 1) / kThreads;
  if (colBlocks > INT32_MAX) a.Fail("cols " + std::to_string(cols) + " is too large for one launch");
  const int64_t rowSlots = std::max<int64_t>(1, std::min<int64_t>({rows, 65535, StreamBlocks(n) / colBlocks}));
  LaunchKernel(a.Variant("mist_bias_add"), Dim3(static_cast<unsigned>(colBlocks), static_cast<unsigned>(rowSlots)),
               Dim3(kThreads), 0, y, bias, rows, cols);
}

// biasGrad: bufs [dbias, dy]; ints [rows, cols]. dbias[c] += sum_r dy[r, c], deterministic (the
// kernel's block shape, 32 columns x 16 row lanes, must match kBiasGradCols/kBiasGradLanes there).
void LaunchBiasGrad(const LaunchArgs& a) {
  const int64_t rows = a.Dim(0, "rows"), cols = a.Dim(1, "cols");
  const int64_t n = Elements(a, rows, cols);
  const CUdeviceptr dbias = a.T(0, Need(cols), "dbias"), dy = a.T(1, Need(n), "dy");
  constexpr unsigned kCols = 32, kLanes = 16;
  const int64_t colBlocks = (cols + kCols - 1) / kCols;
  if (colBlocks > INT32_MAX) a.Fail("cols " + std::to_string(cols) + " is too large for one launch");
  LaunchKernel(a.Variant("mist_bias_grad"), Dim3(static_cast<unsigned>(colBlocks)), Dim3(kCols, kLanes), 0, dbias,
               dy, rows, cols);
}

// gelu: bufs [y, x]; ints [n]. y = gelu(x), tanh form (y may alias x).
void LaunchGelu(const LaunchArgs& a) {
  const int64_t n = a.Dim(0, "n");
  const CUdeviceptr y = a.T(0, Need(n), "y"), x = a.T(1, Need(n), "x");
  LaunchKernel(a.Variant("mist_gelu"), Dim3(StreamBlocks(n)), Dim3(kThreads), 0, y, x, n);
}

// geluBackward: bufs [dx, dy, x]; ints [n]. dx = dy * gelu'(x) (dx may alias dy).
void LaunchGeluBackward(const LaunchArgs& a) {
  const int64_t n = a.Dim(0, "n");
  const CUdeviceptr dx = a.T(0, Need(n), "dx"), dy = a.T(1, Need(n), "dy"), x = a.T(2, Need(n), "x");
  LaunchKernel(a.Variant("mist_gelu_backward"), Dim3(StreamBlocks(n)), Dim3(kThreads), 0, dx, dy, x, n);
}

// squaredRelu: bufs [y, x]; ints [n]. y = relu(x)^2 (y may alias x).
void LaunchSquaredRelu(const LaunchArgs& a) {
  const int64_t n = a.Dim(0, "n");
  const CUdeviceptr y = a.T(0, Need(n), "y"), x = a.T(1, Need(n), "x");
  LaunchKernel(a.Variant("mist_squared_relu"), Dim3(StreamBlocks(n)), Dim3(kThreads), 0, y, x, n);
}

// squaredReluBackward: bufs [dx, dy, x]; ints [n]. dx = dy * 2 relu(x) (written; dx may alias dy).
void LaunchSquaredReluBackward(const LaunchArgs& a) {
  const int64_t n = a.Dim(0, "n");
  const CUdeviceptr dx = a.T(0, Need(n), "dx"), dy = a.T(1, Need(n), "dy"), x = a.T(2, Need(n), "x");
  LaunchKernel(a.Variant("mist_squared_relu_backward"), Dim3(StreamBlocks(n)), Dim3(kThreads), 0, dx, dy, x, n);
}

// swiglu: bufs [y, gate, up]; ints [n]. y = silu(gate) * up.
void LaunchSwiglu(const LaunchArgs& a) {
  const int64_t n = a.Dim(0, "n");
  const CUdeviceptr y = a.T(0, Need(n), "y"), gate = a.T(1, Need(n), "gate"), up = a.T(2, Need(n), "up");
  LaunchKernel(a.Variant("mist_swiglu"), Dim3(StreamBlocks(n)), Dim3(kThreads), 0, y, gate, up, n);
}

// swigluBackward: bufs [dgate, dup, dy, gate, up]; ints [n]. dgate, dup written.
void LaunchSwigluBackward(const LaunchArgs& a) {
  const int64_t n = a.Dim(0, "n");
  const CUdeviceptr dgate = a.T(0, Need(n), "dgate"), dup = a.T(1, Need(n), "dup"), dy = a.T(2, Need(n), "dy");
  const CUdeviceptr gate = a.T(3, Need(n), "gate"), up = a.T(4, Need(n), "up");
  LaunchKernel(a.Variant("mist_swiglu_backward"), Dim3(StreamBlocks(n)), Dim3(kThreads), 0, dgate, dup, dy, gate, up,
               n);
}

// cast: bufs [dst, src]; ints [n]. dst = src converted to dst's dtype (round to nearest even).
void LaunchCast(const LaunchArgs& a) {
  const int64_t n = a.Dim(0, "n");
  const CUdeviceptr dst = a.T(0, Need(n), "dst"), src = a.T(1, Need(n), "src");
  const DType to = a.tensors[0].dtype, from = a.tensors[1].dtype;
  if (to == DType::kI32) a.Fail("buffer dst must be f32, bf16 or f16, got i32");
  if (from == DType::kI32) a.Fail("buffer src must be f32, bf16 or f16, got i32");
  const std::string kernel = std::string("mist_cast_") + DTypeSuffix(from) + "_to_" + DTypeSuffix(to);
  LaunchKernel(kernel, Dim3(StreamBlocks(n)), Dim3(kThreads), 0, dst, src, n);
}

}  // namespace

MIST_REGISTER_CUDA_OP("add", "xxx", LaunchAdd);
MIST_REGISTER_CUDA_OP("accumulate", "xx", LaunchAccumulate);
MIST_REGISTER_CUDA_OP("copy", "xx", LaunchCopy);
MIST_REGISTER_CUDA_OP("scale", "x", LaunchScale);
MIST_REGISTER_CUDA_OP("fill", "x", LaunchFill);
MIST_REGISTER_CUDA_OP("biasAdd", "xx", LaunchBiasAdd);
MIST_REGISTER_CUDA_OP("biasGrad", "xx", LaunchBiasGrad);
MIST_REGISTER_CUDA_OP("gelu", "xx", LaunchGelu);
MIST_REGISTER_CUDA_OP("geluBackward", "xxx", LaunchGeluBackward);
MIST_REGISTER_CUDA_OP("squaredRelu", "xx", LaunchSquaredRelu);
MIST_REGISTER_CUDA_OP("squaredReluBackward", "xxx", LaunchSquaredReluBackward);
MIST_REGISTER_CUDA_OP("swiglu", "xxx", LaunchSwiglu);
MIST_REGISTER_CUDA_OP("swigluBackward", "xxxxx", LaunchSwigluBackward);
MIST_REGISTER_CUDA_OP("cast", "**", LaunchCast);

}  // namespace mist::cuda
