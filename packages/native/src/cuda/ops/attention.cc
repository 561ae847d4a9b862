// Launchers of the CUDA causal grouped-query attention (kernels/attention.cu, FlashAttention-2 style),
// with the buffers, integers and floats of the CPU kernels of the same names (kernels/attention.cc,
// ops.ts):
//   attention          [out x, lse f, q x, k x, v x]  ints [batch, seq, heads, kvHeads, headDim,
//                      (keyHi, keyLo, sampleOffset, headOffset, totalHeads)]  floats [scale?, (p)]
//   attentionBackward  [dq x, dk x, dv x, dout x, q x, k x, v x, out x, lse f]  ints and floats as attention
// q, out, dq, dout are [batch * seq, heads * headDim]; k, v, dk, dv [batch * seq, kvHeads * headDim];
// lse [batch, heads, seq] (fp32). out, lse, dq, dk, dv are written. The scale defaults to
// 1 / sqrt(headDim). Head sizes 16, 32, 64 and 128 have kernels. Dropout on the probabilities (the
// optional ints and p) draws the CPU kernel's mask element for element and is regenerated in the
// backward.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "cuda/ops/attention_launch.h"
#include "cuda/ops/row_launch.h"

namespace mist::cuda {
namespace {

struct AttnShape {
  int64_t batch, seq, heads, kv_heads, d;
  float scale;
  AttnCounts n;
  mist_attention::AttnDropout drop;
};

AttnShape ReadShape(const LaunchArgs& a) {
  const kernels::AttentionDims dims = kernels::ReadAttentionDims(a);
  AttnShape s{};
  s.batch = dims.batch;
  s.seq = dims.q_seq;
  s.heads = dims.heads;
  s.kv_heads = dims.kv_heads;
  s.d = dims.d;
  CheckAttentionHeadDim(a, s.d);
  // The kernels take seq, heads and kvHeads as int and index rows with 64-bit offsets.
  constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();
  if (s.seq > kIntMax || s.heads > kIntMax) a.Fail("seq and heads must be below 2^31");
  s.scale = kernels::ReadAttentionScale(a, s.d);
  // Optional dropout: ints [..., keyHi, keyLo, sampleOffset, headOffset, totalHeads]; floats [scale, p].
  s.drop = mist_attention::AttnDropout{};
  if (a.ints.size() > 5) s.drop = ReadAttnDropout(a, 5, 1, s.heads, s.seq);
  s.n = AttnCountsOf(a, s.batch, s.seq, s.seq, s.heads, s.kv_heads, s.d);
  return s;
}

constexpr const char* kPrefix = "mist_attention";

void LaunchAttention(const LaunchArgs& a) {
  const AttnShape s = ReadShape(a);
  const AttnForwardBuffers b = ReadForwardBuffers(a, s.n);
  const AttnTileInfo t = AttnTilesFor<mist_attention::FwdTiles>(s.d);
  const int seq = static_cast<int>(s.seq), heads = static_cast<int>(s.heads), kv_heads = static_cast<int>(s.kv_heads);
  LaunchKernel(AttnKernelName(a, kPrefix, "fwd", s.d), AttnGrid(a, s.batch * s.heads, s.seq, t.rows), AttnBlock(),
               static_cast<unsigned>(t.shared), b.out, b.lse, b.q, b.k, b.v, seq, heads, kv_heads, s.scale, s.drop);
}

void LaunchAttentionBackward(const LaunchArgs& a) {
  const AttnShape s = ReadShape(a);
  const AttnBackwardBuffers b = ReadBackwardBuffers(a, s.n);
  const int seq = static_cast<int>(s.seq), heads = static_cast<int>(s.heads), kv_heads = static_cast<int>(s.kv_heads);
  // The two passes read only the inputs and write disjoint outputs, so their order does not matter.
  const AttnTileInfo tq = AttnTilesFor<mist_attention::DqTiles>(s.d);
  LaunchKernel(AttnKernelName(a, kPrefix, "bwd_dq", s.d), AttnGrid(a, s.batch * s.heads, s.seq, tq.rows), AttnBlock(),
               static_cast<unsigned>(tq.shared), b.dq, b.dout, b.q, b.k, b.v, b.out, b.lse, seq, heads, kv_heads, s.scale, s.drop);
  const AttnTileInfo tkv = AttnTilesFor<mist_attention::DkvTiles>(s.d);
  LaunchKernel(AttnKernelName(a, kPrefix, "bwd_dkv", s.d), AttnGrid(a, s.batch * s.kv_heads, s.seq, tkv.cols),
               AttnBlock(), static_cast<unsigned>(tkv.shared), b.dk, b.dv, b.dout, b.q, b.k, b.v, b.out, b.lse, seq, heads,
               kv_heads, s.scale, s.drop);
}

}  // namespace

MIST_REGISTER_CUDA_OP("attention", "xfxxx", LaunchAttention);
MIST_REGISTER_CUDA_OP("attentionBackward", "xxxxxxxxf", LaunchAttentionBackward);

}  // namespace mist::cuda
