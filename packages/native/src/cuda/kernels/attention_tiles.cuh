// Tile sizes and shared-memory layouts of the CUDA attention kernels (kernels/attention.cu), shared
// with their launcher (ops/attention.cc) so the dynamic shared memory it requests is exactly what
// the kernels carve up. Plain C++ (no CUDA types): both g++ and nvcc include it.
//
// Every kernel runs kAttnThreads threads viewed as a 16 x 16 grid (tx = t % 16, ty = t / 16). A tile
// of rows x columns gives each thread rows [ty * rows/16, (ty + 1) * rows/16) and the columns
// tx + 16 * c, so all tile sizes are multiples of 16. Shared tiles of head-dimension width are stored
// with a leading dimension of D + 1 floats and score tiles with (columns + 1): the padding puts the
// 16 different rows that a half-warp reads at one feature in 16 different banks.
//
// AttnDropout is a kernel parameter passed by value: launcher and kernels see this one definition,
// so its layout is the same on both sides of the driver's parameter copy.
#pragma once
#include <stdint.h>

namespace mist_attention {

// Dropout on the attention probabilities, drawn as the CPU kernels draw it (kernels/attention.cc,
// kernels/ring_attention.cc): z = keep ? scale : 0 with keep = DropoutDraw24(key, index) >= threshold,
// index = ((g * totalHeads + H) * seq + P) * seq + Q for global sample g = sampleOffset + b, global
// head H = headOffset + h, query and key positions P, Q (row indices for attention, qPos/kPos for a
// ring block) and seq the sequence length the index spans (attention's seq, a block's seqTotal).
struct AttnDropout {
  uint64_t key;           // (keyHi << 32) | keyLo
  uint32_t threshold;     // p * 2^24, truncated as the CPU truncates it
  float scale;            // 1 / (1 - p) in fp32
  int64_t sample_offset;
  int64_t head_offset;
  int64_t total_heads;
  int64_t seq;
  int32_t enabled;        // 0: z = 1 everywhere (no dropout parameters were given)
  int32_t unused;
};
static_assert(sizeof(AttnDropout) == 56 && alignof(AttnDropout) == 8, "AttnDropout is copied byte for byte into the kernels' parameters");

constexpr int kAttnThreads = 256;

/** Head sizes with a compiled kernel. */
constexpr bool SupportedHeadDim(int d) { return d == 16 || d == 32 || d == 64 || d == 128; }

// Forward (FlashAttention-2 algorithm 1): a block owns kFwdRows queries and streams key/value tiles
// of kFwdCols keys. Shared: Q [rows][D+1], K and V [cols][D+1], P [rows][cols+1].
template <int D>
struct FwdTiles {
  static constexpr int kRows = 64;
  static constexpr int kCols = 64;
  static constexpr int kShared = (kRows * (D + 1) + 2 * kCols * (D + 1) + kRows * (kCols + 1)) * 4;
};

// Backward dQ pass: a block owns kRows queries of one head and streams key/value tiles. Shared:
// Q and dO [rows][D+1], K and V [cols][D+1], dS [rows][cols+1], lse and D [rows].
template <int D>
struct DqTiles {
  static constexpr int kRows = 64;
  static constexpr int kCols = D == 128 ? 32 : 64;
  static constexpr int kShared =
      (2 * kRows * (D + 1) + 2 * kCols * (D + 1) + kRows * (kCols + 1) + 2 * kRows) * 4;
};

// Backward dK/dV pass: a block owns kCols keys of one key/value head and streams query tiles of
// kRows queries of each query head of its group. Shared: K and V [cols][D+1], Q and dO [rows][D+1],
// P and dS [rows][cols+1], lse and D [rows].
template <int D>
struct DkvTiles {
  static constexpr int kRows = D == 128 ? 32 : 64;
  static constexpr int kCols = 64;
  static constexpr int kShared =
      (2 * kCols * (D + 1) + 2 * kRows * (D + 1) + 2 * kRows * (kCols + 1) + 2 * kRows) * 4;
};

}  // namespace mist_attention
