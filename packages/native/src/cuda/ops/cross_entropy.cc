// Launcher of the CUDA fused softmax cross-entropy (kernels/cross_entropy.cu), with the buffers,
// integers and floats of the CPU kernel of the same name (kernels/cross_entropy.cc, ops.ts):
//   crossEntropy  [lossRows f, logits x, targets i, dlogits X]  ints [rows, vocab]  floats [gradScale]
// lossRows[r] = logsumexp(logits[r]) - logits[r, t] (0 where t = -1); dlogits (may be logits) =
// (softmax - onehot) * gradScale, 0 on ignored rows. Targets are on the device and not checked here
// (the CPU kernel throws on one outside [-1, vocab)): on CUDA such a row's loss and gradient are NaN.
#include <cstdint>

#include "cuda/launch.h"
#include "cuda/ops/row_launch.h"

namespace mist::cuda {
namespace {

void LaunchCrossEntropy(const LaunchArgs& a) {
  const int64_t rows = a.Dim(0, "rows"), vocab = a.Dim(1, "vocab");
  const int64_t n = CheckedCount(a, rows, vocab);
  const CUdeviceptr loss = a.T(0, rows, "lossRows");
  const CUdeviceptr logits = a.T(1, n, "logits");
  const CUdeviceptr targets = a.T(2, rows, "targets");
  const CUdeviceptr dlogits = a.OptT(3, n, "dlogits");
  const float scale = a.floats.empty() ? 1.f : static_cast<float>(a.Float(0, "gradScale"));
  // One block per row; a row of 1024+ entries gets 1024 threads, a narrow one a single warp or a few.
  LaunchKernel(a.Variant("mist_cross_entropy"), RowGrid(a, rows), RowBlock(vocab, 1, 1024), 0, loss, logits, targets,
               dlogits, vocab, scale);
}

}  // namespace

MIST_REGISTER_CUDA_OP("crossEntropy", "fxiX", LaunchCrossEntropy);

}  // namespace mist::cuda
