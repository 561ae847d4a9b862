// The attention kernels' parameters as both backends read them (the CPU kernels attention.cc,
// unfused_attention.cc, ring_attention.cc and their CUDA launchers): the shape ints, the score scale
// and the dropout stream with its global offsets, with the same checks and messages on both.
//   attention and the unfused core: ints [batch, seq, heads, kvHeads, headDim, (keyHi, keyLo,
//     sampleOffset, headOffset, totalHeads)], floats [scale?, (p)]
//   a ring block: ints [batch, qSeq, kSeq, heads, kvHeads, headDim, merge, (keyHi, keyLo,
//     sampleOffset, headOffset, totalHeads, seqTotal)], floats [scale, (p)]
#pragma once
#include <cmath>
#include <cstdint>

#include "addon/param_reader.h"
#include "kernels/dropout_rng.h"

namespace mist {
namespace kernels {

struct AttentionDims {
  int64_t batch, q_seq, k_seq, heads, kv_heads, d;
  /** Query heads per key/value head. */
  int64_t group;
};

inline AttentionDims CheckedDims(const ParamReader& a, AttentionDims s) {
  if (s.heads % s.kv_heads != 0) a.Fail("kvHeads must divide heads");
  s.group = s.heads / s.kv_heads;
  return s;
}

/** ints [batch, seq, heads, kvHeads, headDim, ...]: queries and keys are the same seq rows. */
inline AttentionDims ReadAttentionDims(const ParamReader& a) {
  const int64_t seq = a.Dim(1, "seq");
  return CheckedDims(a, {a.Dim(0, "batch"), seq, seq, a.Dim(2, "heads"), a.Dim(3, "kvHeads"), a.Dim(4, "headDim"), 0});
}

/** ints [batch, qSeq, kSeq, heads, kvHeads, headDim, ...] of a ring block. */
inline AttentionDims ReadBlockDims(const ParamReader& a) {
  return CheckedDims(a, {a.Dim(0, "batch"), a.Dim(1, "qSeq"), a.Dim(2, "kSeq"), a.Dim(3, "heads"), a.Dim(4, "kvHeads"), a.Dim(5, "headDim"), 0});
}

/** floats[0] when given, else 1 / sqrt(headDim). */
inline float ReadAttentionScale(const ParamReader& a, int64_t d) {
  return a.floats.empty() ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(d))) : static_cast<float>(a.Float(0, "scale"));
}

/** The dropout of the probabilities: the stream and where this call's samples and heads sit in the whole batch. */
struct AttentionDropoutArgs {
  DropoutRng rng;
  int64_t sample_offset, head_offset, total_heads;

  /** The draw of (batch row b, local head h, query position i, key position j) over sequences of `seq`. */
  uint64_t Index(int64_t b, int64_t h, int64_t i, int64_t j, int64_t seq) const {
    return ((static_cast<uint64_t>(sample_offset + b) * total_heads + head_offset + h) * seq + i) * seq + j;
  }
  /** The dropout factor there: 0, or 1 / (1 - p). */
  float Z(int64_t b, int64_t h, int64_t i, int64_t j, int64_t seq) const { return rng.Keep(Index(b, h, i, j, seq)) ? rng.scale : 0.f; }
};

/** ints [keyHi, keyLo, sampleOffset, headOffset, totalHeads] from `int_at`, p at floats[`float_at`]. */
inline AttentionDropoutArgs ReadAttentionDropout(const ParamReader& a, size_t int_at, size_t float_at, int64_t heads) {
  AttentionDropoutArgs d{ReadDropoutRng(a, int_at, float_at), a.Int(int_at + 2, "sampleOffset"), a.Int(int_at + 3, "headOffset"),
                         a.Dim(int_at + 4, "totalHeads")};
  if (d.sample_offset < 0 || d.head_offset < 0 || d.head_offset + heads > d.total_heads) {
    a.Fail("sampleOffset must be >= 0 and headOffset + heads <= totalHeads");
  }
  return d;
}

}  // namespace kernels
}  // namespace mist
