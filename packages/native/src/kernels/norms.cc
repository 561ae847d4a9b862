// LayerNorm (Ba et al. 2016) and RMSNorm (Zhang & Sennrich 2019) over the last dimension of a
// row-major [rows, cols] tensor, forward and backward. Row statistics are summed in float lanes
// (vec_math.h), which vectorise.
//   LayerNorm: xhat = (x - mean) * rstd, rstd = 1 / sqrt(var + eps), y = xhat * gamma + beta
//     dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = dy * gamma
//   RMSNorm:   xhat = x * rstd, rstd = 1 / sqrt(mean(x^2) + eps), y = xhat * gamma
//     dx = rstd * (g - xhat * mean(g * xhat))
//   dgamma += sum_rows dy * xhat, dbeta += sum_rows dy (column blocks as tasks: thread-count independent)
#include <algorithm>
#include <cmath>

#include "kernels/op_args.h"
#include "kernels/thread_pool.h"
#include "kernels/vec_math.h"

namespace mist {
namespace kernels {
namespace {

int64_t RowGrain(int64_t cols) { return std::max<int64_t>(1, 32768 / cols); }

// Sums dy * xhat (and dy) over rows into dgamma (and dbeta), one block of columns per task.
void NormParamGrads(const float* dy, const float* x, const float* mean, const float* rstd, int64_t rows, int64_t cols,
                    float* dgamma, float* dbeta) {
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (cols + kBlock - 1) / kBlock;
  auto run = [&](int64_t blo, int64_t bhi) {
    for (int64_t bi = blo; bi < bhi; ++bi) {
      const int64_t c0 = bi * kBlock, c1 = std::min(cols, c0 + kBlock);
      float gacc[kBlock] = {}, bacc[kBlock] = {};
      for (int64_t r = 0; r < rows; ++r) {
        const float* dyr = dy + r * cols;
        const float* xr = x + r * cols;
        const float mu = mean ? mean[r] : 0.f, rs = rstd[r];
        for (int64_t c = c0; c < c1; ++c) {
          gacc[c - c0] += dyr[c] * (xr[c] - mu) * rs;
          bacc[c - c0] += dyr[c];
        }
      }
      for (int64_t c = c0; c < c1; ++c) {
        dgamma[c] += gacc[c - c0];
        if (dbeta) dbeta[c] += bacc[c - c0];
      }
    }
  };
  if (rows * cols < 16384) run(0, blocks); else ParallelFor(blocks, 1, run);
}

// layerNorm: bufs [y, mean, rstd, x, gamma, beta]; ints [rows, cols]; floats [eps].
// beta may be null (no shift). y may alias x.
void LayerNormOp(const OpArgs& a) {
  const int64_t rows = a.Dim(0, "rows"), cols = a.Dim(1, "cols");
  const float eps = static_cast<float>(a.Float(0, "eps"));
  float* y = a.F(0, rows * cols, "y");
  float* mean = a.F(1, rows, "mean");
  float* rstd = a.F(2, rows, "rstd");
  const float* x = a.F(3, rows * cols, "x");
  const float* gamma = a.F(4, cols, "gamma");
  const float* beta = a.OptF(5, cols, "beta");
  ParallelFor(rows, RowGrain(cols), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const float* xr = x + r * cols;
      const float muf = LaneSum(xr, cols) / static_cast<float>(cols);
      const float var = LaneSumSqDev(xr, cols, muf) / static_cast<float>(cols);
      const float rs = static_cast<float>(1.0 / std::sqrt(static_cast<double>(var) + eps));
      mean[r] = muf;
      rstd[r] = rs;
      float* yr = y + r * cols;
      for (int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - muf) * rs * gamma[c] + (beta ? beta[c] : 0.f);
    }
  });
}

// layerNormBackward: bufs [dx, dgamma, dbeta, dy, x, gamma, mean, rstd]; ints [rows, cols, accumulateDx].
// dgamma/dbeta accumulate; dx is written, or added to when accumulateDx (residual gradients).
void LayerNormBackwardOp(const OpArgs& a) {
  const int64_t rows = a.Dim(0, "rows"), cols = a.Dim(1, "cols");
  const bool acc = a.Int(2, "accumulateDx") != 0;
  float* dx = a.F(0, rows * cols, "dx");
  float* dgamma = a.F(1, cols, "dgamma");
  float* dbeta = a.OptF(2, cols, "dbeta");
  const float* dy = a.F(3, rows * cols, "dy");
  const float* x = a.F(4, rows * cols, "x");
  const float* gamma = a.F(5, cols, "gamma");
  const float* mean = a.F(6, rows, "mean");
  const float* rstd = a.F(7, rows, "rstd");
  NormParamGrads(dy, x, mean, rstd, rows, cols, dgamma, dbeta);
  ParallelFor(rows, RowGrain(cols), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const float* dyr = dy + r * cols;
      const float* xr = x + r * cols;
      const float mu = mean[r], rs = rstd[r];
      // sum g and sum g (x - mu) with g = dy * gamma, in float lanes.
      float ag[kLanes] = {}, agx[kLanes] = {};
      int64_t c0 = 0;
      for (; c0 + kLanes <= cols; c0 += kLanes) {
        for (int l = 0; l < kLanes; ++l) {
          const float g = dyr[c0 + l] * gamma[c0 + l];
          ag[l] += g;
          agx[l] += g * (xr[c0 + l] - mu);
        }
      }
      for (int64_t t = 0; c0 + t < cols; ++t) {
        const float g = dyr[c0 + t] * gamma[c0 + t];
        ag[t] += g;
        agx[t] += g * (xr[c0 + t] - mu);
      }
      float sg = 0.f, sgx = 0.f;
      for (int l = 0; l < kLanes; ++l) sg += ag[l], sgx += agx[l];
      const float mg = sg / static_cast<float>(cols), mgx = sgx * rs / static_cast<float>(cols);
      float* dxr = dx + r * cols;
      for (int64_t c = 0; c < cols; ++c) {
        const float v = rs * (dyr[c] * gamma[c] - mg - (xr[c] - mu) * rs * mgx);
        dxr[c] = acc ? dxr[c] + v : v;
      }
    }
  });
}

// rmsNorm: bufs [y, rstd, x, gamma]; ints [rows, cols]; floats [eps]. y may alias x.
void RmsNormOp(const OpArgs& a) {
  const int64_t rows = a.Dim(0, "rows"), cols = a.Dim(1, "cols");
  const float eps = static_cast<float>(a.Float(0, "eps"));
  float* y = a.F(0, rows * cols, "y");
  float* rstd = a.F(1, rows, "rstd");
  const float* x = a.F(2, rows * cols, "x");
  const float* gamma = a.F(3, cols, "gamma");
  ParallelFor(rows, RowGrain(cols), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const float* xr = x + r * cols;
      const float ms = LaneDot(xr, xr, cols) / static_cast<float>(cols);
      const float rs = static_cast<float>(1.0 / std::sqrt(static_cast<double>(ms) + eps));
      rstd[r] = rs;
      float* yr = y + r * cols;
      for (int64_t c = 0; c < cols; ++c) yr[c] = xr[c] * rs * gamma[c];
    }
  });
}

// rmsNormBackward: bufs [dx, dgamma, dy, x, gamma, rstd]; ints [rows, cols, accumulateDx].
void RmsNormBackwardOp(const OpArgs& a) {
  const int64_t rows = a.Dim(0, "rows"), cols = a.Dim(1, "cols");
  const bool acc = a.Int(2, "accumulateDx") != 0;
  float* dx = a.F(0, rows * cols, "dx");
  float* dgamma = a.F(1, cols, "dgamma");
  const float* dy = a.F(2, rows * cols, "dy");
  const float* x = a.F(3, rows * cols, "x");
  const float* gamma = a.F(4, cols, "gamma");
  const float* rstd = a.F(5, rows, "rstd");
  NormParamGrads(dy, x, nullptr, rstd, rows, cols, dgamma, nullptr);
  ParallelFor(rows, RowGrain(cols), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const float* dyr = dy + r * cols;
      const float* xr = x + r * cols;
      const float rs = rstd[r];
      const float mgx = LaneDot3(dyr, gamma, xr, cols) * rs / static_cast<float>(cols);
      float* dxr = dx + r * cols;
      for (int64_t c = 0; c < cols; ++c) {
        const float v = rs * (dyr[c] * gamma[c] - xr[c] * rs * mgx);
        dxr[c] = acc ? dxr[c] + v : v;
      }
    }
  });
}

}  // namespace

MIST_REGISTER_OP("layerNorm", LayerNormOp);
MIST_REGISTER_OP("layerNormBackward", LayerNormBackwardOp);
MIST_REGISTER_OP("rmsNorm", RmsNormOp);
MIST_REGISTER_OP("rmsNormBackward", RmsNormBackwardOp);

}  // namespace kernels
}  // namespace mist
