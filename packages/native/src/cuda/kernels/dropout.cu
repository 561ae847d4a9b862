// Dropout (Srivastava et al. 2014) on CUDA, the device side of cuda/ops/dropout.cc and the twins of
// the CPU kernels kernels/dropout.cc (dropout, dropoutAdd, dropoutBackward) and
// kernels/unfused_attention.cc (attentionProbsDropout):
//   dropout:               out = keep ? x * scale : 0,                  mask = keep
//   dropoutAdd:            out = stream + (keep ? branch * scale : 0),  mask = keep
//   attentionProbsDropout: out = keep ? probs * scale : 0,              mask = keep
//   dropoutBackward:       dx = mask ? dy * scale : 0
// scale = 1 / (1 - p) and the drop threshold p * 2^24 come from the launcher, computed as
// kernels/dropout_rng.h does; keep = DropoutDraw24(key, index) >= threshold with the draw shared
// with the CPU (kernels/dropout_hash.h), so both backends drop exactly the same elements. The
// element index of the draw: (rowOffset + r) * cols + c for dropout/dropoutAdd (base + k, k the
// flat position), ((sampleOffset + b) * totalHeads + headOffset + h) * seq^2 + e for the attention
// probabilities (b, h the call's sample and head, e the position in the head's seq x seq block).
//
// Masks are one byte per element (1 kept, 0 dropped), packed 4 per 32-bit word in memory order as
// the CPU writes them (byte q of word w is element 4w + q; the GPU is little-endian like the host).
// A thread owns whole words: it draws the (up to) 4 elements of a word, writes their values and
// stores the word at once; the last word of an n that is not a multiple of 4 is written byte by
// byte, so its bytes past n keep whatever they held (as on the CPU). Outputs may alias their value
// inputs (out = x, out = stream or branch, dx = dy): each element is read and written by the same
// thread, and no pointer is __restrict. Grid-stride loops over words: any grid covers any n.
#include <cstdint>

#include "dtype.cuh"
#include "kernels/dropout_hash.h"

namespace mist_cuda {
namespace {

__device__ __forceinline__ int64_t FirstIndex() { return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t GridStride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// Stores the mask bytes of the `count` (1..4) elements of word w, packed in `bits` (byte q = keep of
// element 4w + q): the whole word when it is full, else only its first `count` bytes.
__device__ __forceinline__ void StoreMaskWord(uint32_t* mask, int64_t w, uint32_t bits, int count) {
  if (count == 4) {
    mask[w] = bits;
    return;
  }
  uint8_t* bytes = reinterpret_cast<uint8_t*>(mask) + 4 * w;
  for (int q = 0; q < count; ++q) bytes[q] = static_cast<uint8_t>((bits >> (8 * q)) & 0xffu);
}

// Draw indices of consecutive elements k0, k0 + 1, ... for dropout/dropoutAdd: base + k.
struct FlatDraws {
  uint64_t base;
  uint64_t next;
  __device__ __forceinline__ void Start(int64_t k0) { next = base + static_cast<uint64_t>(k0); }
  __device__ __forceinline__ uint64_t Next() { return next++; }
};

// Draw indices of consecutive elements of the [batch, heads, seq, seq] probabilities: element k is
// (task, e) with task = b * heads + h = k / seq^2 and e = k % seq^2, drawing
// ((sampleOffset + b) * totalHeads + headOffset + h) * seq^2 + e (unfused_attention.cc). One
// division per word; the walk carries into the next head block when e reaches seq^2.
struct AttentionDraws {
  int64_t ss, heads, total_heads, sample_offset, head_offset;
  int64_t task, e;
  uint64_t head_base;
  __device__ __forceinline__ uint64_t HeadBase(int64_t t) const {
    const int64_t b = t / heads, h = t - b * heads;
    return static_cast<uint64_t>((sample_offset + b) * total_heads + head_offset + h) * static_cast<uint64_t>(ss);
  }
  __device__ __forceinline__ void Start(int64_t k0) {
    task = k0 / ss;
    e = k0 - task * ss;
    head_base = HeadBase(task);
  }
  __device__ __forceinline__ uint64_t Next() {
    const uint64_t index = head_base + static_cast<uint64_t>(e);
    if (++e == ss) {  // the next element starts the next (sample, head) block
      e = 0;
      ++task;
      head_base = HeadBase(task);
    }
    return index;
  }
};

// The draw loop shared by the three forward kernels: for every word of the n-element mask, draws its
// elements' keeps in element order, lets `value(k, keep)` write element k's output, and stores the
// mask word.
template <typename Draws, typename Value>
__device__ __forceinline__ void DrawWords(uint32_t* mask, int64_t n, uint64_t key, uint32_t threshold, Draws draws,
                                          Value value) {
  const int64_t words = (n + 3) / 4;
  for (int64_t w = FirstIndex(); w < words; w += GridStride()) {
    const int64_t k0 = 4 * w;
    const int count = n - k0 < 4 ? static_cast<int>(n - k0) : 4;
    draws.Start(k0);
    uint32_t bits = 0;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      if (q < count) {
        const bool keep = mist::kernels::DropoutDraw24(key, draws.Next()) >= threshold;
        bits |= static_cast<uint32_t>(keep) << (8 * q);
        value(k0 + q, keep);
      }
    }
    StoreMaskWord(mask, w, bits, count);
  }
}

// dropout: out = keep ? x * scale : 0 (out may be x). The product is one fp32 multiply, as the CPU.
template <typename T>
__device__ __forceinline__ void DropoutBody(T* out, uint32_t* mask, const T* x, int64_t n, uint64_t base, uint64_t key,
                                            uint32_t threshold, float scale) {
  FlatDraws draws{base, 0};
  DrawWords(mask, n, key, threshold, draws,
            [&](int64_t k, bool keep) { Store(out, k, keep ? __fmul_rn(Load(x, k), scale) : 0.f); });
}

// dropoutAdd: out = stream + (keep ? branch * scale : 0) (out may be stream or branch). Rounded
// multiply then add (no fused multiply-add), the CPU kernel's two fp32 operations.
template <typename T>
__device__ __forceinline__ void DropoutAddBody(T* out, uint32_t* mask, const T* stream, const T* branch, int64_t n,
                                               uint64_t base, uint64_t key, uint32_t threshold, float scale) {
  FlatDraws draws{base, 0};
  DrawWords(mask, n, key, threshold, draws, [&](int64_t k, bool keep) {
    Store(out, k, __fadd_rn(Load(stream, k), keep ? __fmul_rn(Load(branch, k), scale) : 0.f));
  });
}

// attentionProbsDropout: out = keep ? probs * scale : 0 over the [batch, heads, seq, seq] tensor (n
// elements, ss = seq^2); out may be probs.
template <typename T>
__device__ __forceinline__ void ProbsDropoutBody(T* out, uint32_t* mask, const T* probs, int64_t n, int64_t ss,
                                                 int64_t heads, int64_t total_heads, int64_t sample_offset,
                                                 int64_t head_offset, uint64_t key, uint32_t threshold, float scale) {
  AttentionDraws draws{ss, heads, total_heads, sample_offset, head_offset, 0, 0, 0};
  DrawWords(mask, n, key, threshold, draws,
            [&](int64_t k, bool keep) { Store(out, k, keep ? __fmul_rn(Load(probs, k), scale) : 0.f); });
}

// dropoutBackward: dx = mask ? dy * scale : 0 (dx may be dy). A thread reads a whole mask word (the
// mask holds ceil(n / 4) words, so the last word exists) and uses only its bytes below n; any
// non-zero byte counts as kept, as on the CPU.
template <typename T>
__device__ __forceinline__ void DropoutBackwardBody(T* dx, const uint32_t* mask, const T* dy, int64_t n, float scale) {
  const int64_t words = (n + 3) / 4;
  for (int64_t w = FirstIndex(); w < words; w += GridStride()) {
    const int64_t k0 = 4 * w;
    const int count = n - k0 < 4 ? static_cast<int>(n - k0) : 4;
    const uint32_t bits = mask[w];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      if (q < count) {
        const bool keep = ((bits >> (8 * q)) & 0xffu) != 0;
        Store(dx, k0 + q, keep ? __fmul_rn(Load(dy, k0 + q), scale) : 0.f);
      }
    }
  }
}

}  // namespace
}  // namespace mist_cuda

// Exported variants; parameter lists are the launchers' argument lists (cuda/ops/dropout.cc). Launch
// shape: grid-stride over ceil(n / 4) mask words, 256 threads per block, any grid size.
#define MIST_DROPOUT_VARIANTS(S, T)                                                                                   \
  extern "C" __global__ void __launch_bounds__(256)                                                                 \
      mist_dropout_##S(T* out, uint32_t* mask, const T* x, int64_t n, uint64_t base, uint64_t key,                  \
                       uint32_t threshold, float scale) {                                                           \
    mist_cuda::DropoutBody<T>(out, mask, x, n, base, key, threshold, scale);                                        \
  }                                                                                                                 \
  extern "C" __global__ void __launch_bounds__(256)                                                                 \
      mist_dropout_add_##S(T* out, uint32_t* mask, const T* stream, const T* branch, int64_t n, uint64_t base,      \
                           uint64_t key, uint32_t threshold, float scale) {                                         \
    mist_cuda::DropoutAddBody<T>(out, mask, stream, branch, n, base, key, threshold, scale);                        \
  }                                                                                                                 \
  extern "C" __global__ void __launch_bounds__(256)                                                                 \
      mist_attention_probs_dropout_##S(T* out, uint32_t* mask, const T* probs, int64_t n, int64_t ss,               \
                                       int64_t heads, int64_t total_heads, int64_t sample_offset,                   \
                                       int64_t head_offset, uint64_t key, uint32_t threshold, float scale) {        \
    mist_cuda::ProbsDropoutBody<T>(out, mask, probs, n, ss, heads, total_heads, sample_offset, head_offset, key,    \
                                   threshold, scale);                                                               \
  }                                                                                                                 \
  extern "C" __global__ void __launch_bounds__(256)                                                                 \
      mist_dropout_backward_##S(T* dx, const uint32_t* mask, const T* dy, int64_t n, float scale) {                 \
    mist_cuda::DropoutBackwardBody<T>(dx, mask, dy, n, scale);                                                      \
  }

MIST_FOR_EACH_STORAGE(MIST_DROPOUT_VARIANTS)
