// Launchers of the CUDA ring-attention blocks (kernels/ring_attention.cu), with the buffers, integers
// and floats of the CPU kernels of the same names (kernels/ring_attention.cc, ops.ts
// AttentionBlockShape):
//   attentionBlock          [out x, lse f, q x, k x, v x, qPos i, kPos i]
//   attentionBlockBackward  [dq x, dk x, dv x, dout x, q x, k x, v x, out x, lse f, qPos i, kPos i]
//   ints [batch, qSeq, kSeq, heads, kvHeads, headDim, merge, (keyHi, keyLo, sampleOffset, headOffset,
//         totalHeads, seqTotal)]  floats [scale, (p)]
// q, out, dq, dout [batch * qSeq, heads * headDim]; k, v, dk, dv [batch * kSeq, kvHeads * headDim];
// lse [batch, heads, qSeq] (fp32); qPos [qSeq], kPos [kSeq] int32 positions in the whole sequence,
// key j visible to query i when kPos[j] <= qPos[i]. The forward writes (merge 0) or folds the block
// into (merge 1) out and lse; the backward adds into dq, dk, dv (merge is ignored, as on the CPU).
//
// The positions live in device memory, so unlike the CPU kernel the launcher cannot check their
// values (0 <= position, and < seqTotal with dropout) without a copy back and a synchronisation:
// the kernels only compare them and feed them to the dropout index, never address memory with them,
// so a bad position gives wrong values but cannot write out of bounds.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "cuda/ops/attention_launch.h"
#include "cuda/ops/row_launch.h"

namespace mist::cuda {
namespace {

// The block's sizes (kernels::AttentionDims) and the rest.
struct BlockShape : kernels::AttentionDims {
  int merge;
  float scale;
  AttnCounts n;
  mist_attention::AttnDropout drop;
};

BlockShape ReadBlockShape(const LaunchArgs& a) {
  BlockShape s{};
  static_cast<kernels::AttentionDims&>(s) = kernels::ReadBlockDims(a);
  const int64_t merge = a.Int(6, "merge");
  if (merge != 0 && merge != 1) a.Fail("merge must be 0 or 1");
  s.merge = static_cast<int>(merge);
  CheckAttentionHeadDim(a, s.d);
  constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();
  if (s.q_seq > kIntMax || s.k_seq > kIntMax || s.heads > kIntMax) a.Fail("qSeq, kSeq and heads must be below 2^31");
  s.scale = static_cast<float>(a.Float(0, "scale"));
  // Optional dropout: ints [..., keyHi, keyLo, sampleOffset, headOffset, totalHeads, seqTotal]; floats [scale, p].
  s.drop = mist_attention::AttnDropout{};
  if (a.ints.size() > 7) s.drop = ReadAttnDropout(a, 7, 1, s.heads, a.Dim(12, "seqTotal"));
  s.n = AttnCountsOf(a, s.batch, s.q_seq, s.k_seq, s.heads, s.kv_heads, s.d);
  return s;
}

constexpr const char* kPrefix = "mist_attention_block";

void LaunchAttentionBlock(const LaunchArgs& a) {
  const BlockShape s = ReadBlockShape(a);
  const AttnForwardBuffers b = ReadForwardBuffers(a, s.n);
  const CUdeviceptr qpos = a.T(5, s.q_seq, "qPos");
  const CUdeviceptr kpos = a.T(6, s.k_seq, "kPos");
  const AttnTileInfo t = AttnTilesFor<mist_attention::FwdTiles>(s.d);
  const int q_seq = static_cast<int>(s.q_seq), k_seq = static_cast<int>(s.k_seq);
  const int heads = static_cast<int>(s.heads), kv_heads = static_cast<int>(s.kv_heads);
  LaunchKernel(AttnKernelName(a, kPrefix, "fwd", s.d), AttnGrid(a, s.batch * s.heads, s.q_seq, t.rows), AttnBlock(),
               static_cast<unsigned>(t.shared), b.out, b.lse, b.q, b.k, b.v, qpos, kpos, q_seq, k_seq, heads, kv_heads,
               s.scale, s.merge, s.drop);
}

void LaunchAttentionBlockBackward(const LaunchArgs& a) {
  const BlockShape s = ReadBlockShape(a);
  const AttnBackwardBuffers b = ReadBackwardBuffers(a, s.n);
  const CUdeviceptr qpos = a.T(9, s.q_seq, "qPos");
  const CUdeviceptr kpos = a.T(10, s.k_seq, "kPos");
  const int q_seq = static_cast<int>(s.q_seq), k_seq = static_cast<int>(s.k_seq);
  const int heads = static_cast<int>(s.heads), kv_heads = static_cast<int>(s.kv_heads);
  // The two passes read only the inputs and add into disjoint outputs, so their order does not matter.
  const AttnTileInfo tq = AttnTilesFor<mist_attention::DqTiles>(s.d);
  LaunchKernel(AttnKernelName(a, kPrefix, "bwd_dq", s.d), AttnGrid(a, s.batch * s.heads, s.q_seq, tq.rows),
               AttnBlock(), static_cast<unsigned>(tq.shared), b.dq, b.dout, b.q, b.k, b.v, b.out, b.lse, qpos, kpos, q_seq,
               k_seq, heads, kv_heads, s.scale, s.drop);
  const AttnTileInfo tkv = AttnTilesFor<mist_attention::DkvTiles>(s.d);
  LaunchKernel(AttnKernelName(a, kPrefix, "bwd_dkv", s.d), AttnGrid(a, s.batch * s.kv_heads, s.k_seq, tkv.cols),
               AttnBlock(), static_cast<unsigned>(tkv.shared), b.dk, b.dv, b.dout, b.q, b.k, b.v, b.out, b.lse, qpos, kpos,
               q_seq, k_seq, heads, kv_heads, s.scale, s.drop);
}

}  // namespace

MIST_REGISTER_CUDA_OP("attentionBlock", "xfxxxii", LaunchAttentionBlock);
MIST_REGISTER_CUDA_OP("attentionBlockBackward", "xxxxxxxxfii", LaunchAttentionBlockBackward);

}  // namespace mist::cuda
