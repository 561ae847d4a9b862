// Context parallelism's ring attention, per transformer layer (Megatron-Core with Transformer
// Engine's DotProductAttention, cp_comm_type "p2p"; Liu et al. 2023, "Ring Attention with Blockwise
// Transformers"): the sequence is split into 2*cp chunks, rank r holding chunks r and 2cp-1-r so
// that every rank has the same causal work; each rank computes attention of its queries against its
// own K/V, then cp-1 times against the K/V received from its ring neighbour, while the next K/V block
// is in flight; the partial outputs merge by their log-sum-exp. Backward passes the K/V around the
// ring again together with their gradients (twice the bytes).
//
// The op graph already charges each rank 1/cp of the full causal attention work (its b*s/cp query
// tokens against keys of length s), so the ring adds only the transfer time each step cannot hide:
//   time = sum over the cp steps of max(attention step, transfer) = A + (cp-1) * (max(A/cp, X) - A/cp)
// with A the layer's attention time on the rank and X one K/V transfer:
//   forward X = send/recv of 2 * b * s/cp * kvWidth * bytes (K and V), backward 2X (plus dK, dV).
// The ring stays inside a node when tp * cp <= the stage's GPUs per node (TP ranks fastest, then
// CP: Megatron-Core's rank order), else it crosses the network.
// Memory: the two receive buffers of K/V in forward (the block in use and the one arriving), and of
// K/V plus their gradients in backward.
import { type BlockOp, layerBlock, type ModelSpec } from '@mist/core';
import { add, div, type Expr, max, mul, named, num, step, sub } from './expr';
import { type CostModel } from './hardware-cost';
import { dimExpr, type Op } from './op-graph';
import { M, S } from './symbols';

export interface RingAttentionTerms {
  /** Exposed K/V transfer time per layer forward (0 when cp is 1). */
  forward: Expr;
  /** Exposed K/V and gradient transfer time per layer backward (0 when cp is 1). */
  backward: Expr;
  /** Receive buffers alive during a layer's forward, bytes. */
  bufferForward: Expr;
  /** Receive buffers alive during a layer's backward, bytes. */
  bufferBackward: Expr;
}

/** The attention core of a block: the ops the ring repeats per step (fused kernel, or scores, softmax, its dropout, values). */
function isAttentionCore(o: BlockOp): boolean {
  return o.kind === 'attention' || o.kind === 'scores' || o.kind === 'values' || o.kind === 'softmax'
    || (o.kind === 'dropout' && o.when === 'noFlash');
}

/**
 * The ring terms of one layer of `model`. `layer` is the layer's op graph (layerOps), `kernelScale`
 * the stage's kernel slowdown applied to its compute, `actBytes` bytes per activation element.
 */
export function ringAttention(model: ModelSpec, layer: readonly Op[], cost: CostModel, kernelScale: Expr, actBytes: number): RingAttentionTerms {
  const block = layerBlock(model);
  const core = new Set(block.ops.filter(isAttentionCore).map((o) => o.name));
  const attnOps = layer.filter((o) => core.has(o.name));
  if (attnOps.length === 0) throw new Error(`ring attention: the layer of ${model.name} has no attention ops`);
  const { cp, t, gpn } = S;
  const steps = sub(cp, 1);
  const ringLink = { interWeight: step(sub(mul(t, cp), gpn)) };
  // K and V of the rank's tokens (kvWidth per TP rank). The stage model reads b as b/cp samples
  // (stage-model.ts), so b*s here is the rank's b*s/cp tokens.
  const kv = named('ringKv', mul(2 * actBytes, S.b, M.s, dimExpr(block.sizes.kvWidth)));
  const xferF = cost.collective('sendRecv', kv, num(2), ringLink);
  const xferB = cost.collective('sendRecv', mul(2, kv), num(2), ringLink);
  const stepF = named('ringStepF', div(mul(kernelScale, add(...attnOps.map((o) => cost.forward(o)))), cp));
  const stepB = named('ringStepB', div(mul(kernelScale, add(...attnOps.map((o) => cost.backward(o)))), cp));
  return {
    forward: named('ringF', mul(steps, sub(max(stepF, xferF), stepF))),
    backward: named('ringB', mul(steps, sub(max(stepB, xferB), stepB))),
    bufferForward: named('ringBufF', mul(step(steps), 2, kv)),
    bufferBackward: named('ringBufB', mul(step(steps), 4, kv)),
  };
}
