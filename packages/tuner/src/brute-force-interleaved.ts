// Brute force over the interleaved 1F1B plans of a (small) search space: every G, pp, chunk count
// v, equal mesh, and every combination of per-rank strategies (ZeRO level, selective recompute,
// expert-parallel degree, checkpointed layers; no offloading: space-membership.ts), each rank
// estimated by the analyzer from its query of the plan (planStageQuery) and the iteration time taken
// from the analyzer's iterationTime. Exponential in pp; for checking the interleaved search on tiny
// instances only.
import { type AnalyzerContext, compileStageModel, interleavedStageEstimate, iterationTime, planStageQuery, type StageEstimate, stepJitter } from '@mist/analyzer';
import { clusterDevices, meshSize, NO_OFFLOAD, type Plan, PLAN_VERSION, type StageStrategy } from '@mist/core';
import { ckptLevels, gradAccumChoices, meshChoices, parallelConfigs, selectiveLevels, stageStrategyOf } from './enumerate';
import { planFp8Field } from './fp8-choice';
import { interleavedChunkChoices, interleavedRankGroups } from './interleaved-search';
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
  for (const G of gradAccumChoices(training.globalBatch)) {
    if (onlyG !== undefined && G !== onlyG) continue;
    for (let pp = 2; pp <= Math.min(space.maxStages, L, D); pp++) {
      if (L % pp !== 0 || G % pp !== 0) continue;
      const n = L / pp;
      for (const v of interleavedChunkChoices(space, n)) {
        for (const mesh of meshChoices(profile.cluster).filter((m) => meshSize(m) * pp === D)) {
          const configs = parallelConfigs(space, model, training.seqLen, mesh, training.globalBatch / G, selectiveLevels(space, training.flashAttention), false);
          for (const group of interleavedRankGroups(configs)) {
            const strategy = (i: number, c: (typeof group)[number], ckpt: number): StageStrategy =>
              stageStrategyOf(c, [i * n, i * n + n - 1], mesh, ckpt, { ...NO_OFFLOAD });
            const plan: Plan = {
              version: PLAN_VERSION, model: model.name, cluster: profile.cluster.name, seqLen: training.seqLen, globalBatch: training.globalBatch,
              gradAccumSteps: G, flashAttention: training.flashAttention, ...planFp8Field(training), virtualStages: v,
              stages: Array.from({ length: pp }, (_, i) => strategy(i, group[0], 0)),
            };
            const options: { e: StageEstimate; s: StageStrategy }[][] = [];
            for (let i = 0; i < pp; i++) {
              const list: { e: StageEstimate; s: StageStrategy }[] = [];
              for (const c of group) {
                for (const ckpt of ckptLevels(space.ckpt, n)) {
                  const s = strategy(i, c, ckpt);
                  plan.stages[i] = s;
                  const q = planStageQuery(plan, i);
                  const e = interleavedStageEstimate(compiled.estimate(q), q, v);
                  if (e.fits) list.push({ e, s });
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
                if (!best || t < best.iterationTimeS) best = { iterationTimeS: t, plansEvaluated: 0, plan: { ...plan, stages: chosen.map((c) => c.s) } };
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
