// Causal grouped-query attention, forward and backward (FlashAttention-2 style; the device code and
// its description are in attention_core.cuh), mirroring the CPU kernels of kernels/attention.cc:
//   q, out, dq, dout [batch * seq, heads * D]; k, v, dk, dv [batch * seq, kvHeads * D];
//   lse [batch, heads, seq] fp32; key j is visible to query i when j <= i; out, lse, dq, dk, dv are
//   written. With dropout (drop.enabled) element (b, h, i, j) draws index
//   ((g * totalHeads + H) * seq + i) * seq + j, g = sampleOffset + b, H = headOffset + h, as the CPU.
#include "attention_core.cuh"

using mist_attention::AttnDropout;
using mist_attention::CausalMask;
using mist_attention::kAttnThreads;

// Exported variants: mist_attention_{fwd,bwd_dq,bwd_dkv}_d<D>_<dtype>, launched by ops/attention.cc
// with kAttnThreads threads and the Tiles' kShared bytes of dynamic shared memory.
#define MIST_ATTENTION_KERNELS(D, suffix, T)                                                                          \
  extern "C" __global__ void __launch_bounds__(kAttnThreads)                                                        \
      mist_attention_fwd_d##D##_##suffix(T* out, float* lse, const T* q, const T* k, const T* v, int seq, int heads,   \
                                         int kv_heads, float scale, AttnDropout drop) {                             \
    mist_attention::AttentionForward<T, D>(out, lse, q, k, v, CausalMask{seq}, seq, seq, heads, kv_heads, scale, 0,  \
                                           drop);                                                                   \
  }                                                                                                                 \
  extern "C" __global__ void __launch_bounds__(kAttnThreads)                                                        \
      mist_attention_bwd_dq_d##D##_##suffix(T* dq, const T* dout, const T* q, const T* k, const T* v, const T* out,   \
                                            const float* lse, int seq, int heads, int kv_heads, float scale,        \
                                            AttnDropout drop) {                                                     \
    mist_attention::AttentionBackwardDq<T, D>(dq, dout, q, k, v, out, lse, CausalMask{seq}, seq, seq, heads,         \
                                              kv_heads, scale, 0, drop);                                            \
  }                                                                                                                 \
  extern "C" __global__ void __launch_bounds__(kAttnThreads) mist_attention_bwd_dkv_d##D##_##suffix(              \
      T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out, const float* lse, int seq,     \
      int heads, int kv_heads, float scale, AttnDropout drop) {                                                     \
    mist_attention::AttentionBackwardDkv<T, D>(dk, dv, dout, q, k, v, out, lse, CausalMask{seq}, seq, seq, heads,    \
                                               kv_heads, scale, 0, drop);                                           \
  }

#define MIST_ATTENTION_ALL_D(suffix, T) \
  MIST_ATTENTION_KERNELS(16, suffix, T) \
  MIST_ATTENTION_KERNELS(32, suffix, T) \
  MIST_ATTENTION_KERNELS(64, suffix, T) \
  MIST_ATTENTION_KERNELS(128, suffix, T)

MIST_FOR_EACH_STORAGE(MIST_ATTENTION_ALL_D)
