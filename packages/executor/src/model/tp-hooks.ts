// The tensor-parallel communication points of a stage (Megatron-LM, Shoeybi et al. 2019): the
// caller plugs its collectives in here. With tp = 1 none is called.
//   layer forward  'attn-out' / 'mlp-out' / 'parallel-out': all-reduce (sum) of the row-parallel
//                  output ("g" in the paper, figure 3), before its bias is added
//   layer backward 'attn-in-grad' / 'mlp-in-grad' / 'parallel-in-grad': all-reduce (sum) of the
//                  gradient with respect to the column-parallel input ("f"), before the norm's backward
//   embedding      'embed-out': sum of the vocab-parallel lookups (each rank holds V/tp rows and
//                  writes zeros for the other tokens; Megatron-LM's VocabParallelEmbedding)
//   head           'head-in-grad': sum of the LM head's input gradient (the head is column-parallel
//                  over the vocabulary); 'loss-max' (max) and 'loss-sum' (sum) of the vocab-parallel
//                  cross-entropy's per-token max logit, then sum of exp and target logit
// With sequence parallelism (Korthikanti et al. 2022, Sec. 4.2.2) a region's entry all-gathers the
// ranks' token shards ('*-in-grad' points in forward, and again in backward for the saved input of
// a GEMM), its exit reduce-scatters ('*-out' points); the backward mirrors them. The embedding
// reduce-scatters, the head all-gathers; 'sp-grads' sums the replicated weights' gradients.
import type { BlockTpPoint } from '@mist/core';

/** The points core's block descriptions name (their tpEntry/tpExit ops and the loss's sums). */
export type TpPoint = BlockTpPoint;

export interface TpSite {
  /** Global index of the layer; -1 for the embedding, the model's layer count for the head. */
  layer: number;
  point: TpPoint;
  /** True when the forward runs again in the backward of a checkpointed layer. */
  recompute: boolean;
}

/** F: the device's float tensor type (Float32Array on the CPU). */
export interface TpHooks<F = Float32Array> {
  /** Reduces `buffer` in place over the tensor-parallel group: sum, or max at 'loss-max'. */
  allReduce(buffer: F, site: TpSite): Promise<void> | void;
  /** Sequence parallelism: full = the ranks' shards in rank order (full.length = tp * shard.length). */
  allGather?(shard: F, full: F, site: TpSite): Promise<void> | void;
  /** Sequence parallelism: shard = this rank's part of the ranks' summed `full`. */
  reduceScatter?(full: F, shard: F, site: TpSite): Promise<void> | void;
}

/** The reduction a site needs. */
export function siteOp(site: TpSite): 'sum' | 'max' {
  return site.point === 'loss-max' ? 'max' : 'sum';
}
