// Pipeline boundary routes in both directions. A micro-batch holds B = microBatchSize * dp samples
// on every stage; DP rank d of a stage holds samples [d*b, (d+1)*b). Boundary tensors are
// replicated over a stage's TP ranks, so receiver (d', t') takes each overlapping sample range from
// the sender (d, t' mod senderTp): one sender per sample. Forward: sender = stage k, receiver =
// stage k+1. Backward: sender = stage k+1 (input gradients), receiver = stage k — routing it afresh
// (not reversing the forward routes) lets every TP rank of stage k get its gradient even when
// stage k has more TP ranks than stage k+1.
// With context parallelism a rank holds only its chunks of each sequence (model/context-parallel.ts),
// and the two stages may split sequences differently (cp on each side): a receiver takes from each
// sender cp rank the positions both hold. A route lists the rows of the rank's local micro-batch
// (b * seq/cp rows) it carries, sample by sample and position by position, so both ends agree on
// the message's order; with equal cp (or none) a route is one contiguous run of rows.
import { type Plan, stageCp } from '@mist/core';
import { contextParallelLayout, type SeqLayout } from '../model';
import { rankOf, type RankPosition } from '../topology';

export interface Route {
  peer: number;
  /** Runs [first row, row count) of this rank's local micro-batch rows, in message order. */
  rows: Array<[number, number]>;
}

function overlap(a0: number, a1: number, b0: number, b1: number): [number, number] | null {
  const lo = Math.max(a0, b0), hi = Math.min(a1, b1);
  return lo < hi ? [lo, hi] : null;
}

/** Positions held by both layouts, in position order: [my local row, other's local row, length]. */
function sharedPositions(mine: SeqLayout, other: SeqLayout): Array<[number, number, number]> {
  const out: Array<[number, number, number]> = [];
  for (const a of mine.pieces) {
    for (const b of other.pieces) {
      const ov = overlap(a.global, a.global + a.length, b.global, b.global + b.length);
      if (ov) out.push([a.local + ov[0] - a.global, b.local + ov[0] - b.global, ov[1] - ov[0]]);
    }
  }
  return out.sort((x, y) => x[0] - y[0]);
}

/** The rows of samples [s0, s1) (relative to my first sample) at the shared positions, runs merged. */
function rowsOf(samples: [number, number], seq: number, shared: Array<[number, number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let g = samples[0]; g < samples[1]; g++) {
    for (const [local, , n] of shared) {
      const r0 = g * seq + local, last = out[out.length - 1];
      if (last && last[0] + last[1] === r0) last[1] += n;
      else out.push([r0, n]);
    }
  }
  return out;
}

function layoutOf(plan: Plan, stage: number, cpIndex: number): SeqLayout {
  return contextParallelLayout(plan.seqLen, stageCp(plan.stages[stage]), cpIndex);
}

/** What rank p (on the sending stage) sends to stage `to`. */
export function sendRoutes(plan: Plan, p: RankPosition, to: number): Route[] {
  const me = plan.stages[p.stage], other = plan.stages[to];
  const my0 = p.dpIndex * me.microBatchSize, my1 = my0 + me.microBatchSize;
  const mine = layoutOf(plan, p.stage, p.cpIndex);
  const out: Route[] = [];
  for (let d = 0; d < other.dp; d++) {
    const r0 = d * other.microBatchSize;
    const ov = overlap(my0, my1, r0, r0 + other.microBatchSize);
    if (!ov) continue;
    for (let c = 0; c < stageCp(other); c++) {
      const shared = sharedPositions(mine, layoutOf(plan, to, c));
      if (shared.length === 0) continue;
      const rows = rowsOf([ov[0] - my0, ov[1] - my0], mine.seq, shared);
      for (let t = 0; t < other.tp; t++) {
        if (t % me.tp === p.tpIndex) out.push({ peer: rankOf(plan, to, d, t, c), rows });
      }
    }
  }
  return out;
}

/** What rank p (on the receiving stage) receives from stage `from`. */
export function recvRoutes(plan: Plan, p: RankPosition, from: number): Route[] {
  const me = plan.stages[p.stage], other = plan.stages[from];
  const my0 = p.dpIndex * me.microBatchSize, my1 = my0 + me.microBatchSize;
  const mine = layoutOf(plan, p.stage, p.cpIndex);
  const out: Route[] = [];
  for (let d = 0; d < other.dp; d++) {
    const s0 = d * other.microBatchSize;
    const ov = overlap(my0, my1, s0, s0 + other.microBatchSize);
    if (!ov) continue;
    for (let c = 0; c < stageCp(other); c++) {
      // Message order is the sender's: sample by sample, then by the sender's local row.
      const theirs = layoutOf(plan, from, c);
      const shared = sharedPositions(theirs, mine).map(([a, b, n]): [number, number, number] => [b, a, n]);
      if (shared.length === 0) continue;
      out.push({ peer: rankOf(plan, from, d, p.tpIndex % other.tp, c), rows: rowsOf([ov[0] - my0, ov[1] - my0], mine.seq, shared) });
    }
  }
  return out;
}
