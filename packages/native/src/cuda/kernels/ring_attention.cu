// One block of ring attention (context parallelism), forward and backward, mirroring the CPU kernels
// of kernels/ring_attention.cc with the FlashAttention-2 device code of attention_core.cuh under the
// position mask: the queries of a rank (qSeq rows per sequence) against one key/value block (kSeq
// rows), every row tagged with its position in the whole sequence (qPos [qSeq], kPos [kSeq], int32,
// the same for every sequence of the batch); key j is visible to query i when kPos[j] <= qPos[i]
// (Liu et al. 2023, "Ring Attention with Blockwise Transformers"; Megatron-Core's context parallelism
// gives rank r the chunks r and 2cp-1-r of 2cp).
//   forward:  merge = 0 writes out and lse (a row that sees no key: 0 and -inf); merge = 1 folds the
//             block into them by their log-sum-exp.
//   backward: given the merged out and lse, adds into dq, dk and dv, so the blocks of a ring sum up.
// With dropout (drop.enabled) element (b, h, query position P, key position Q) draws index
// ((g * totalHeads + H) * seqTotal + P) * seqTotal + Q, the index of the whole-sequence attention.
#include "attention_core.cuh"

using mist_attention::AttnDropout;
using mist_attention::kAttnThreads;
using mist_attention::PositionMask;

// Exported variants: mist_attention_block_{fwd,bwd_dq,bwd_dkv}_d<D>_<dtype>, launched by
// ops/ring_attention.cc with kAttnThreads threads and the same Tiles' kShared bytes as attention.cu.
#define MIST_ATTENTION_BLOCK_KERNELS(D, suffix, T)                                                                    \
  extern "C" __global__ void __launch_bounds__(kAttnThreads) mist_attention_block_fwd_d##D##_##suffix(             \
      T* out, float* lse, const T* q, const T* k, const T* v, const int* qpos, const int* kpos, int q_seq,          \
      int k_seq, int heads, int kv_heads, float scale, int merge, AttnDropout drop) {                               \
    mist_attention::AttentionForward<T, D>(out, lse, q, k, v, PositionMask{qpos, kpos, k_seq}, q_seq, k_seq, heads, \
                                           kv_heads, scale, merge, drop);                                           \
  }                                                                                                                 \
  extern "C" __global__ void __launch_bounds__(kAttnThreads) mist_attention_block_bwd_dq_d##D##_##suffix(          \
      T* dq, const T* dout, const T* q, const T* k, const T* v, const T* out, const float* lse, const int* qpos,    \
      const int* kpos, int q_seq, int k_seq, int heads, int kv_heads, float scale, AttnDropout drop) {              \
    mist_attention::AttentionBackwardDq<T, D>(dq, dout, q, k, v, out, lse, PositionMask{qpos, kpos, k_seq}, q_seq,   \
                                              k_seq, heads, kv_heads, scale, 1, drop);                              \
  }                                                                                                                 \
  extern "C" __global__ void __launch_bounds__(kAttnThreads) mist_attention_block_bwd_dkv_d##D##_##suffix(         \
      T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out, const float* lse,              \
      const int* qpos, const int* kpos, int q_seq, int k_seq, int heads, int kv_heads, float scale,                 \
      AttnDropout drop) {                                                                                           \
    mist_attention::AttentionBackwardDkv<T, D>(dk, dv, dout, q, k, v, out, lse, PositionMask{qpos, kpos, k_seq},    \
                                               q_seq, k_seq, heads, kv_heads, scale, 1, drop);                      \
  }

#define MIST_ATTENTION_BLOCK_ALL_D(suffix, T) \
  MIST_ATTENTION_BLOCK_KERNELS(16, suffix, T) \
  MIST_ATTENTION_BLOCK_KERNELS(32, suffix, T) \
  MIST_ATTENTION_BLOCK_KERNELS(64, suffix, T) \
  MIST_ATTENTION_BLOCK_KERNELS(128, suffix, T)

MIST_FOR_EACH_STORAGE(MIST_ATTENTION_BLOCK_ALL_D)
