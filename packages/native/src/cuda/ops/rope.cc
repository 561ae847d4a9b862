// Launchers of the CUDA rotary position embedding (kernels/rope.cu), with the buffers, integers and
// floats of the CPU kernels of the same names (kernels/rope.cc, ops.ts):
//   rope / ropeBackward  [out x, in x]  ints [rows, seq, heads, headDim, posOffset]  floats [theta]
// out may alias in; ropeBackward applies the inverse rotation.
#include <cstdint>
#include <string>

#include "cuda/launch.h"
#include "cuda/ops/row_launch.h"

namespace mist::cuda {
namespace {

// The row's cos/sin table (headDim floats) lives in dynamic shared memory: stay under the 48 KiB
// every device gives without opting in.
constexpr int64_t kMaxHeadDim = 12288;

void LaunchRope(const LaunchArgs& a, int inverse) {
  const int64_t rows = a.Dim(0, "rows"), seq = a.Dim(1, "seq"), heads = a.Dim(2, "heads"), d = a.Dim(3, "headDim");
  const int64_t offset = a.Int(4, "posOffset");
  const double theta = a.Float(0, "theta");
  if (d % 2 != 0) a.Fail("headDim must be even");
  if (d > kMaxHeadDim) a.Fail("headDim " + std::to_string(d) + " exceeds the " + std::to_string(kMaxHeadDim) + " the CUDA kernel supports");
  const int64_t n = CheckedCount(a, rows, CheckedCount(a, heads, d));
  const CUdeviceptr out = a.T(0, n, "out");
  const CUdeviceptr in = a.T(1, n, "in");
  const unsigned shared = static_cast<unsigned>(d * sizeof(float));
  LaunchKernel(a.Variant("mist_rope"), RowGrid(a, rows), RowBlock(heads * (d / 2), 2, 256), shared, out, in, seq, heads,
               d, offset, theta, inverse);
}

void LaunchRopeForward(const LaunchArgs& a) { LaunchRope(a, 0); }
void LaunchRopeBackward(const LaunchArgs& a) { LaunchRope(a, 1); }

}  // namespace

MIST_REGISTER_CUDA_OP("rope", "xx", LaunchRopeForward);
MIST_REGISTER_CUDA_OP("ropeBackward", "xx", LaunchRopeBackward);

}  // namespace mist::cuda
