// The selective-recompute set of a block (Korthikanti et al. 2022, "Reducing Activation
// Recomputation in Large Transformer Models", Sec. 5): the ops marked `selective` (the attention
// core) and the saved tensors that selective recompute stops keeping. The rule, read by the analyzer
// (saved bytes and recompute time) and the executor alike: a tensor is dropped when a selective op
// writes it and only selective ops keep it; the core's inputs (q, k, v) and any output another op
// keeps (the attention output, the projection's input) stay, since the recompute starts from them.
import type { BlockDescription, BlockOp } from './types';

export interface SelectiveSet {
  /** Names of the selective ops that run in this attention variant, in forward order. */
  ops: readonly string[];
  /** Saved tensors selective recompute drops after forward (recomputed in backward). */
  dropped: readonly string[];
}

/** Whether op `o` runs with flash attention on (`flash` true) or off. */
export function opRuns(o: BlockOp, flash: boolean): boolean {
  return o.when === undefined || (o.when === 'flash') === flash;
}

/**
 * The selective set of `block` with or without flash attention. With flash it is empty for the layer
 * block: the fused kernel keeps no s x s tensor and already recomputes the scores in its backward.
 */
export function selectiveSet(block: BlockDescription, flash: boolean): SelectiveSet {
  const running = block.ops.filter((o) => opRuns(o, flash));
  const selective = running.filter((o) => o.selective === true);
  const written = new Set(selective.flatMap((o) => o.outputs));
  const keptElsewhere = new Set(running.filter((o) => o.selective !== true).flatMap((o) => o.saves));
  const dropped = [...new Set(selective.flatMap((o) => o.saves))].filter((t) => written.has(t) && !keptElsewhere.has(t));
  return { ops: selective.map((o) => o.name), dropped };
}

/**
 * torchtitan's per-op selective activation checkpointing (`activation_checkpoint.mode = "selective"`,
 * `selective_ac_option = "op"`; torchtitan parallelize_llama.py `_save_list` and `_custom_policy`,
 * 2024-12): inside a checkpointed block, the outputs of the ops in the save list are kept after
 * forward and every other op runs again in backward. The save list holds matrix multiplies (aten.mm:
 * one per weight of a linear op, torchtitan's separate nn.Linear modules), of which every second one
 * in forward order is recomputed instead (the 1st, 3rd, ... are kept), the attention kernels (flash
 * and memory-efficient SDPA: output and log-sum-exp) and the sequence-parallel reduce-scatters (the
 * block's TP exits); the block's input is kept by the checkpoint itself. Unfused attention products
 * are batched matrix multiplies (aten.bmm, not in the list): recomputed. (v0.2.2's list, in
 * models/llama3/infra/parallelize.py, also names the math SDPA fallback, which GPUs with flash or
 * cuDNN attention do not take; the same policy otherwise.)
 */
export interface OpCheckpointSet {
  /** Tensors kept after forward: the block's input and the outputs of the kept ops. */
  kept: readonly string[];
  /** Ops of this attention variant that run again whole in backward. */
  recomputed: ReadonlySet<string>;
  /** Per linear op, the indices of its weights whose GEMM runs again in backward (the others' outputs are kept). */
  recomputedGemms: ReadonlyMap<string, readonly number[]>;
  /** Per op (name), the kept tensors it writes (the block's input is charged to the first op). */
  keptBy: ReadonlyMap<string, readonly string[]>;
}

export function opCheckpointSet(block: BlockDescription, flash: boolean): OpCheckpointSet {
  const running = block.ops.filter((o) => opRuns(o, flash));
  const recomputed = new Set<string>();
  const recomputedGemms = new Map<string, number[]>();
  const keptBy = new Map<string, string[]>();
  const kept = new Set<string>([block.input]);
  let mm = 0;
  running.forEach((o, i) => {
    const own: string[] = [];
    if (o.kind === 'linear') {
      // One aten.mm per weight, in the op's order (its outputs are the weights' products).
      const again: number[] = [];
      o.weights.forEach((_, w) => {
        mm++;
        if (mm % 2 === 0) again.push(w);
        else if (o.outputs[w] !== undefined) own.push(o.outputs[w]);
      });
      recomputedGemms.set(o.name, again);
    } else if (o.kind === 'attention' || o.kind === 'tpExit') own.push(...o.outputs);
    else recomputed.add(o.name);
    const fresh = own.filter((t) => !kept.has(t));
    for (const t of fresh) kept.add(t);
    keptBy.set(o.name, i === 0 ? [block.input, ...fresh] : fresh);
  });
  return { kept: [...kept], recomputed, recomputedGemms, keptBy };
}
