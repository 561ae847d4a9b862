// The whole plan that comes closest to fitting, for the "nothing fits" report. The searches' own
// records keep the stage candidate with the smallest shortfall, but a stage that nearly fits says
// little about a plan: a one-layer last stage can fit within kilobytes while the rest of the model
// fits nowhere. Here every stage of a candidate plan must fit, so a plan's shortfall is the largest of
// its stages', and the report names the plan with the smallest: pipelines of every depth the space
// allows, layers split as evenly as possible, the least-device-memory strategy of the space in every
// stage (highest ZeRO level, every layer checkpointed, the highest offload ratios, sequence parallel).
import { type AnalyzerContext, type CompiledStageModel, INPUT_WIDTH, planStageQuery, writeStageQuery } from '@mist/analyzer';
import { clusterDevices, type Plan, PLAN_VERSION, type StageStrategy, type ZeroLevel } from '@mist/core';
import { divisors, equalStageMesh, gradAccumChoices, isPowerOfTwo, tpProblem } from './enumerate';
import type { Shortfall } from './intra-stage';
import type { SearchSpace } from './search-space';

function evenSplit(layers: number, pp: number): number[] {
  return Array.from({ length: pp }, (_, i) => Math.floor(layers / pp) + (i < layers % pp ? 1 : 0));
}

export interface ClosestPlan {
  /** The plan's stage with the largest device shortfall (or, when every stage fits the device, the largest host shortfall). */
  device: Shortfall | null;
  host: Shortfall | null;
}

/** The closest whole plan of the space (see above), as the shortfall records no-fit.ts reads; null when no plan shape exists. */
export function closestWholePlan(ctx: AnalyzerContext, space: SearchSpace, compiled: CompiledStageModel): ClosestPlan | null {
  const { model, training, profile } = ctx;
  const D = clusterDevices(profile.cluster);
  const L = model.layers;
  const zero = Math.max(...space.zero) as ZeroLevel;
  const top = (levels: number[]): number => levels[levels.length - 1];
  const offload = { weights: top(space.offload.weights), grads: top(space.offload.grads), optim: top(space.offload.optim), activations: top(space.offload.activations) };
  let best: { dev: number; hst: number; q: ReturnType<typeof planStageQuery> } | null = null;
  for (const pp of divisors(D)) {
    if (pp > L || pp > space.maxStages) continue;
    if (space.uniformPartition && L % pp !== 0) continue;
    const mesh = equalStageMesh(D, profile.cluster.gpusPerNode, pp);
    if (!mesh) continue;
    const counts = evenSplit(L, pp);
    for (const tp of divisors(mesh.gpusPerNode)) {
      if (tp > space.maxTp || tpProblem(model, tp)) continue;
      const dp = (mesh.nodes * mesh.gpusPerNode) / tp;
      const sp = tp > 1 && space.sequenceParallel && training.seqLen % tp === 0;
      for (const G of gradAccumChoices(training.globalBatch)) {
        if ((training.globalBatch / G) % dp !== 0) continue;
        const b = training.globalBatch / G / dp;
        if (space.microBatchPow2 && !isPowerOfTwo(b)) continue;
        let first = 0;
        const stages: StageStrategy[] = counts.map((n) => {
          const s: StageStrategy = {
            layers: [first, first + n - 1], mesh, microBatchSize: b, dp, tp, sequenceParallel: sp,
            ckptLayers: space.ckpt === 'none' ? 0 : n, zero: dp > 1 ? zero : (Math.min(...space.zero) as ZeroLevel), offload,
          };
          first += n;
          return s;
        });
        const plan: Plan = {
          version: PLAN_VERSION, model: model.name, seqLen: training.seqLen, globalBatch: training.globalBatch, gradAccumSteps: G, stages,
        };
        // The plan's worst stage: the largest device shortfall, or, when every stage fits the device, the largest host shortfall.
        let worst: { dev: number; hst: number; q: ReturnType<typeof planStageQuery> } | null = null;
        for (let i = 0; i < pp; i++) {
          const q = planStageQuery(plan, i);
          const e = compiled.estimate(q);
          const dev = Math.max(0, e.peakMemoryBytes - e.capacityBytes);
          const hst = Math.max(0, e.hostMemoryBytes - e.hostCapacityBytes);
          if (!worst || dev > worst.dev || (dev === 0 && worst.dev === 0 && hst > worst.hst)) worst = { dev, hst, q };
        }
        if (!worst || (worst.dev === 0 && worst.hst === 0)) continue; // it fits: the searches will have found it
        if (!best || worst.dev < best.dev || (worst.dev === best.dev && worst.hst < best.hst)) best = worst;
      }
    }
  }
  if (!best) return null;
  const row = new Float64Array(INPUT_WIDTH);
  writeStageQuery(best.q, row);
  const shortfall: Shortfall = { deviceBytes: best.dev, hostBytes: best.hst, row };
  return best.dev > 0 ? { device: shortfall, host: null } : { device: null, host: shortfall };
}
