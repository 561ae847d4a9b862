// Helpers shared by the CUDA attention launchers (ops/attention.cc, ops/ring_attention.cc): the
// head-size check, the kernels' tile sizes and shared memory per head size, the grid of
// (groups x tiles), and the dropout parameters read exactly as the CPU kernels read them
// (kernels/dropout_rng.h ReadDropoutRng: the key, threshold p * 2^24 and scale 1 / (1 - p)).
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include "cuda/kernels/attention_tiles.cuh"
#include "cuda/launch.h"
#include "cuda/ops/row_launch.h"
#include "kernels/attention_args.h"

namespace mist::cuda {

inline void CheckAttentionHeadDim(const LaunchArgs& a, int64_t d) {
  if (!mist_attention::SupportedHeadDim(static_cast<int>(std::min<int64_t>(d, 1 << 20)))) {
    a.Fail("headDim must be 16, 32, 64 or 128 on CUDA, got " + std::to_string(d));
  }
}

/** Grid of groups (batch * heads or batch * kvHeads) x tiles: x allows 2^31 - 1 blocks, y 65535. */
inline Dim3 AttnGrid(const LaunchArgs& a, int64_t groups, int64_t rows, int tile) {
  const int64_t tiles = (rows + tile - 1) / tile;
  if (groups > std::numeric_limits<int32_t>::max()) a.Fail("batch * heads exceeds the 2^31 - 1 blocks of a CUDA grid");
  if (tiles > 65535) a.Fail(std::to_string(rows) + " rows need more than 65535 tiles of " + std::to_string(tile));
  Dim3 g;
  g.x = static_cast<unsigned>(groups);
  g.y = static_cast<unsigned>(tiles);
  return g;
}

inline Dim3 AttnBlock() {
  Dim3 b;
  b.x = mist_attention::kAttnThreads;
  return b;
}

/** `<prefix>_<pass>_d<D>_<dtype>`, e.g. mist_attention_block_fwd_d64_bf16. */
inline std::string AttnKernelName(const LaunchArgs& a, const char* prefix, const char* pass, int64_t d) {
  return a.Variant((std::string(prefix) + "_" + pass + "_d" + std::to_string(d)).c_str());
}

struct AttnTileInfo {
  int rows, cols, shared;
};

template <template <int> class Tiles>
AttnTileInfo AttnTilesFor(int64_t d) {
  switch (d) {
    case 16: return {Tiles<16>::kRows, Tiles<16>::kCols, Tiles<16>::kShared};
    case 32: return {Tiles<32>::kRows, Tiles<32>::kCols, Tiles<32>::kShared};
    case 64: return {Tiles<64>::kRows, Tiles<64>::kCols, Tiles<64>::kShared};
    default: return {Tiles<128>::kRows, Tiles<128>::kCols, Tiles<128>::kShared};  // d checked by CheckAttentionHeadDim
  }
}

/**
 * Dropout from ints [keyHi, keyLo, sampleOffset, headOffset, totalHeads] starting at `int_at` and p
 * at floats[`float_at`], with the CPU kernels' checks and messages; `seq` is the length the index
 * spans (attention's seq; a ring block's seqTotal, read by the caller).
 */
inline mist_attention::AttnDropout ReadAttnDropout(const LaunchArgs& a, size_t int_at, size_t float_at, int64_t heads,
                                                   int64_t seq) {
  const kernels::AttentionDropoutArgs args = kernels::ReadAttentionDropout(a, int_at, float_at, heads);
  mist_attention::AttnDropout d{};
  d.key = args.rng.key;
  d.threshold = args.rng.threshold;
  d.scale = args.rng.scale;
  d.sample_offset = args.sample_offset;
  d.head_offset = args.head_offset;
  d.total_heads = args.total_heads;
  d.seq = seq;
  d.enabled = 1;
  return d;
}

/** Elements of the attention tensors of one call: q/out/dq/dout, k/v/dk/dv, and lse. */
struct AttnCounts {
  int64_t q, kv, lse;
};

inline AttnCounts AttnCountsOf(const LaunchArgs& a, int64_t batch, int64_t q_seq, int64_t k_seq, int64_t heads, int64_t kv_heads, int64_t d) {
  const int64_t q_rows = CheckedCount(a, batch, q_seq), k_rows = CheckedCount(a, batch, k_seq);
  return {CheckedCount(a, q_rows, CheckedCount(a, heads, d)), CheckedCount(a, k_rows, CheckedCount(a, kv_heads, d)), CheckedCount(a, q_rows, heads)};
}

/** The forward's buffers [out, lse, q, k, v] (then the block's positions), checked against the counts. */
struct AttnForwardBuffers {
  CUdeviceptr out, lse, q, k, v;
};

inline AttnForwardBuffers ReadForwardBuffers(const LaunchArgs& a, const AttnCounts& n) {
  return {a.T(0, n.q, "out"), a.T(1, n.lse, "lse"), a.T(2, n.q, "q"), a.T(3, n.kv, "k"), a.T(4, n.kv, "v")};
}

/** The backward's buffers [dq, dk, dv, dout, q, k, v, out, lse] (then the block's positions). */
struct AttnBackwardBuffers {
  CUdeviceptr dq, dk, dv, dout, q, k, v, out, lse;
};

inline AttnBackwardBuffers ReadBackwardBuffers(const LaunchArgs& a, const AttnCounts& n) {
  return {a.T(0, n.q, "dq"), a.T(1, n.kv, "dk"), a.T(2, n.kv, "dv"), a.T(3, n.q, "dout"), a.T(4, n.q, "q"),
          a.T(5, n.kv, "k"), a.T(6, n.kv, "v"), a.T(7, n.q, "out"), a.T(8, n.lse, "lse")};
}

}  // namespace mist::cuda
