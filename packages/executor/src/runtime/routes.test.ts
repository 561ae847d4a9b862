// The pipeline boundary routes carry every (sample, position) of a receiver's micro-batch exactly
// once, and sender and receiver agree on each message's rows in order, for any dp, tp and cp on
// either side of the boundary.
import { NO_OFFLOAD, type Plan, type StageStrategy } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { contextParallelLayout } from '../model';
import { rankPosition, type RankPosition, worldSize } from '../topology';
import { recvRoutes, type Route, sendRoutes } from './routes';

function stage(layers: [number, number], dp: number, tp: number, cp: number, b: number): StageStrategy {
  return {
    layers, mesh: { nodes: 1, gpusPerNode: dp * tp * cp }, microBatchSize: b, dp, tp, ...(cp > 1 ? { cp } : {}),
    sequenceParallel: false, ckptLayers: 0, zero: 0, offload: { ...NO_OFFLOAD },
  };
}

/** (sample in the micro-batch, position) of each row a route carries, in message order. */
function carried(plan: Plan, p: RankPosition, r: Route): string[] {
  const st = plan.stages[p.stage], l = contextParallelLayout(plan.seqLen, st.cp ?? 1, p.cpIndex);
  const out: string[] = [];
  for (const [r0, n] of r.rows) {
    for (let row = r0; row < r0 + n; row++) out.push(`${p.dpIndex * st.microBatchSize + Math.floor(row / l.seq)}:${l.positions[row % l.seq]}`);
  }
  return out;
}

const plans: Plan[] = [
  [stage([0, 1], 1, 1, 2, 4), stage([2, 3], 2, 1, 1, 2)],
  [stage([0, 1], 2, 2, 1, 2), stage([2, 3], 1, 1, 4, 4)],
  [stage([0, 1], 1, 2, 2, 4), stage([2, 3], 2, 1, 4, 2), stage([4, 5], 1, 1, 2, 4)],
].map((stages) => ({ version: 1, model: 'gpt-tiny', seqLen: 16, globalBatch: 8, gradAccumSteps: 2, stages }));

describe('pipeline boundary routes with context parallelism', () => {
  for (const plan of plans) {
    it(`cp ${plan.stages.map((s) => s.cp ?? 1).join(' -> ')}, dp ${plan.stages.map((s) => s.dp).join(' -> ')}, tp ${plan.stages.map((s) => s.tp).join(' -> ')}`, () => {
      const ranks = Array.from({ length: worldSize(plan) }, (_, r) => rankPosition(plan, r));
      for (let s = 0; s + 1 < plan.stages.length; s++) {
        for (const [from, to] of [[s, s + 1], [s + 1, s]]) {
          const got = new Map<number, string[]>();
          for (const p of ranks.filter((x) => x.stage === from)) {
            for (const r of sendRoutes(plan, p, to)) {
              const q = rankPosition(plan, r.peer);
              const back = recvRoutes(plan, q, from).filter((x) => x.peer === p.rank);
              expect(back).toHaveLength(1);
              const sent = carried(plan, p, r);
              expect(carried(plan, q, back[0])).toEqual(sent);
              got.set(q.rank, [...(got.get(q.rank) ?? []), ...sent]);
            }
          }
          // Every receiver gets each (sample, position) of its micro-batch exactly once.
          for (const q of ranks.filter((x) => x.stage === to)) {
            const st = plan.stages[to], l = contextParallelLayout(plan.seqLen, st.cp ?? 1, q.cpIndex);
            const want = [];
            for (let g = 0; g < st.microBatchSize; g++) for (const pos of l.positions) want.push(`${q.dpIndex * st.microBatchSize + g}:${pos}`);
            expect([...(got.get(q.rank) ?? [])].sort()).toEqual(want.sort());
            expect(recvRoutes(plan, q, from).map((r) => r.peer).sort()).toEqual([...new Set(recvRoutes(plan, q, from).map((r) => r.peer))].sort());
          }
        }
      }
    });
  }
});
