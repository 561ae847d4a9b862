// Launchers of the CUDA causal grouped-query attention (kernels/attention.cu, FlashAttention-2 style),
// with the buffers, integers and floats of the CPU kernels of the same names (kernels/attention.cc,
// ops.ts):
//   attention          [out x, lse f, q x, k x, v x]  ints [batch, seq, heads, kvHeads, headDim]  floats [scale?]
//   attentionBackward  [dq x, dk x, dv x, dout x, q x, k x, v x, out x, lse f]  ints and floats as attention
// q, out, dq, dout are [batch * seq, heads * headDim]; k, v, dk, dv [batch * seq, kvHeads * headDim];
// lse [batch, heads, seq] (fp32). out, lse, dq, dk, dv are written. The scale defaults to
// 1 / sqrt(headDim). Head sizes 16, 32, 64 and 128 have kernels; dropout (the optional ints
// [keyHi, keyLo, sampleOffset, headOffset, totalHeads] and float p) is not implemented on CUDA.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "cuda/kernels/attention_tiles.cuh"
#include "cuda/launch.h"
#include "cuda/ops/row_launch.h"

namespace mist::cuda {
namespace {

struct AttnShape {
  int64_t batch, seq, heads, kv_heads, d;
  float scale;
  int64_t q_count, kv_count, lse_count;
};

AttnShape ReadShape(const LaunchArgs& a) {
  AttnShape s{};
  s.batch = a.Dim(0, "batch");
  s.seq = a.Dim(1, "seq");
  s.heads = a.Dim(2, "heads");
  s.kv_heads = a.Dim(3, "kvHeads");
  s.d = a.Dim(4, "headDim");
  if (s.heads % s.kv_heads != 0) a.Fail("kvHeads must divide heads");
  if (a.ints.size() > 5) a.Fail("dropout is not implemented on CUDA; use p = 0");
  if (!mist_attention::SupportedHeadDim(static_cast<int>(std::min<int64_t>(s.d, 1 << 20)))) {
    a.Fail("headDim must be 16, 32, 64 or 128 on CUDA, got " + std::to_string(s.d));
  }
  // The kernels take seq, heads and kvHeads as int and index rows with 64-bit offsets.
  constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();
  if (s.seq > kIntMax || s.heads > kIntMax) a.Fail("seq and heads must be below 2^31");
  s.scale = a.floats.empty() ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.d)))
                             : static_cast<float>(a.Float(0, "scale"));
  const int64_t rows = CheckedCount(a, s.batch, s.seq);
  s.q_count = CheckedCount(a, rows, CheckedCount(a, s.heads, s.d));
  s.kv_count = CheckedCount(a, rows, CheckedCount(a, s.kv_heads, s.d));
  s.lse_count = CheckedCount(a, rows, s.heads);
  return s;
}

/** Grid of (batch * heads) x tiles: x allows 2^31 - 1 blocks, y 65535. */
Dim3 AttnGrid(const LaunchArgs& a, int64_t groups, int64_t seq, int tile) {
  const int64_t tiles = (seq + tile - 1) / tile;
  if (groups > std::numeric_limits<int32_t>::max()) a.Fail("batch * heads exceeds the 2^31 - 1 blocks of a CUDA grid");
  if (tiles > 65535) a.Fail("seq = " + std::to_string(seq) + " needs more than 65535 tiles of " + std::to_string(tile));
  Dim3 g;
  g.x = static_cast<unsigned>(groups);
  g.y = static_cast<unsigned>(tiles);
  return g;
}

Dim3 AttnBlock() {
  Dim3 b;
  b.x = mist_attention::kAttnThreads;
  return b;
}

std::string KernelName(const LaunchArgs& a, const char* pass, int64_t d) {
  return a.Variant((std::string("mist_attention_") + pass + "_d" + std::to_string(d)).c_str());
}

struct TileInfo {
  int rows, cols, shared;
};

template <template <int> class Tiles>
TileInfo TilesFor(int64_t d) {
  switch (d) {
    case 16: return {Tiles<16>::kRows, Tiles<16>::kCols, Tiles<16>::kShared};
    case 32: return {Tiles<32>::kRows, Tiles<32>::kCols, Tiles<32>::kShared};
    case 64: return {Tiles<64>::kRows, Tiles<64>::kCols, Tiles<64>::kShared};
    default: return {Tiles<128>::kRows, Tiles<128>::kCols, Tiles<128>::kShared};  // d checked by ReadShape
  }
}

void LaunchAttention(const LaunchArgs& a) {
  const AttnShape s = ReadShape(a);
  const CUdeviceptr out = a.T(0, s.q_count, "out");
  const CUdeviceptr lse = a.T(1, s.lse_count, "lse");
  const CUdeviceptr q = a.T(2, s.q_count, "q");
  const CUdeviceptr k = a.T(3, s.kv_count, "k");
  const CUdeviceptr v = a.T(4, s.kv_count, "v");
  const TileInfo t = TilesFor<mist_attention::FwdTiles>(s.d);
  const int seq = static_cast<int>(s.seq), heads = static_cast<int>(s.heads), kv_heads = static_cast<int>(s.kv_heads);
  LaunchKernel(KernelName(a, "fwd", s.d), AttnGrid(a, s.batch * s.heads, s.seq, t.rows), AttnBlock(),
               static_cast<unsigned>(t.shared), out, lse, q, k, v, seq, heads, kv_heads, s.scale);
}

void LaunchAttentionBackward(const LaunchArgs& a) {
  const AttnShape s = ReadShape(a);
  const CUdeviceptr dq = a.T(0, s.q_count, "dq");
  const CUdeviceptr dk = a.T(1, s.kv_count, "dk");
  const CUdeviceptr dv = a.T(2, s.kv_count, "dv");
  const CUdeviceptr dout = a.T(3, s.q_count, "dout");
  const CUdeviceptr q = a.T(4, s.q_count, "q");
  const CUdeviceptr k = a.T(5, s.kv_count, "k");
  const CUdeviceptr v = a.T(6, s.kv_count, "v");
  const CUdeviceptr out = a.T(7, s.q_count, "out");
  const CUdeviceptr lse = a.T(8, s.lse_count, "lse");
  const int seq = static_cast<int>(s.seq), heads = static_cast<int>(s.heads), kv_heads = static_cast<int>(s.kv_heads);
  // The two passes read only the inputs and write disjoint outputs, so their order does not matter.
  const TileInfo tq = TilesFor<mist_attention::DqTiles>(s.d);
  LaunchKernel(KernelName(a, "bwd_dq", s.d), AttnGrid(a, s.batch * s.heads, s.seq, tq.rows), AttnBlock(),
               static_cast<unsigned>(tq.shared), dq, dout, q, k, v, out, lse, seq, heads, kv_heads, s.scale);
  const TileInfo tkv = TilesFor<mist_attention::DkvTiles>(s.d);
  LaunchKernel(KernelName(a, "bwd_dkv", s.d), AttnGrid(a, s.batch * s.kv_heads, s.seq, tkv.cols), AttnBlock(),
               static_cast<unsigned>(tkv.shared), dk, dv, dout, q, k, v, out, lse, seq, heads, kv_heads, s.scale);
}

}  // namespace

MIST_REGISTER_CUDA_OP("attention", "xfxxx", LaunchAttention);
MIST_REGISTER_CUDA_OP("attentionBackward", "xxxxxxxxf", LaunchAttentionBackward);

}  // namespace mist::cuda
