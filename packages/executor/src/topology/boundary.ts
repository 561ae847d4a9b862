// Pipeline boundary transfers between neighbouring stages whose dp and tp may differ (Mist allows
// a different mesh per stage). A micro-batch has B = microBatchSize * dp samples on every stage;
// DP rank d of a stage holds samples [d*b, (d+1)*b). The activation at the boundary is replicated
// across a stage's TP ranks, so a receiver (d', t') of the next stage gets each overlapping sample
// range from the sender (d, t' mod tp) — exactly one sender per sample, for any tp pair. Backward
// gradients travel the same routes in reverse. With context parallelism (equal cp on both sides)
// each cp rank talks to the same cp rank of the neighbouring stage.
import type { Plan } from '@mist/core';
import { rankOf, type RankPosition } from './ranks';

export interface BoundaryTransfer {
  /** Peer global rank. */
  peer: number;
  /** Sample range in the SENDER's local micro-batch [start, end). */
  senderSamples: [number, number];
  /** Sample range in the RECEIVER's local micro-batch [start, end). */
  receiverSamples: [number, number];
}

function overlap(a0: number, a1: number, b0: number, b1: number): [number, number] | null {
  const lo = Math.max(a0, b0);
  const hi = Math.min(a1, b1);
  return lo < hi ? [lo, hi] : null;
}

/** What rank `p` sends forward to stage p.stage + 1 (empty on the last stage). */
export function forwardSends(plan: Plan, p: RankPosition): BoundaryTransfer[] {
  if (p.stage === plan.stages.length - 1) return [];
  const me = plan.stages[p.stage];
  const next = plan.stages[p.stage + 1];
  const out: BoundaryTransfer[] = [];
  const my0 = p.dpIndex * me.microBatchSize;
  const my1 = my0 + me.microBatchSize;
  for (let d = 0; d < next.dp; d++) {
    const r0 = d * next.microBatchSize;
    const ov = overlap(my0, my1, r0, r0 + next.microBatchSize);
    if (!ov) continue;
    for (let t = 0; t < next.tp; t++) {
      if (t % me.tp !== p.tpIndex) continue;
      out.push({ peer: rankOf(plan, p.stage + 1, d, t, p.cpIndex), senderSamples: [ov[0] - my0, ov[1] - my0], receiverSamples: [ov[0] - r0, ov[1] - r0] });
    }
  }
  return out;
}

/** What rank `p` receives from stage p.stage - 1 (empty on the first stage). */
export function forwardRecvs(plan: Plan, p: RankPosition): BoundaryTransfer[] {
  if (p.stage === 0) return [];
  const me = plan.stages[p.stage];
  const prev = plan.stages[p.stage - 1];
  const out: BoundaryTransfer[] = [];
  const my0 = p.dpIndex * me.microBatchSize;
  const my1 = my0 + me.microBatchSize;
  for (let d = 0; d < prev.dp; d++) {
    const s0 = d * prev.microBatchSize;
    const ov = overlap(my0, my1, s0, s0 + prev.microBatchSize);
    if (!ov) continue;
    const t = p.tpIndex % prev.tp;
    out.push({ peer: rankOf(plan, p.stage - 1, d, t, p.cpIndex), senderSamples: [ov[0] - s0, ov[1] - s0], receiverSamples: [ov[0] - my0, ov[1] - my0] });
  }
  return out;
}
