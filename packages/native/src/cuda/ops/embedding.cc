// Launchers of the CUDA token/position embedding (kernels/embedding.cu), with the buffers and
// integers of the CPU kernels of the same names (kernels/embedding.cc, ops.ts):
//   embedding          [out x, tokens i, wte x, wpe X]   ints [rows, hidden, vocab, seq, maxPos, posOffset]
//   embeddingBackward  [dwte x, dwpe X, dout x, tokens i] ints as embedding; dwte/dwpe accumulate (+=)
// The tokens are on the device and are not checked here (the CPU kernel throws on a token outside
// the vocabulary): on CUDA such a row's output is NaN and the backward skips it (embedding.cu).
#include <algorithm>
#include <cstdint>

#include "cuda/launch.h"
#include "cuda/ops/row_launch.h"

namespace mist::cuda {
namespace {

struct EmbeddingShape {
  int64_t rows, hidden, vocab, seq, max_pos, offset;
};

EmbeddingShape ReadShape(const LaunchArgs& a) {
  EmbeddingShape s{};
  s.rows = a.Dim(0, "rows");
  s.hidden = a.Dim(1, "hidden");
  s.vocab = a.Dim(2, "vocab");
  s.seq = a.Dim(3, "seq");
  s.max_pos = a.Dim(4, "maxPos");
  s.offset = a.Int(5, "posOffset");
  return s;
}

void CheckPositions(const LaunchArgs& a, const EmbeddingShape& s) {
  if (s.offset < 0 || s.offset + s.seq > s.max_pos) a.Fail("positions exceed maxPos");
}

void LaunchEmbedding(const LaunchArgs& a) {
  const EmbeddingShape s = ReadShape(a);
  const CUdeviceptr out = a.T(0, CheckedCount(a, s.rows, s.hidden), "out");
  const CUdeviceptr tokens = a.T(1, s.rows, "tokens");
  const CUdeviceptr wte = a.T(2, CheckedCount(a, s.vocab, s.hidden), "wte");
  const CUdeviceptr wpe = a.OptT(3, CheckedCount(a, s.max_pos, s.hidden), "wpe");
  if (wpe != 0) CheckPositions(a, s);
  LaunchKernel(a.Variant("mist_embedding"), RowGrid(a, s.rows), RowBlock(s.hidden, 4, 256), 0, out, tokens, wte, wpe,
               s.hidden, s.vocab, s.seq, s.offset);
}

void LaunchEmbeddingBackward(const LaunchArgs& a) {
  const EmbeddingShape s = ReadShape(a);
  const CUdeviceptr dwte = a.T(0, CheckedCount(a, s.vocab, s.hidden), "dwte");
  const CUdeviceptr dwpe = a.OptT(1, CheckedCount(a, s.max_pos, s.hidden), "dwpe");
  const CUdeviceptr dout = a.T(2, CheckedCount(a, s.rows, s.hidden), "dout");
  const CUdeviceptr tokens = a.T(3, s.rows, "tokens");
  if (dwpe != 0) CheckPositions(a, s);
  // Column slices of up to 128 threads; then enough token buckets (a power of two, at most 64) to
  // give the device about four blocks per multiprocessor (embedding.cu explains the ownership).
  Dim3 block = RowBlock(s.hidden, 1, 128);
  Dim3 grid;
  grid.x = CeilDiv(static_cast<size_t>(s.hidden), block.x);
  const int64_t want = (4 * static_cast<int64_t>(DeviceMultiprocessors()) + grid.x - 1) / grid.x;
  int buckets = 1;
  while (buckets < 64 && buckets < want) buckets *= 2;
  grid.y = static_cast<unsigned>(buckets);
  LaunchKernel(a.Variant("mist_embedding_backward"), grid, block, 0, dwte, dwpe, dout, tokens, s.rows, s.hidden,
               s.vocab, s.seq, s.offset, buckets);
}

}  // namespace

MIST_REGISTER_CUDA_OP("embedding", "xixX", LaunchEmbedding);
MIST_REGISTER_CUDA_OP("embeddingBackward", "xXxi", LaunchEmbeddingBackward);

}  // namespace mist::cuda
