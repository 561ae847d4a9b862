// Launchers of the CUDA LayerNorm and RMSNorm (kernels/norms.cu), with the buffers, integers and
// floats of the CPU kernels of the same names (kernels/norms.cc, ops.ts):
//   layerNorm          [y x, mean f, rstd f, x x, gamma x, beta X]  ints [rows, cols]  floats [eps]
//   layerNormBackward  [dx x, dgamma x, dbeta X, dy x, x x, gamma x, mean f, rstd f]  ints [rows, cols, accumulateDx]
//   rmsNorm            [y x, rstd f, x x, gamma x]  ints [rows, cols]  floats [eps]
//   rmsNormBackward    [dx x, dgamma x, dy x, x x, gamma x, rstd f]  ints [rows, cols, accumulateDx]
// y may alias x. dgamma/dbeta accumulate (+=); dx is written, or added to when accumulateDx. As on
// the CPU, the parameter gradients are summed before dx is written (so dx may alias dy).
#include <cstdint>

#include "cuda/launch.h"
#include "cuda/ops/row_launch.h"

namespace mist::cuda {
namespace {

// Each row-kernel thread handles about this many columns (rows of 4096+ columns use 1024 threads).
constexpr int64_t kColsPerThread = 4;

Dim3 NormBlock(int64_t cols) { return RowBlock(cols, kColsPerThread, 1024); }

// The column-sum kernel for dgamma (and dbeta): 32-column tiles, block (32, 32) (norms.cu).
void LaunchParamGrads(const LaunchArgs& a, CUdeviceptr dgamma, CUdeviceptr dbeta, CUdeviceptr dy, CUdeviceptr x,
                      CUdeviceptr mean, CUdeviceptr rstd, int64_t rows, int64_t cols) {
  Dim3 grid, block;
  grid.x = CeilDiv(static_cast<size_t>(cols), 32);
  block.x = 32;
  block.y = 32;
  LaunchKernel(a.Variant("mist_norm_param_grads"), grid, block, 0, dgamma, dbeta, dy, x, mean, rstd, rows, cols);
}

void LaunchLayerNorm(const LaunchArgs& a) {
  const int64_t rows = a.Dim(0, "rows"), cols = a.Dim(1, "cols");
  const int64_t n = CheckedCount(a, rows, cols);
  const float eps = static_cast<float>(a.Float(0, "eps"));
  const CUdeviceptr y = a.T(0, n, "y");
  const CUdeviceptr mean = a.T(1, rows, "mean");
  const CUdeviceptr rstd = a.T(2, rows, "rstd");
  const CUdeviceptr x = a.T(3, n, "x");
  const CUdeviceptr gamma = a.T(4, cols, "gamma");
  const CUdeviceptr beta = a.OptT(5, cols, "beta");
  LaunchKernel(a.Variant("mist_layer_norm"), RowGrid(a, rows), NormBlock(cols), 0, y, mean, rstd, x, gamma, beta, cols,
               eps);
}

void LaunchLayerNormBackward(const LaunchArgs& a) {
  const int64_t rows = a.Dim(0, "rows"), cols = a.Dim(1, "cols");
  const int64_t n = CheckedCount(a, rows, cols);
  const int accumulate = a.Int(2, "accumulateDx") != 0 ? 1 : 0;
  const CUdeviceptr dx = a.T(0, n, "dx");
  const CUdeviceptr dgamma = a.T(1, cols, "dgamma");
  const CUdeviceptr dbeta = a.OptT(2, cols, "dbeta");
  const CUdeviceptr dy = a.T(3, n, "dy");
  const CUdeviceptr x = a.T(4, n, "x");
  const CUdeviceptr gamma = a.T(5, cols, "gamma");
  const CUdeviceptr mean = a.T(6, rows, "mean");
  const CUdeviceptr rstd = a.T(7, rows, "rstd");
  const Dim3 grid = RowGrid(a, rows);
  LaunchParamGrads(a, dgamma, dbeta, dy, x, mean, rstd, rows, cols);
  LaunchKernel(a.Variant("mist_layer_norm_backward_dx"), grid, NormBlock(cols), 0, dx, dy, x, gamma, mean, rstd, cols,
               accumulate);
}

void LaunchRmsNorm(const LaunchArgs& a) {
  const int64_t rows = a.Dim(0, "rows"), cols = a.Dim(1, "cols");
  const int64_t n = CheckedCount(a, rows, cols);
  const float eps = static_cast<float>(a.Float(0, "eps"));
  const CUdeviceptr y = a.T(0, n, "y");
  const CUdeviceptr rstd = a.T(1, rows, "rstd");
  const CUdeviceptr x = a.T(2, n, "x");
  const CUdeviceptr gamma = a.T(3, cols, "gamma");
  LaunchKernel(a.Variant("mist_rms_norm"), RowGrid(a, rows), NormBlock(cols), 0, y, rstd, x, gamma, cols, eps);
}

void LaunchRmsNormBackward(const LaunchArgs& a) {
  const int64_t rows = a.Dim(0, "rows"), cols = a.Dim(1, "cols");
  const int64_t n = CheckedCount(a, rows, cols);
  const int accumulate = a.Int(2, "accumulateDx") != 0 ? 1 : 0;
  const CUdeviceptr dx = a.T(0, n, "dx");
  const CUdeviceptr dgamma = a.T(1, cols, "dgamma");
  const CUdeviceptr dy = a.T(2, n, "dy");
  const CUdeviceptr x = a.T(3, n, "x");
  const CUdeviceptr gamma = a.T(4, cols, "gamma");
  const CUdeviceptr rstd = a.T(5, rows, "rstd");
  const Dim3 grid = RowGrid(a, rows);
  const CUdeviceptr none = 0;  // RMSNorm has no dbeta and no mean
  LaunchParamGrads(a, dgamma, none, dy, x, none, rstd, rows, cols);
  LaunchKernel(a.Variant("mist_rms_norm_backward_dx"), grid, NormBlock(cols), 0, dx, dy, x, gamma, rstd, cols,
               accumulate);
}

}  // namespace

MIST_REGISTER_CUDA_OP("layerNorm", "xffxxX", LaunchLayerNorm);
MIST_REGISTER_CUDA_OP("layerNormBackward", "xxXxxxff", LaunchLayerNormBackward);
MIST_REGISTER_CUDA_OP("rmsNorm", "xfxx", LaunchRmsNorm);
MIST_REGISTER_CUDA_OP("rmsNormBackward", "xxxxxf", LaunchRmsNormBackward);

}  // namespace mist::cuda
