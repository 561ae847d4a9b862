// Launchers of the CUDA unfused attention core's six products (kernels in
// cuda/kernels/unfused_attention.cu), with the buffers, integers and floats of the CPU kernels of
// the same names (kernels/unfused_attention.cc, documented in kernels/ops.ts). All take the core
// ints [batch, seq, heads, kvHeads, headDim]; q, out, dq, dout are [batch * seq, heads * headDim],
// k, v, dk, dv [batch * seq, kvHeads * headDim], scores/probs and their gradients [batch, heads,
// seq, seq]. Every output is written (not accumulated):
//   attentionScores           [scores, q, k]      floats [scale]  scores = scale q k^T (0 above the diagonal)
//   attentionScoresGradQ      [dq, dscores, k]    floats [scale]  dq = scale dscores k (keys j <= i)
//   attentionScoresGradK      [dk, dscores, q]    floats [scale]  dk = scale dscores^T q (queries i >= j), summed over each key/value head's query heads
//   attentionValues           [out, probs, v]                     out = probs v (keys j <= i)
//   attentionValuesGradProbs  [dprobs, dout, v]                   dprobs = dout v^T (0 above the diagonal)
//   attentionValuesGradV      [dv, dout, probs]                   dv = probs^T dout (queries i >= j), summed as dk
// Any headDim is supported (the kernels mask partial tiles); the scale is required where the CPU
// kernel requires it. The kernels take seq, heads, kvHeads and headDim as int.
#include <cstdint>
#include <limits>
#include <string>

#include "cuda/launch.h"
#include "kernels/attention_args.h"
#include "cuda/ops/row_launch.h"

namespace mist::cuda {
namespace {

constexpr int64_t kTile = 64;          // output tile of the kernels (kTile there)
constexpr unsigned kThreads = 256;     // threads per block (kThreads there)
constexpr int64_t kMaxGridYZ = 65535;  // CUDA's limit on gridDim.y and gridDim.z

struct CoreShape {
  int64_t batch, seq, heads, kv_heads, d;
  int64_t q_count, kv_count, s_count;  // elements of q-like, k-like and score-like buffers
};

// ints [batch, seq, heads, kvHeads, headDim], as the CPU kernel's ReadCore.
CoreShape ReadCore(const LaunchArgs& a) {
  const kernels::AttentionDims dims = kernels::ReadAttentionDims(a);
  CoreShape s{};
  s.batch = dims.batch;
  s.seq = dims.q_seq;
  s.heads = dims.heads;
  s.kv_heads = dims.kv_heads;
  s.d = dims.d;
  constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();
  if (s.seq > kIntMax || s.heads > kIntMax || s.d > kIntMax) a.Fail("seq, heads and headDim must be below 2^31");
  const int64_t rows = CheckedCount(a, s.batch, s.seq);
  s.q_count = CheckedCount(a, rows, CheckedCount(a, s.heads, s.d));
  s.kv_count = CheckedCount(a, rows, CheckedCount(a, s.kv_heads, s.d));
  s.s_count = CheckedCount(a, CheckedCount(a, s.batch, s.heads), CheckedCount(a, s.seq, s.seq));
  return s;
}

// Grid (groups, ceil(ys / 64), ceil(zs / 64)): x allows 2^31 - 1 blocks, y and z 65535.
Dim3 TileGrid(const LaunchArgs& a, int64_t groups, int64_t ys, int64_t zs) {
  const int64_t ty = (ys + kTile - 1) / kTile, tz = (zs + kTile - 1) / kTile;
  if (groups > std::numeric_limits<int32_t>::max()) a.Fail("batch * heads exceeds the 2^31 - 1 blocks of a CUDA grid");
  if (ty > kMaxGridYZ || tz > kMaxGridYZ) {
    a.Fail("seq = " + std::to_string(a.ints[1]) + ", headDim = " + std::to_string(a.ints[4]) + " need more than 65535 tiles of 64");
  }
  Dim3 g;
  g.x = static_cast<unsigned>(groups);
  g.y = static_cast<unsigned>(ty);
  g.z = static_cast<unsigned>(tz);
  return g;
}

float Scale(const LaunchArgs& a) { return static_cast<float>(a.Float(0, "scale")); }

// out[b, h, i, j] = factor * x_i . y_j (j <= i, else 0): one block per (b, h, query tile, key tile).
void RowDots(const LaunchArgs& a, const CoreShape& s, CUdeviceptr out, CUdeviceptr x, CUdeviceptr y, float factor) {
  const int seq = static_cast<int>(s.seq), heads = static_cast<int>(s.heads), kv_heads = static_cast<int>(s.kv_heads),
            d = static_cast<int>(s.d);
  LaunchKernel(a.Variant("mist_unfused_row_dots"), TileGrid(a, s.batch * s.heads, s.seq, s.seq), Dim3(kThreads), 0, out, x, y,
               seq, heads, kv_heads, d, factor);
}

// out_i = factor * sum_{j <= i} w_ij y_j: one block per (b, h, query tile, feature tile).
void WeightedRows(const LaunchArgs& a, const CoreShape& s, CUdeviceptr out, CUdeviceptr w, CUdeviceptr y, float factor) {
  const int seq = static_cast<int>(s.seq), heads = static_cast<int>(s.heads), kv_heads = static_cast<int>(s.kv_heads),
            d = static_cast<int>(s.d);
  LaunchKernel(a.Variant("mist_unfused_weighted_rows"), TileGrid(a, s.batch * s.heads, s.seq, s.d), Dim3(kThreads), 0, out, w,
               y, seq, heads, kv_heads, d, factor);
}

// out_j = factor * sum over the group's query heads and i >= j of w_ij x_i: one block per
// (b, key/value head, key tile, feature tile), which sums the heads in order (deterministic).
void KeyRows(const LaunchArgs& a, const CoreShape& s, CUdeviceptr out, CUdeviceptr w, CUdeviceptr x, float factor) {
  const int seq = static_cast<int>(s.seq), heads = static_cast<int>(s.heads), kv_heads = static_cast<int>(s.kv_heads),
            d = static_cast<int>(s.d);
  LaunchKernel(a.Variant("mist_unfused_key_rows"), TileGrid(a, s.batch * s.kv_heads, s.seq, s.d), Dim3(kThreads), 0, out, w, x,
               seq, heads, kv_heads, d, factor);
}

// attentionScores: bufs [scores, q, k]; floats [scale]. scores = scale q k^T, 0 above the diagonal.
void LaunchScores(const LaunchArgs& a) {
  const CoreShape s = ReadCore(a);
  const float scale = Scale(a);
  const CUdeviceptr scores = a.T(0, s.s_count, "scores");
  const CUdeviceptr q = a.T(1, s.q_count, "q");
  const CUdeviceptr k = a.T(2, s.kv_count, "k");
  RowDots(a, s, scores, q, k, scale);
}

// attentionScoresGradQ: bufs [dq, dscores, k]; floats [scale]. dq = scale dscores k.
void LaunchScoresGradQ(const LaunchArgs& a) {
  const CoreShape s = ReadCore(a);
  const float scale = Scale(a);
  const CUdeviceptr dq = a.T(0, s.q_count, "dq");
  const CUdeviceptr ds = a.T(1, s.s_count, "dscores");
  const CUdeviceptr k = a.T(2, s.kv_count, "k");
  WeightedRows(a, s, dq, ds, k, scale);
}

// attentionScoresGradK: bufs [dk, dscores, q]; floats [scale]. dk = scale dscores^T q.
void LaunchScoresGradK(const LaunchArgs& a) {
  const CoreShape s = ReadCore(a);
  const float scale = Scale(a);
  const CUdeviceptr dk = a.T(0, s.kv_count, "dk");
  const CUdeviceptr ds = a.T(1, s.s_count, "dscores");
  const CUdeviceptr q = a.T(2, s.q_count, "q");
  KeyRows(a, s, dk, ds, q, scale);
}

// attentionValues: bufs [out, probs, v]. out = probs v.
void LaunchValues(const LaunchArgs& a) {
  const CoreShape s = ReadCore(a);
  const CUdeviceptr out = a.T(0, s.q_count, "out");
  const CUdeviceptr p = a.T(1, s.s_count, "probs");
  const CUdeviceptr v = a.T(2, s.kv_count, "v");
  WeightedRows(a, s, out, p, v, 1.f);
}

// attentionValuesGradProbs: bufs [dprobs, dout, v]. dprobs = dout v^T, 0 above the diagonal.
void LaunchValuesGradProbs(const LaunchArgs& a) {
  const CoreShape s = ReadCore(a);
  const CUdeviceptr dp = a.T(0, s.s_count, "dprobs");
  const CUdeviceptr dout = a.T(1, s.q_count, "dout");
  const CUdeviceptr v = a.T(2, s.kv_count, "v");
  RowDots(a, s, dp, dout, v, 1.f);
}

// attentionValuesGradV: bufs [dv, dout, probs]. dv = probs^T dout.
void LaunchValuesGradV(const LaunchArgs& a) {
  const CoreShape s = ReadCore(a);
  const CUdeviceptr dv = a.T(0, s.kv_count, "dv");
  const CUdeviceptr dout = a.T(1, s.q_count, "dout");
  const CUdeviceptr p = a.T(2, s.s_count, "probs");
  KeyRows(a, s, dv, p, dout, 1.f);
}

}  // namespace

MIST_REGISTER_CUDA_OP("attentionScores", "xxx", LaunchScores);
MIST_REGISTER_CUDA_OP("attentionScoresGradQ", "xxx", LaunchScoresGradQ);
MIST_REGISTER_CUDA_OP("attentionScoresGradK", "xxx", LaunchScoresGradK);
MIST_REGISTER_CUDA_OP("attentionValues", "xxx", LaunchValues);
MIST_REGISTER_CUDA_OP("attentionValuesGradProbs", "xxx", LaunchValuesGradProbs);
MIST_REGISTER_CUDA_OP("attentionValuesGradV", "xxx", LaunchValuesGradV);

}  // namespace mist::cuda
