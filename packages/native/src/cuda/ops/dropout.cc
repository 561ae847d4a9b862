// Host-side launchers of the CUDA dropout ops (kernels in cuda/kernels/dropout.cu): dropout,
// dropoutAdd and dropoutBackward with the buffers, integer and float parameters of the CPU kernels
// in kernels/dropout.cc, and attentionProbsDropout with those of kernels/unfused_attention.cc
// (documented in kernels/ops.ts). The stream key, the drop threshold p * 2^24 and the scale
// 1 / (1 - p) are formed here exactly as kernels/dropout_rng.h forms them, and the draw itself is
// the CPU's (kernels/dropout_hash.h), so the masks equal the CPU's bit for bit. Every parameter the
// CPU kernel rejects is rejected here with the same condition before anything is launched.
#include <algorithm>
#include <cstdint>
#include <string>

#include "cuda/launch.h"
#include "cuda/ops/row_launch.h"

namespace mist::cuda {
namespace {

constexpr unsigned kThreads = 256;

/** Floats (32-bit words) of the mask of n elements: 4 mask bytes each. */
size_t MaskWords(int64_t n) { return static_cast<size_t>((n + 3) / 4); }

// The dropout stream as kernels/dropout_rng.h's ReadDropoutRng: key from ints [hi, lo] (unsigned
// 32-bit halves) at `intAt`, p from floats[floatAt].
struct Stream {
  uint64_t key;
  uint32_t threshold;  // an element is dropped when its 24-bit draw is below this
  float scale;         // 1 / (1 - p)
};

double ReadP(const LaunchArgs& a, size_t floatAt) {
  const double p = a.Float(floatAt, "p");
  if (!(p >= 0.0 && p < 1.0)) a.Fail("dropout probability p must be in [0, 1), got " + std::to_string(p));
  return p;
}

Stream ReadStream(const LaunchArgs& a, size_t intAt, size_t floatAt) {
  const int64_t hi = a.Int(intAt, "keyHi"), lo = a.Int(intAt + 1, "keyLo");
  if (hi < 0 || hi > 0xffffffffLL || lo < 0 || lo > 0xffffffffLL) a.Fail("keyHi and keyLo must be unsigned 32-bit values");
  const double p = ReadP(a, floatAt);
  Stream s;
  s.key = (static_cast<uint64_t>(hi) << 32) | static_cast<uint64_t>(lo);
  s.threshold = static_cast<uint32_t>(p * 16777216.0);
  s.scale = static_cast<float>(1.0 / (1.0 - p));
  return s;
}

// What dropout and dropoutAdd share: ints [rows, cols, rowOffset, keyHi, keyLo]; floats [p].
// Element k = r * cols + c draws index base + k, base = rowOffset * cols.
struct RowDraws {
  int64_t n;
  uint64_t base;
  Stream stream;
};

RowDraws ReadRowDraws(const LaunchArgs& a) {
  const int64_t rows = a.Dim(0, "rows"), cols = a.Dim(1, "cols"), off = a.Int(2, "rowOffset");
  if (off < 0) a.Fail("rowOffset must be >= 0");
  RowDraws d;
  d.n = CheckedCount(a, rows, cols);
  d.base = static_cast<uint64_t>(off) * static_cast<uint64_t>(cols);
  d.stream = ReadStream(a, 3, 0);
  return d;
}

// dropout: bufs [out, mask, x]. out = x * keep / (1 - p) (out may be x); mask = keep.
void LaunchDropout(const LaunchArgs& a) {
  const RowDraws d = ReadRowDraws(a);
  const size_t n = static_cast<size_t>(d.n);
  const CUdeviceptr out = a.T(0, n, "out"), mask = a.T(1, MaskWords(d.n), "mask"), x = a.T(2, n, "x");
  LaunchKernel(a.Variant("mist_dropout"), Dim3(StreamBlocks(static_cast<int64_t>(MaskWords(d.n)), kThreads)), Dim3(kThreads), 0, out, mask, x, d.n,
               d.base, d.stream.key, d.stream.threshold, d.stream.scale);
}

// dropoutAdd: bufs [out, mask, stream, branch]. out = stream + branch * keep / (1 - p) (out may be
// stream or branch); mask = keep.
void LaunchDropoutAdd(const LaunchArgs& a) {
  const RowDraws d = ReadRowDraws(a);
  const size_t n = static_cast<size_t>(d.n);
  const CUdeviceptr out = a.T(0, n, "out"), mask = a.T(1, MaskWords(d.n), "mask");
  const CUdeviceptr stream = a.T(2, n, "stream"), branch = a.T(3, n, "branch");
  LaunchKernel(a.Variant("mist_dropout_add"), Dim3(StreamBlocks(static_cast<int64_t>(MaskWords(d.n)), kThreads)), Dim3(kThreads), 0, out, mask,
               stream, branch, d.n, d.base, d.stream.key, d.stream.threshold, d.stream.scale);
}

// dropoutBackward: bufs [dx, mask, dy]; ints [n]; floats [p]. dx = dy * mask / (1 - p) (dx may be dy).
void LaunchDropoutBackward(const LaunchArgs& a) {
  const int64_t n = a.Dim(0, "n");
  const CUdeviceptr dx = a.T(0, static_cast<size_t>(n), "dx"), mask = a.T(1, MaskWords(n), "mask");
  const CUdeviceptr dy = a.T(2, static_cast<size_t>(n), "dy");
  const float scale = static_cast<float>(1.0 / (1.0 - ReadP(a, 0)));
  LaunchKernel(a.Variant("mist_dropout_backward"), Dim3(StreamBlocks(static_cast<int64_t>(MaskWords(n)), kThreads)), Dim3(kThreads), 0, dx, mask,
               dy, n, scale);
}

// attentionProbsDropout: bufs [out, mask, probs]; ints [batch, seq, heads, kvHeads, headDim, keyHi,
// keyLo, sampleOffset, headOffset, totalHeads]; floats [p]. out = probs * keep / (1 - p) over the
// [batch, heads, seq, seq] probabilities (out may be probs); element (b, h, i, j) draws index
// ((sampleOffset + b) * totalHeads + headOffset + h) * seq^2 + i * seq + j.
void LaunchAttentionProbsDropout(const LaunchArgs& a) {
  const int64_t batch = a.Dim(0, "batch"), seq = a.Dim(1, "seq"), heads = a.Dim(2, "heads");
  const int64_t kvHeads = a.Dim(3, "kvHeads");
  a.Dim(4, "headDim");  // unused here, but the CPU kernel requires it positive
  if (heads % kvHeads != 0) a.Fail("kvHeads must divide heads");
  const Stream stream = ReadStream(a, 5, 0);
  const int64_t sampleOffset = a.Int(7, "sampleOffset"), headOffset = a.Int(8, "headOffset");
  const int64_t totalHeads = a.Dim(9, "totalHeads");
  if (sampleOffset < 0 || headOffset < 0 || headOffset + heads > totalHeads) {
    a.Fail("sampleOffset must be >= 0 and headOffset + heads <= totalHeads");
  }
  const int64_t ss = CheckedCount(a, seq, seq);
  const int64_t n = CheckedCount(a, CheckedCount(a, batch, heads), ss);
  // The largest draw index must fit in 64 bits: (sampleOffset + batch) * totalHeads * seq^2.
  CheckedCount(a, CheckedCount(a, sampleOffset + batch, totalHeads), ss);
  const CUdeviceptr out = a.T(0, static_cast<size_t>(n), "out"), mask = a.T(1, MaskWords(n), "mask");
  const CUdeviceptr probs = a.T(2, static_cast<size_t>(n), "probs");
  LaunchKernel(a.Variant("mist_attention_probs_dropout"), Dim3(StreamBlocks(static_cast<int64_t>(MaskWords(n)), kThreads)), Dim3(kThreads), 0, out,
               mask, probs, n, ss, heads, totalHeads, sampleOffset, headOffset, stream.key, stream.threshold,
               stream.scale);
}

}  // namespace

MIST_REGISTER_CUDA_OP("dropout", "xmx", LaunchDropout);
MIST_REGISTER_CUDA_OP("dropoutAdd", "xmxx", LaunchDropoutAdd);
MIST_REGISTER_CUDA_OP("dropoutBackward", "xmx", LaunchDropoutBackward);
MIST_REGISTER_CUDA_OP("attentionProbsDropout", "xmx", LaunchAttentionProbsDropout);

}  // namespace mist::cuda
