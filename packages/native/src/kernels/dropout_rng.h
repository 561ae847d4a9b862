// The dropout generator: counter-based, so a mask element is a pure function of (stream key,
// element index). Every rank, tensor-parallel shard, sequence-parallel shard and pipeline split
// draws the same keep/drop decision for the same element of the same tensor, and a recomputed
// forward (activation checkpointing) or a backward that regenerates the mask (fused attention) sees
// exactly the forward's draws. Counter-based generation as in Salmon et al. 2011, "Parallel random
// numbers: as easy as 1, 2, 3"; the mixing function is SplitMix64's finaliser (Steele et al. 2014).
#pragma once
#include <cstdint>

#include "kernels/dropout_hash.h"
#include "addon/param_reader.h"

namespace mist {
namespace kernels {

struct DropoutRng {
  uint64_t key = 0;
  /** An element is dropped when its 24-bit uniform draw is below this (p * 2^24). */
  uint32_t threshold = 0;
  /** 1 / (1 - p): kept elements are scaled so the expectation is unchanged. */
  float scale = 1.f;

  bool Keep(uint64_t index) const { return DropoutDraw24(key, index) >= threshold; }
};

/** Reads the stream key from ints [hi, lo] (two unsigned 32-bit halves) and p from a float parameter. */
inline DropoutRng ReadDropoutRng(const ParamReader& a, size_t int_at, size_t float_at) {
  const int64_t hi = a.Int(int_at, "keyHi"), lo = a.Int(int_at + 1, "keyLo");
  if (hi < 0 || hi > 0xffffffffLL || lo < 0 || lo > 0xffffffffLL) a.Fail("keyHi and keyLo must be unsigned 32-bit values");
  const double p = a.Float(float_at, "p");
  if (!(p >= 0.0 && p < 1.0)) a.Fail("dropout probability p must be in [0, 1), got " + std::to_string(p));
  DropoutRng r;
  r.key = (static_cast<uint64_t>(hi) << 32) | static_cast<uint64_t>(lo);
  r.threshold = static_cast<uint32_t>(p * 16777216.0);
  r.scale = static_cast<float>(1.0 / (1.0 - p));
  return r;
}

}  // namespace kernels
}  // namespace mist
