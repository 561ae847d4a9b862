// Pipeline boundary routes in both directions. A micro-batch holds B = microBatchSize * dp samples
// on every stage; DP rank d of a stage holds samples [d*b, (d+1)*b). Boundary tensors are
// replicated over a stage's TP ranks, so receiver (d', t') takes each overlapping sample range from
// the sender (d, t' mod senderTp): one sender per sample. Forward: sender = stage k, receiver =
// stage k+1. Backward: sender = stage k+1 (input gradients), receiver = stage k — routing it afresh
// (not reversing the forward routes) lets every TP rank of stage k get its gradient even when
// stage k has more TP ranks than stage k+1.
import type { Plan } from '@mist/core';
import { rankOf, type RankPosition } from '../topology';

export interface Route {
  peer: number;
  /** Sample range [start, end) in this rank's local micro-batch. */
  samples: [number, number];
}

function overlap(a0: number, a1: number, b0: number, b1: number): [number, number] | null {
  const lo = Math.max(a0, b0), hi = Math.min(a1, b1);
  return lo < hi ? [lo, hi] : null;
}

/** What rank p (on the sending stage) sends to stage `to`. */
export function sendRoutes(plan: Plan, p: RankPosition, to: number): Route[] {
  const me = plan.stages[p.stage], other = plan.stages[to];
  const my0 = p.dpIndex * me.microBatchSize, my1 = my0 + me.microBatchSize;
  const out: Route[] = [];
  for (let d = 0; d < other.dp; d++) {
    const r0 = d * other.microBatchSize;
    const ov = overlap(my0, my1, r0, r0 + other.microBatchSize);
    if (!ov) continue;
    for (let t = 0; t < other.tp; t++) {
      if (t % me.tp === p.tpIndex) out.push({ peer: rankOf(plan, to, d, t), samples: [ov[0] - my0, ov[1] - my0] });
    }
  }
  return out;
}

/** What rank p (on the receiving stage) receives from stage `from`. */
export function recvRoutes(plan: Plan, p: RankPosition, from: number): Route[] {
  const me = plan.stages[p.stage], other = plan.stages[from];
  const my0 = p.dpIndex * me.microBatchSize, my1 = my0 + me.microBatchSize;
  const out: Route[] = [];
  for (let d = 0; d < other.dp; d++) {
    const s0 = d * other.microBatchSize;
    const ov = overlap(my0, my1, s0, s0 + other.microBatchSize);
    if (ov) out.push({ peer: rankOf(plan, from, d, p.tpIndex % other.tp), samples: [ov[0] - my0, ov[1] - my0] });
  }
  return out;
}
