// Brute force: every plan of a (small) search space, each stage estimated by the analyzer, the
// 1F1B iteration time of every combination of stage strategies computed directly. Exponential; for
// checking the tuner on tiny instances only. The one reduction: within one stage slot (same G, pp,
// partition and meshes) a strategy whose steady, first and last times are all no better than another
// fitting strategy's is skipped, since swapping it for that one never makes a combination slower
// (the iteration time sum_i first_i + (G - 1) * max_i steady_i + max_i last_i, analyzer iterationTime).
// The interleaved plans of the space (v > 1) come from brute-force-interleaved.ts, without that reduction.
import { type AnalyzerContext, compileStageModel, inFlightMicroBatches, type StageQuery, stagePosition, stepJitter } from '@mist/analyzer';
import { clusterDevices, type Mesh, meshSize, type Plan, PLAN_VERSION, type StageStrategy } from '@mist/core';
import { ckptLevels, divisors, meshChoices, parallelConfigs, selectiveLevels, stageStrategyOf } from './enumerate';
import type { SearchSpace } from './search-space';
import { planFp8Field } from './fp8-choice';
import { bruteForceInterleaved } from './brute-force-interleaved';

export interface BruteForceResult {
  iterationTimeS: number;
  plan: Plan;
  /** Stage-strategy combinations whose iteration time was computed. */
  plansEvaluated: number;
}

interface Option {
  steady: number;
  first: number;
  last: number;
  strategy: StageStrategy;
}

function compositions(total: number, parts: number): number[][] {
  if (parts === 1) return [[total]];
  const out: number[][] = [];
  for (let first = 1; first <= total - (parts - 1); first++) {
    for (const rest of compositions(total - first, parts - 1)) out.push([first, ...rest]);
  }
  return out;
}

function meshSequences(meshes: Mesh[], devices: number, parts: number): Mesh[][] {
  if (parts === 0) return devices === 0 ? [[]] : [];
  const out: Mesh[][] = [];
  for (const m of meshes) {
    if (meshSize(m) > devices) continue;
    for (const rest of meshSequences(meshes, devices - meshSize(m), parts - 1)) out.push([m, ...rest]);
  }
  return out;
}

function undominated(list: Option[]): Option[] {
  return list.filter((a, i) => !list.some((b, j) =>
    b.steady <= a.steady && b.first <= a.first && b.last <= a.last &&
    (b.steady < a.steady || b.first < a.first || b.last < a.last || j < i)));
}

/** The best plan of the space (of gradient-accumulation count `onlyG` when given), or null when nothing fits. */
export function bruteForce(ctx: AnalyzerContext, space: SearchSpace, onlyG?: number): BruteForceResult | null {
  const { model, training, profile } = ctx;
  const compiled = compileStageModel(ctx);
  const L = model.layers;
  const D = clusterDevices(profile.cluster);
  const meshes = meshChoices(profile.cluster);
  const o = space.offload;
  const jitter = stepJitter(profile, D);
  let best: BruteForceResult | null = null;
  let evaluated = 0;
  for (const G of divisors(training.globalBatch)) {
    if (onlyG !== undefined && G !== onlyG) continue;
    const samples = training.globalBatch / G;
    for (let pp = 1; pp <= Math.min(space.maxStages, L, D); pp++) {
      for (const parts of compositions(L, pp)) {
        if (space.uniformPartition && parts.some((l) => l * pp !== L)) continue;
        for (const meshSeq of meshSequences(meshes, D, pp)) {
          if (space.uniformMesh && meshSeq.some((m) => m !== meshSeq[0])) continue;
          // Every fitting strategy of every stage (every cp split: the tuner prunes the dominated ones, see parallelConfigs).
          let first = 0;
          const options: Option[][] = parts.map((layers, i) => {
            const mesh = meshSeq[i];
            const list: Option[] = [];
            for (const c of parallelConfigs(space, model, training.seqLen, mesh, samples, selectiveLevels(space, training.flashAttention), false)) {
              for (const ckpt of ckptLevels(space.ckpt, layers)) {
                for (const weights of o.weights) for (const grads of o.grads) for (const optim of o.optim) {
                  for (const activations of o.activations) {
                    const offload = { weights, grads, optim, activations };
                    const q: StageQuery = {
                      layers, position: stagePosition(i, pp), inFlight: inFlightMicroBatches(pp, i, G), pp, mesh, microBatchSize: c.microBatchSize,
                      gradAccumSteps: G, dp: c.dp, tp: c.tp, cp: c.cp, ep: c.ep ?? 1, sequenceParallel: c.sequenceParallel, ckptLayers: ckpt,
                      selectiveRecompute: c.selectiveRecompute, zero: c.zero, offload,
                    };
                    const e = compiled.estimate(q);
                    if (!e.fits) continue;
                    list.push({
                      steady: e.steadyTimeS, first: e.firstTimeS, last: e.lastTimeS,
                      strategy: stageStrategyOf(c, [first, first + layers - 1], mesh, ckpt, offload),
                    });
                  }
                }
              }
            }
            first += layers;
            return list;
          });
          if (options.some((l) => l.length === 0)) continue;
          for (let i = 0; i < options.length; i++) options[i] = undominated(options[i]);
          // Every combination.
          const chosen: Option[] = [];
          const walk = (i: number, firsts: number, bottleneck: number, end: number): void => {
            if (i === pp) {
              evaluated++;
              const t = firsts + (G - 1) * bottleneck + end + jitter;
              if (!best || t < best.iterationTimeS) {
                best = {
                  iterationTimeS: t, plansEvaluated: 0,
                  plan: {
                    version: PLAN_VERSION, model: model.name, cluster: profile.cluster.name, seqLen: training.seqLen,
                    globalBatch: training.globalBatch, gradAccumSteps: G, flashAttention: training.flashAttention,
                    ...planFp8Field(training), stages: chosen.map((c) => c.strategy),
                  },
                };
              }
              return;
            }
            for (const opt of options[i]) {
              chosen.push(opt);
              walk(i + 1, firsts + opt.first, Math.max(bottleneck, opt.steady), Math.max(end, opt.last));
              chosen.pop();
            }
          };
          walk(0, 0, 0, 0);
        }
      }
    }
  }
  if (best) (best as BruteForceResult).plansEvaluated = evaluated;
  // And every interleaved 1F1B plan the space allows (brute-force-interleaved.ts).
  const interleaved = bruteForceInterleaved(ctx, space, onlyG);
  if (interleaved && (!best || interleaved.iterationTimeS < (best as BruteForceResult).iterationTimeS)) {
    return { ...interleaved, plansEvaluated: interleaved.plansEvaluated + evaluated };
  }
  return best;
}
