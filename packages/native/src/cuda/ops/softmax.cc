// Host-side launchers of the CUDA causal softmax of the unfused attention core (kernels in
// cuda/kernels/softmax.cu), with the buffers and integer parameters of causalSoftmax and
// causalSoftmaxBackward in kernels/unfused_attention.cc (documented in kernels/ops.ts): ints
// [rows, seq], rows = batch * heads * seq, row r being query r % seq. One block per row.
#include <cstdint>

#include "cuda/launch.h"
#include "cuda/ops/row_launch.h"

namespace mist::cuda {
namespace {

// ints [rows, seq] with rows a multiple of seq (as the CPU kernel requires); returns rows * seq.
int64_t ReadRows(const LaunchArgs& a, int64_t* rows, int64_t* seq) {
  *rows = a.Dim(0, "rows");
  *seq = a.Dim(1, "seq");
  if (*rows % *seq != 0) a.Fail("rows must be a multiple of seq");
  return CheckedCount(a, *rows, *seq);
}

// Threads per row block: about 8 elements of the row per thread, a multiple of 32 in [32, 1024]
// (256 threads for seq = 2048).
Dim3 SoftmaxBlock(int64_t seq) { return RowBlock(seq, 8, 1024); }

// causalSoftmax: bufs [probs, scores]. probs = causal softmax of scores, 0 above the diagonal
// (probs may be scores).
void LaunchCausalSoftmax(const LaunchArgs& a) {
  int64_t rows = 0, seq = 0;
  const size_t n = static_cast<size_t>(ReadRows(a, &rows, &seq));
  const CUdeviceptr probs = a.T(0, n, "probs"), scores = a.T(1, n, "scores");
  LaunchKernel(a.Variant("mist_causal_softmax"), RowGrid(a, rows), SoftmaxBlock(seq), 0, probs, scores, seq);
}

// causalSoftmaxBackward: bufs [dscores, dprobs, probs]. dscores = probs * (dprobs - rowsum(probs *
// dprobs)), 0 above the diagonal (dscores may be dprobs).
void LaunchCausalSoftmaxBackward(const LaunchArgs& a) {
  int64_t rows = 0, seq = 0;
  const size_t n = static_cast<size_t>(ReadRows(a, &rows, &seq));
  const CUdeviceptr dscores = a.T(0, n, "dscores"), dprobs = a.T(1, n, "dprobs"), probs = a.T(2, n, "probs");
  LaunchKernel(a.Variant("mist_causal_softmax_backward"), RowGrid(a, rows), SoftmaxBlock(seq), 0, dscores, dprobs,
               probs, seq);
}

}  // namespace

MIST_REGISTER_CUDA_OP("causalSoftmax", "xx", LaunchCausalSoftmax);
MIST_REGISTER_CUDA_OP("causalSoftmaxBackward", "xxx", LaunchCausalSoftmaxBackward);

}  // namespace mist::cuda
