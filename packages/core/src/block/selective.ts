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
