// Token embedding plus optional learned position embedding (GPT-2: Radford et al. 2019).
//   out[r, :] = wte[tokens[r], :] + wpe[posOffset + r % seq, :]
// The backward scatters into the tables; each task owns a block of hidden columns and walks the
// rows in order, so repeated tokens accumulate in a fixed order whatever the thread count.
#include <algorithm>
#include <string>

#include "kernels/op_args.h"
#include "kernels/thread_pool.h"

namespace mist {
namespace kernels {
namespace {

void CheckTokens(const OpArgs& a, const int32_t* tokens, int64_t rows, int64_t vocab) {
  for (int64_t r = 0; r < rows; ++r) {
    if (tokens[r] < 0 || tokens[r] >= vocab) {
      a.Fail("token " + std::to_string(tokens[r]) + " at row " + std::to_string(r) + " is outside the vocabulary of " +
             std::to_string(vocab));
    }
  }
}

// embedding: bufs [out, tokens(i32), wte, wpe?]; ints [rows, hidden, vocab, seq, maxPos, posOffset].
void EmbeddingOp(const OpArgs& a) {
  const int64_t rows = a.Dim(0, "rows"), hidden = a.Dim(1, "hidden"), vocab = a.Dim(2, "vocab");
  const int64_t seq = a.Dim(3, "seq"), max_pos = a.Dim(4, "maxPos"), offset = a.Int(5, "posOffset");
  float* out = a.F(0, rows * hidden, "out");
  const int32_t* tokens = a.I32(1, rows, "tokens");
  const float* wte = a.F(2, vocab * hidden, "wte");
  const float* wpe = a.OptF(3, max_pos * hidden, "wpe");
  if (wpe && (offset < 0 || offset + seq > max_pos)) a.Fail("positions exceed maxPos");
  CheckTokens(a, tokens, rows, vocab);
  ParallelFor(rows, std::max<int64_t>(1, 8192 / hidden), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const float* e = wte + static_cast<int64_t>(tokens[r]) * hidden;
      float* o = out + r * hidden;
      if (wpe) {
        const float* p = wpe + (offset + r % seq) * hidden;
        for (int64_t c = 0; c < hidden; ++c) o[c] = e[c] + p[c];
      } else {
        std::copy(e, e + hidden, o);
      }
    }
  });
}

// embeddingBackward: bufs [dwte, dwpe?, dout, tokens(i32)]; ints as embedding. Accumulates.
void EmbeddingBackwardOp(const OpArgs& a) {
  const int64_t rows = a.Dim(0, "rows"), hidden = a.Dim(1, "hidden"), vocab = a.Dim(2, "vocab");
  const int64_t seq = a.Dim(3, "seq"), max_pos = a.Dim(4, "maxPos"), offset = a.Int(5, "posOffset");
  float* dwte = a.F(0, vocab * hidden, "dwte");
  float* dwpe = a.OptF(1, max_pos * hidden, "dwpe");
  const float* dout = a.F(2, rows * hidden, "dout");
  const int32_t* tokens = a.I32(3, rows, "tokens");
  if (dwpe && (offset < 0 || offset + seq > max_pos)) a.Fail("positions exceed maxPos");
  CheckTokens(a, tokens, rows, vocab);
  constexpr int64_t kBlock = 16;
  const int64_t blocks = (hidden + kBlock - 1) / kBlock;
  ParallelFor(blocks, 1, [&](int64_t blo, int64_t bhi) {
    const int64_t c0 = blo * kBlock, c1 = std::min(hidden, bhi * kBlock);
    for (int64_t r = 0; r < rows; ++r) {
      const float* g = dout + r * hidden;
      float* e = dwte + static_cast<int64_t>(tokens[r]) * hidden;
      for (int64_t c = c0; c < c1; ++c) e[c] += g[c];
      if (dwpe) {
        float* p = dwpe + (offset + r % seq) * hidden;
        for (int64_t c = c0; c < c1; ++c) p[c] += g[c];
      }
    }
  });
}

}  // namespace

MIST_REGISTER_OP("embedding", EmbeddingOp);
MIST_REGISTER_OP("embeddingBackward", EmbeddingBackwardOp);

}  // namespace kernels
}  // namespace mist
