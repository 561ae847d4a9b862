// Brute force over the interleaved 1F1B plans of a (small) search space: every G, pp, chunk count
// v, equal mesh, and every combination of per-rank strategies (ZeRO level, selective recompute,
// expert-parallel degree, checkpointed layers; no offloading: space-membership.ts), each rank estimated by the analyzer and
// the iteration time taken from the analyzer's iterationTime. Exponential in pp; for checking the
// interleaved search on tiny instances only.
import {
  type AnalyzerContext, compileStageModel, inFlightMicroBatches, interleavedStageEstimate, iterationTime, type StageEstimate,
  stagePosition, stepJitter,
} from '@mist/analyzer';
import { clusterDevices, meshSize, NO_OFFLOAD, type Plan, PLAN_VERSION, type StageStrategy } from '@mist/core';
import { ckptLevels, divisors, meshChoices, type ParallelConfig, parallelConfigs, selectiveLevels } from './enumerate';
import { planFp8Field } from './fp8-choice';
import { interleavedChunkChoices } from './interleaved-search';
import type { SearchSpace } from './search-space';

export interface InterleavedBruteForceResult {
  iterationTimeS: number;
  plan: Plan;
  plansEvaluated: number;
}

/** The best interleaved plan of the space (v > 1), or null when none fits or the space has none. */
export function bruteForceInterleaved(ctx: AnalyzerContext, space: SearchSpace, onlyG?: number): InterleavedBruteForceResult | null {
  const { model, training, profile } = ctx;
  const compiled = compileStageModel(ctx);
  const L = model.layers;
  const D = clusterDevices(profile.cluster);
  const jitter = stepJitter(profile, D);
  let best: InterleavedBruteForceResult | null = null;
  let evaluated = 0;
  for (const G of divisors(training.globalBatch)) {
    if (onlyG !== undefined && G !== onlyG) continue;
    for (let pp = 2; pp <= Math.min(space.maxStages, L, D); pp++) {
      if (L % pp !== 0 || G % pp !== 0) continue;
      const n = L / pp;
      for (const v of interleavedChunkChoices(space, n)) {
        for (const mesh of meshChoices(profile.cluster).filter((m) => meshSize(m) * pp === D)) {
          const configs = parallelConfigs(space, model, training.seqLen, mesh, training.globalBatch / G, selectiveLevels(space, training.flashAttention), false);
          const shared = new Map<string, ParallelConfig[]>();
          for (const c of configs) {
            const key = `${c.microBatchSize}/${c.dp}/${c.tp}/${c.cp}/${c.sequenceParallel}`;
            shared.set(key, [...(shared.get(key) ?? []), c]);
          }
          for (const group of shared.values()) {
            const options: { e: StageEstimate; s: StageStrategy }[][] = [];
            for (let i = 0; i < pp; i++) {
              const list: { e: StageEstimate; s: StageStrategy }[] = [];
              for (const c of group) {
                for (const ckpt of ckptLevels(space.ckpt, n)) {
                  const q = {
                    layers: n, position: stagePosition(i, pp), inFlight: inFlightMicroBatches(pp, i, G, v), pp, mesh,
                    microBatchSize: c.microBatchSize, gradAccumSteps: G, dp: c.dp, tp: c.tp, cp: c.cp, ep: c.ep ?? 1, sequenceParallel: c.sequenceParallel,
                    ckptLayers: ckpt, selectiveRecompute: c.selectiveRecompute, zero: c.zero, offload: { ...NO_OFFLOAD },
                  };
                  const e = interleavedStageEstimate(compiled.estimate(q), q, v);
                  if (!e.fits) continue;
                  list.push({
                    e,
                    s: {
                      layers: [i * n, i * n + n - 1], mesh, microBatchSize: c.microBatchSize, dp: c.dp, tp: c.tp, ...(c.cp > 1 ? { cp: c.cp } : {}),
                      ...((c.ep ?? 1) > 1 ? { ep: c.ep } : {}),
                      sequenceParallel: c.sequenceParallel, ckptLayers: ckpt, ...(c.selectiveRecompute ? { selectiveRecompute: true } : {}),
                      zero: c.zero, offload: { ...NO_OFFLOAD },
                    },
                  });
                }
              }
              options.push(list);
            }
            if (options.some((l) => l.length === 0)) continue;
            const chosen: { e: StageEstimate; s: StageStrategy }[] = [];
            const walk = (i: number): void => {
              if (i === pp) {
                evaluated++;
                const t = iterationTime(chosen.map((c) => c.e), G, v).total + jitter;
                if (!best || t < best.iterationTimeS) {
                  best = {
                    iterationTimeS: t, plansEvaluated: 0,
                    plan: {
                      version: PLAN_VERSION, model: model.name, cluster: profile.cluster.name, seqLen: training.seqLen, globalBatch: training.globalBatch,
                      gradAccumSteps: G, flashAttention: training.flashAttention, ...planFp8Field(training), virtualStages: v,
                      stages: chosen.map((c) => c.s),
                    },
                  };
                }
                return;
              }
              for (const o of options[i]) {
                chosen.push(o);
                walk(i + 1);
                chosen.pop();
              }
            };
            walk(0);
          }
        }
      }
    }
  }
  if (best) (best as InterleavedBruteForceResult).plansEvaluated = evaluated;
  return best;
}
