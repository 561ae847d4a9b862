// Launchers of the CUDA vocabulary-parallel embedding / position / cross-entropy kernels
// (kernels/vocab_parallel.cu), with the buffers, integers and floats of the CPU kernels of the same
// names (kernels/vocab_parallel.cc, ops.ts):
//   embeddingShard           [out x, tokens i, wte x]                  ints [rows, hidden, vocab, lo, hi]
//   embeddingShardBackward   [dwte x, dout x, tokens i]                ints as embeddingShard; dwte accumulates
//   positionAdd              [x x, wpe x, positions I]                 ints [rows, hidden, seq, first]; x accumulates
//   positionGrad             [dwpe x, dout x, positions I]             ints as positionAdd; dwpe accumulates
//   crossEntropyShardMax     [max f, logits x]                         ints [rows, vocabLocal]
//   crossEntropyShardSums    [sums f (2 rows), logits x, max f, targets i]  ints [rows, vocabLocal, lo]
//   crossEntropyShardFinish  [lossRows f, dlogits X, logits x, max f, sums f, targets i]
//                            ints [rows, vocabLocal, lo]; floats [gradScale] (1 when absent)
// The wpe table's rows (maxPos) are its length / hidden, as on the CPU. Tokens, targets and position
// tables are on the device and are not checked here (the CPU kernels throw naming the row): on CUDA
// a token outside the vocabulary or a table position outside wpe gives a NaN output row (skipped by
// the backward), a target below -1 NaN sums, loss and gradient row (vocab_parallel.cu).
#include <algorithm>
#include <cstdint>
#include <string>

#include "cuda/launch.h"
#include "cuda/ops/row_launch.h"

namespace mist::cuda {
namespace {

struct Shard {
  int64_t rows, hidden, vocab, lo, hi;
};

Shard ReadShard(const LaunchArgs& a) {
  Shard s{a.Dim(0, "rows"), a.Dim(1, "hidden"), a.Dim(2, "vocab"), a.Int(3, "lo"), a.Int(4, "hi")};
  if (s.lo < 0 || s.hi <= s.lo || s.hi > s.vocab) {
    a.Fail("the shard [lo, hi) = [" + std::to_string(s.lo) + ", " + std::to_string(s.hi) +
           ") must be a non-empty range inside [0, vocab = " + std::to_string(s.vocab) + ")");
  }
  return s;
}

// Grid of the backward scatters: column slices of up to 128 threads, then enough row buckets (a
// power of two, at most 64) to give the device about four blocks per multiprocessor (vocab_parallel.cu
// explains the ownership that keeps the order of the additions fixed). `tableRows` bounds the useful
// buckets: more buckets than table rows would leave threads with nothing to own.
void ScatterShape(int64_t hidden, int64_t tableRows, Dim3* grid, Dim3* block, int* buckets) {
  *block = RowBlock(hidden, 1, 128);
  grid->x = CeilDiv(static_cast<size_t>(hidden), block->x);
  const int64_t want = (4 * static_cast<int64_t>(DeviceMultiprocessors()) + grid->x - 1) / grid->x;
  int b = 1;
  while (b < 64 && b < want && 2 * b <= tableRows) b *= 2;
  *buckets = b;
  grid->y = static_cast<unsigned>(b);
}

void LaunchEmbeddingShard(const LaunchArgs& a) {
  const Shard s = ReadShard(a);
  const CUdeviceptr out = a.T(0, CheckedCount(a, s.rows, s.hidden), "out");
  const CUdeviceptr tokens = a.T(1, s.rows, "tokens");
  const CUdeviceptr wte = a.T(2, CheckedCount(a, s.hi - s.lo, s.hidden), "wte");
  LaunchKernel(a.Variant("mist_embedding_shard"), RowGrid(a, s.rows), RowBlock(s.hidden, 4, 256), 0, out, tokens, wte,
               s.hidden, s.vocab, s.lo, s.hi);
}

void LaunchEmbeddingShardBackward(const LaunchArgs& a) {
  const Shard s = ReadShard(a);
  const CUdeviceptr dwte = a.T(0, CheckedCount(a, s.hi - s.lo, s.hidden), "dwte");
  const CUdeviceptr dout = a.T(1, CheckedCount(a, s.rows, s.hidden), "dout");
  const CUdeviceptr tokens = a.T(2, s.rows, "tokens");
  Dim3 grid, block;
  int buckets = 1;
  ScatterShape(s.hidden, s.hi - s.lo, &grid, &block, &buckets);
  LaunchKernel(a.Variant("mist_embedding_shard_backward"), grid, block, 0, dwte, dout, tokens, s.rows, s.hidden, s.lo,
               s.hi, buckets);
}

struct Positions {
  int64_t rows, hidden, seq, first, maxPos;
  CUdeviceptr table;
};

// As the CPU's ReadPositions: maxPos = (length of wpe) / hidden; positions (seq entries) optional.
// Without a table the positions used are (first + r) % seq for r < rows, checked here against maxPos
// exactly as the CPU checks them; with one they are on the device (the kernels guard them).
Positions ReadPositions(const LaunchArgs& a, size_t wpeSlot, const char* wpeName) {
  Positions p{a.Dim(0, "rows"), a.Dim(1, "hidden"), a.Dim(2, "seq"), a.Int(3, "first"), 0, 0};
  if (p.first < 0) a.Fail("first must be >= 0, got " + std::to_string(p.first));
  (void)a.T(wpeSlot, 1, wpeName);
  p.maxPos = static_cast<int64_t>(a.tensors[wpeSlot].count) / p.hidden;
  if (p.maxPos == 0) {
    a.Fail(std::string("buffer ") + wpeName + " holds " + std::to_string(a.tensors[wpeSlot].count) +
           " elements, fewer than one row of hidden = " + std::to_string(p.hidden));
  }
  p.table = a.OptT(2, p.seq, "positions");
  if (p.table == 0) {
    // The largest of (first + r) % seq over r < min(rows, seq): a run of n consecutive indices
    // from first % seq that either stays below seq or wraps (then seq - 1 is among them).
    const int64_t n = std::min(p.rows, p.seq), start = p.first % p.seq;
    const int64_t largest = start + n - 1 < p.seq ? start + n - 1 : p.seq - 1;
    if (largest >= p.maxPos) {
      a.Fail("position " + std::to_string(largest) + " is outside the " + wpeName + " table of " + std::to_string(p.maxPos) +
             " rows");
    }
  }
  return p;
}

void LaunchPositionAdd(const LaunchArgs& a) {
  const Positions p = ReadPositions(a, 1, "wpe");
  const CUdeviceptr x = a.T(0, CheckedCount(a, p.rows, p.hidden), "x");
  const CUdeviceptr wpe = a.T(1, CheckedCount(a, p.maxPos, p.hidden), "wpe");
  LaunchKernel(a.Variant("mist_position_add"), RowGrid(a, p.rows), RowBlock(p.hidden, 4, 256), 0, x, wpe, p.table,
               p.hidden, p.seq, p.first, p.maxPos);
}

void LaunchPositionGrad(const LaunchArgs& a) {
  const Positions p = ReadPositions(a, 0, "dwpe");
  const CUdeviceptr dwpe = a.T(0, CheckedCount(a, p.maxPos, p.hidden), "dwpe");
  const CUdeviceptr dout = a.T(1, CheckedCount(a, p.rows, p.hidden), "dout");
  Dim3 grid, block;
  int buckets = 1;
  ScatterShape(p.hidden, p.maxPos, &grid, &block, &buckets);
  LaunchKernel(a.Variant("mist_position_grad"), grid, block, 0, dwpe, dout, p.table, p.rows, p.hidden, p.seq, p.first,
               p.maxPos, buckets);
}

void LaunchCrossEntropyShardMax(const LaunchArgs& a) {
  const int64_t rows = a.Dim(0, "rows"), v = a.Dim(1, "vocabLocal");
  const CUdeviceptr max = a.T(0, rows, "max");
  const CUdeviceptr logits = a.T(1, CheckedCount(a, rows, v), "logits");
  LaunchKernel(a.Variant("mist_cross_entropy_shard_max"), RowGrid(a, rows), RowBlock(v, 4, 1024), 0, max, logits, v);
}

void LaunchCrossEntropyShardSums(const LaunchArgs& a) {
  const int64_t rows = a.Dim(0, "rows"), v = a.Dim(1, "vocabLocal"), lo = a.Int(2, "lo");
  const CUdeviceptr sums = a.T(0, CheckedCount(a, 2, rows), "sums");
  const CUdeviceptr logits = a.T(1, CheckedCount(a, rows, v), "logits");
  const CUdeviceptr max = a.T(2, rows, "max");
  const CUdeviceptr targets = a.T(3, rows, "targets");
  LaunchKernel(a.Variant("mist_cross_entropy_shard_sums"), RowGrid(a, rows), RowBlock(v, 4, 1024), 0, sums, logits, max,
               targets, rows, v, lo);
}

void LaunchCrossEntropyShardFinish(const LaunchArgs& a) {
  const int64_t rows = a.Dim(0, "rows"), v = a.Dim(1, "vocabLocal"), lo = a.Int(2, "lo");
  const int64_t n = CheckedCount(a, rows, v);
  const CUdeviceptr loss = a.T(0, rows, "lossRows");
  const CUdeviceptr dlogits = a.OptT(1, n, "dlogits");
  const CUdeviceptr logits = a.T(2, n, "logits");
  const CUdeviceptr max = a.T(3, rows, "max");
  const CUdeviceptr sums = a.T(4, CheckedCount(a, 2, rows), "sums");
  const CUdeviceptr targets = a.T(5, rows, "targets");
  const float scale = a.floats.empty() ? 1.f : static_cast<float>(a.Float(0, "gradScale"));
  // Without dlogits only thread 0 of each block works (the loss): one warp per row suffices.
  const Dim3 block = dlogits != 0 ? RowBlock(v, 4, 1024) : RowBlock(1, 1, 32);
  LaunchKernel(a.Variant("mist_cross_entropy_shard_finish"), RowGrid(a, rows), block, 0, loss, dlogits, logits, max,
               sums, targets, rows, v, lo, scale);
}

}  // namespace

MIST_REGISTER_CUDA_OP("embeddingShard", "xix", LaunchEmbeddingShard);
MIST_REGISTER_CUDA_OP("embeddingShardBackward", "xxi", LaunchEmbeddingShardBackward);
MIST_REGISTER_CUDA_OP("positionAdd", "xxI", LaunchPositionAdd);
MIST_REGISTER_CUDA_OP("positionGrad", "xxI", LaunchPositionGrad);
MIST_REGISTER_CUDA_OP("crossEntropyShardMax", "fx", LaunchCrossEntropyShardMax);
MIST_REGISTER_CUDA_OP("crossEntropyShardSums", "fxfi", LaunchCrossEntropyShardSums);
MIST_REGISTER_CUDA_OP("crossEntropyShardFinish", "fXxffi", LaunchCrossEntropyShardFinish);

}  // namespace mist::cuda
