// The tensor-parallel communication points of a transformer layer (Megatron-LM, Shoeybi et al.
// 2019, figure 3): the caller plugs its collectives in here. With tp = 1 none is called.
//   forward  'attn-out' / 'mlp-out' / 'parallel-out': all-reduce (sum) of the row-parallel output
//             ("g" in the paper), before its bias is added
//   backward 'attn-in-grad' / 'mlp-in-grad' / 'parallel-in-grad': all-reduce (sum) of the gradient
//             with respect to the column-parallel input ("f"), before the norm's backward
export type TpPoint = 'attn-out' | 'mlp-out' | 'parallel-out' | 'attn-in-grad' | 'mlp-in-grad' | 'parallel-in-grad';

export interface TpSite {
  /** Global index of the layer. */
  layer: number;
  point: TpPoint;
  /** True when the forward runs again in the backward of a checkpointed layer. */
  recompute: boolean;
}

export interface TpHooks {
  /** Sums `buffer` in place over the tensor-parallel group. */
  allReduce(buffer: Float32Array, site: TpSite): Promise<void> | void;
}
