// Host-side launchers of the CUDA optimizer ops (kernels in cuda/kernels/adamw.cu), mirroring
// kernels/adamw.cc:
//   adamw: bufs [param 'f', grad 'x', m 'f', v 'f', paramOut 'X' (optional)]; ints [n, step];
//          floats [lr, beta1, beta2, eps, weightDecay, gradScale]. param, m, v updated in place in
//          fp32; paramOut, when given, receives the updated parameter in the storage dtype.
//   sumSquares: bufs [out 'f' (>= 1 element), x 'x']; ints [n]. out[0] = sum x^2 (written).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cuda/launch.h"

namespace mist::cuda {
namespace {

void LaunchAdamW(const LaunchArgs& a) {
  const int64_t n = a.Dim(0, "n"), step = a.Dim(1, "step");
  const size_t need = static_cast<size_t>(n);
  const CUdeviceptr param = a.T(0, need, "param"), grad = a.T(1, need, "grad");
  const CUdeviceptr m = a.T(2, need, "m"), v = a.T(3, need, "v");
  const CUdeviceptr paramOut = a.OptT(4, need, "paramOut");
  const double lr = a.Float(0, "lr"), b1 = a.Float(1, "beta1"), b2 = a.Float(2, "beta2");
  const float eps = static_cast<float>(a.Float(3, "eps"));
  const float wd = static_cast<float>(a.Float(4, "weightDecay"));
  const float gs = static_cast<float>(a.Float(5, "gradScale"));
  // Bias corrections in double, then rounded, exactly as the CPU kernel computes them.
  const float c1 = static_cast<float>(1.0 / (1.0 - std::pow(b1, static_cast<double>(step))));
  const float c2 = static_cast<float>(1.0 / (1.0 - std::pow(b2, static_cast<double>(step))));
  const float lrf = static_cast<float>(lr), b1f = static_cast<float>(b1), b2f = static_cast<float>(b2);
  constexpr unsigned kThreads = 256;
  LaunchKernel(a.Variant("mist_adamw"), Dim3(StreamBlocks(n, kThreads)), Dim3(kThreads), 0, param, grad, m, v, paramOut, n, lrf, b1f, b2f, eps, wd, gs,
               c1, c2);
}

// One block of 1024 threads (kSumSquaresThreads in the kernel): deterministic without scratch memory.
void LaunchSumSquares(const LaunchArgs& a) {
  const int64_t n = a.Dim(0, "n");
  const CUdeviceptr out = a.T(0, 1, "out"), x = a.T(1, static_cast<size_t>(n), "x");
  Dim3 grid, block;
  block.x = 1024;
  LaunchKernel(a.Variant("mist_sum_squares"), grid, block, 0, out, x, n);
}

}  // namespace

MIST_REGISTER_CUDA_OP("adamw", "fxffX", LaunchAdamW);
MIST_REGISTER_CUDA_OP("sumSquares", "fx", LaunchSumSquares);

}  // namespace mist::cuda
