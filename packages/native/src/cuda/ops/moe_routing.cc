// Launchers of the CUDA mixture-of-experts routing kernels (kernels/moe_routing.cu), with the buffers
// and integers of the CPU kernels of the same names (kernels/moe_routing.cc, ops.ts). A token's copy j
// is c = n * topK + j; the permuted (expert-sorted) side holds tokens * topK rows.
//   moeTopK          [index i, probs f, logits x]               ints [tokens, experts, topK]
//   moeGatherRows    [dst x, src x, pos i, probs F]             ints [tokens, topK, hidden]
//   moeScatterRows   [dst x, src x, pos i]                      ints [tokens, topK, hidden]
//   moeCombine       [out x, src x, probs F, pos I]             ints [tokens, topK, hidden]   out +=
//   moeGateBackward  [dLogits x, dOut x, yc x, probs f, index i] ints [tokens, experts, topK, hidden]
// Positions and expert indices are on the device and are not checked here (the CPU kernels throw on a
// bad one; moe_routing.cu says what the CUDA kernels do instead). topK is limited to 32 on CUDA.
#include <climits>
#include <cstdint>
#include <string>

#include "cuda/launch.h"
#include "cuda/ops/row_launch.h"

namespace mist::cuda {
namespace {

constexpr int64_t kMaxTopK = 32;  // moe_routing.cu kMaxTopK

void CheckTopK(const LaunchArgs& a, int64_t experts, int64_t topk) {
  if (topk > experts) a.Fail("topK " + std::to_string(topk) + " exceeds the " + std::to_string(experts) + " experts");
  if (topk > kMaxTopK) a.Fail("topK " + std::to_string(topk) + " is above the " + std::to_string(kMaxTopK) + " the CUDA kernels support");
  if (experts > INT_MAX) a.Fail("experts = " + std::to_string(experts) + " exceeds 2^31 - 1");
}

void LaunchMoeTopK(const LaunchArgs& a) {
  const int64_t tokens = a.Dim(0, "tokens"), experts = a.Dim(1, "experts"), topk = a.Dim(2, "topK");
  CheckTopK(a, experts, topk);
  const int64_t copies = CheckedCount(a, tokens, topk);
  const CUdeviceptr index = a.T(0, copies, "index");
  const CUdeviceptr probs = a.T(1, copies, "probs");
  const CUdeviceptr logits = a.T(2, CheckedCount(a, tokens, experts), "logits");
  // A warp per token, four per block.
  constexpr int64_t kWarps = 4;
  const int64_t blocks = (tokens + kWarps - 1) / kWarps;
  if (blocks > INT_MAX) a.Fail("tokens = " + std::to_string(tokens) + " needs more than 2^31 - 1 blocks");
  Dim3 grid, block;
  grid.x = static_cast<unsigned>(blocks);
  block.x = static_cast<unsigned>(32 * kWarps);
  LaunchKernel(a.Variant("mist_moe_topk"), grid, block, 0, index, probs, logits, tokens, static_cast<int>(experts),
               static_cast<int>(topk));
}

struct CopyShape {
  int64_t tokens, topk, hidden, copies;
};

CopyShape ReadCopyShape(const LaunchArgs& a) {
  CopyShape s{};
  s.tokens = a.Dim(0, "tokens");
  s.topk = a.Dim(1, "topK");
  s.hidden = a.Dim(2, "hidden");
  s.copies = CheckedCount(a, s.tokens, s.topk);
  CheckedCount(a, s.copies, s.hidden);
  return s;
}

void LaunchMoeGatherRows(const LaunchArgs& a) {
  const CopyShape s = ReadCopyShape(a);
  const CUdeviceptr dst = a.T(0, s.copies * s.hidden, "dst");
  const CUdeviceptr src = a.T(1, s.tokens * s.hidden, "src");
  const CUdeviceptr pos = a.T(2, s.copies, "pos");
  const CUdeviceptr probs = a.OptT(3, s.copies, "probs");
  LaunchKernel(a.Variant("mist_moe_gather_rows"), RowGrid(a, s.copies), RowBlock(s.hidden, 4, 256), 0, dst, src, pos,
               probs, s.copies, s.topk, s.hidden);
}

void LaunchMoeScatterRows(const LaunchArgs& a) {
  const CopyShape s = ReadCopyShape(a);
  const CUdeviceptr dst = a.T(0, s.copies * s.hidden, "dst");
  const CUdeviceptr src = a.T(1, s.copies * s.hidden, "src");
  const CUdeviceptr pos = a.T(2, s.copies, "pos");
  LaunchKernel(a.Variant("mist_moe_scatter_rows"), RowGrid(a, s.copies), RowBlock(s.hidden, 4, 256), 0, dst, src, pos,
               s.copies, s.hidden);
}

void LaunchMoeCombine(const LaunchArgs& a) {
  const CopyShape s = ReadCopyShape(a);
  const CUdeviceptr out = a.T(0, s.tokens * s.hidden, "out");
  const CUdeviceptr src = a.T(1, s.copies * s.hidden, "src");
  const CUdeviceptr probs = a.OptT(2, s.copies, "probs");
  const CUdeviceptr pos = a.OptT(3, s.copies, "pos");
  LaunchKernel(a.Variant("mist_moe_combine"), RowGrid(a, s.tokens), RowBlock(s.hidden, 4, 256), 0, out, src, probs, pos,
               s.copies, s.topk, s.hidden);
}

void LaunchMoeGateBackward(const LaunchArgs& a) {
  const int64_t tokens = a.Dim(0, "tokens"), experts = a.Dim(1, "experts"), topk = a.Dim(2, "topK"), hidden = a.Dim(3, "hidden");
  CheckTopK(a, experts, topk);
  const int64_t copies = CheckedCount(a, tokens, topk);
  const CUdeviceptr dlogits = a.T(0, CheckedCount(a, tokens, experts), "dLogits");
  const CUdeviceptr dout = a.T(1, CheckedCount(a, tokens, hidden), "dOut");
  const CUdeviceptr yc = a.T(2, CheckedCount(a, copies, hidden), "yc");
  const CUdeviceptr probs = a.T(3, copies, "probs");
  const CUdeviceptr index = a.T(4, copies, "index");
  LaunchKernel(a.Variant("mist_moe_gate_backward"), RowGrid(a, tokens), RowBlock(hidden, 4, 256), 0, dlogits, dout, yc,
               probs, index, experts, static_cast<int>(topk), hidden);
}

}  // namespace

MIST_REGISTER_CUDA_OP("moeTopK", "ifx", LaunchMoeTopK);
MIST_REGISTER_CUDA_OP("moeGatherRows", "xxiF", LaunchMoeGatherRows);
MIST_REGISTER_CUDA_OP("moeScatterRows", "xxi", LaunchMoeScatterRows);
MIST_REGISTER_CUDA_OP("moeCombine", "xxFI", LaunchMoeCombine);
MIST_REGISTER_CUDA_OP("moeGateBackward", "xxxfi", LaunchMoeGateBackward);

}  // namespace mist::cuda
