// Interleaved 1F1B inside the Mist space (Megatron-LM's interleaved schedule, Narayanan et al. 2021,
// Sec. 2.2): pp ranks, each holding v model chunks of L / (pp v) layers, the rules of core's plan
// validation (equal layers per rank, one micro-batch size, tp, cp and sequence parallelism on every
// rank, G a multiple of pp). Every rank keeps its own ZeRO level, selective recompute,
// expert-parallel degree and checkpointed-layer count; interleaved ranks use the one mesh of D / pp devices and no offloading
// (the restriction this search adds to the Mist space, stated in space-membership.ts).
//
// Why it is a search of its own and exact: with v > 1 the analyzer's iteration time (analyzer
// iterationTime) is, for ranks with steady s_i, first f_i and last l_i (the interleaved estimates:
// interleavedStageEstimate), T = max_i s_i and E = max_i l_i, the smaller of
//   inter = sum_i [(f_i - s_i) - (1 - 2/v) s_i] + (pp (1 - 1/v) + G - 1/v) T + E
//   plain = sum_i f_i + (G - 1) T + E.
// A rank faster than the bottleneck pays part of its shortfall, so in `inter` a slower point can be
// cheaper: the intra-stage frontiers in (steady, first, last) do not hold the optimum. The grid of a
// rank here is small (ckpt levels x ZeRO levels x selective), so it is evaluated whole, and for a
// bottleneck bound T each rank takes its cheapest point with s_i <= T for each form; scanning T over
// every steady time of every rank is exact (both forms grow with T, and at the optimum's own
// bottleneck they equal its time). E is handled as in inter-stage-dp.ts: the scan over T runs on the
// points with l_i <= X, X starting at inf and moving to the largest last below each answer's E.
// Pruning: every rank adds at least s_i / v to `inter` beyond (G - 1/v) T (first >= steady), so
// (G - 1/v) max_i s_i + sum_i s_i / v over the ranks' fastest points bounds a configuration from
// below; one that cannot beat the best plan is not evaluated. The bound is taken first over the
// fastest corners (no checkpointing, fit or not), then over the fastest fitting points, found by a
// bisection over the checkpointed-layer counts (leastFittingCkpt), below which nothing is evaluated.
import {
  type AnalyzerContext, type CompiledStageModel, interleavedStageEstimate, iterationTime, planStageQuery, type StageEstimate, type StageQuery,
  stepJitter,
} from '@mist/analyzer';
import { type Mesh, NO_OFFLOAD, PLAN_VERSION, type Plan, type StageStrategy } from '@mist/core';
import { ckptLevels, divisors, equalStageMesh, gradAccumChoices, type ParallelConfig, probeStage, stageStrategyOf } from './enumerate';
import { planFp8Field } from './fp8-choice';
import type { SearchSpace } from './search-space';

export interface InterleavedResult {
  plan: Plan;
  /** The analyzer's iteration time of the plan (step jitter included), as estimatePlan gives it. */
  iterationTimeS: number;
}

export interface InterleavedSearchInput {
  ctx: AnalyzerContext;
  compiled: CompiledStageModel;
  space: SearchSpace;
  /** Parallel configurations of a mesh at `samples` samples per micro-batch (the tuner's, cached). */
  configsAt: (mesh: Mesh, samples: number) => ParallelConfig[];
  clusterName: string;
  /** Only plans faster than this are returned (the best plan of the rest of the search). */
  cutoffS: number;
  shouldStop?: () => boolean;
}

export interface InterleavedSearchStats {
  /** Stage estimates made (analyzer evaluations). */
  evaluated: number;
}

/** Chunk counts v > 1 the space allows for ranks of n layers: divisors of n up to space.maxVirtualStages. */
export function interleavedChunkChoices(space: Pick<SearchSpace, 'maxVirtualStages'>, n: number): number[] {
  const maxV = space.maxVirtualStages ?? 1;
  return divisors(n).filter((v) => v > 1 && v <= maxV);
}

/** A candidate point of one rank. */
interface RankPoint {
  steady: number;
  /** f - s: what the rank adds beyond its steady time in the plain form, end-of-step work aside. */
  extra: number;
  /** l: the rank's end-of-step work. */
  last: number;
  /** The rank's configuration and checkpointed layers (its strategy is built for the best plan only). */
  config: ParallelConfig;
  ckpt: number;
  estimate: StageEstimate;
}

/**
 * Configurations grouped by what core's plan rules make common to every rank of an interleaved
 * plan (micro-batch, tp, cp, sequence parallelism, and so dp); within a group each rank picks its own.
 */
export function interleavedRankGroups(configs: readonly ParallelConfig[]): ParallelConfig[][] {
  const groups = new Map<string, ParallelConfig[]>();
  for (const c of configs) {
    const key = `${c.microBatchSize}/${c.dp}/${c.tp}/${c.cp}/${c.sequenceParallel}`;
    const g = groups.get(key);
    if (g) g.push(c);
    else groups.set(key, [c]);
  }
  return [...groups.values()];
}

/** The best interleaved plan of the space faster than `cutoffS`, or null. */
export function searchInterleaved(input: InterleavedSearchInput, stats: InterleavedSearchStats = { evaluated: 0 }): InterleavedResult | null {
  const { ctx, compiled, space } = input;
  const { model, training, profile } = ctx;
  const cluster = profile.cluster;
  const D = cluster.nodes * cluster.gpusPerNode;
  const L = model.layers;
  const jitter = stepJitter(profile, D);
  let best: InterleavedResult | null = null;
  let bar = input.cutoffS;
  const estimate = (q: StageQuery, v: number): StageEstimate => {
    stats.evaluated++;
    // The queries come from plans of this search's own grid: no range checks (estimateUnchecked).
    return interleavedStageEstimate(compiled.estimateUnchecked(q), q, v);
  };
  for (const G of gradAccumChoices(training.globalBatch)) {
    if (input.shouldStop?.()) break;
    const samples = training.globalBatch / G;
    for (const pp of divisors(L)) {
      if (pp < 2 || pp > space.maxStages || pp > D || G % pp !== 0) continue;
      const n = L / pp;
      const vs = interleavedChunkChoices(space, n);
      const mesh = equalStageMesh(D, cluster.gpusPerNode, pp);
      if (vs.length === 0 || !mesh) continue;
      const ckpts = ckptLevels(space.ckpt, n);
      for (const group of interleavedRankGroups(input.configsAt(mesh, samples))) {
        // The plan being built for v chunks: rank i's candidate is put in its place and costed from
        // the analyzer's own query of that plan's rank (planStageQuery). The draft's ranks keep one
        // shape (every field present) and are set in place for each candidate; the plan's canonical
        // strategies are built for the best choice only. With it, the lower bound of the header from
        // the fastest corner (no checkpointing) of each position: times do not depend on the
        // in-flight count, and every middle rank has the middle's times.
        const atV = (v: number) => {
          const draft = interleavedPlan(input, G, v, Array.from({ length: pp }, (_, i) => probeStage(group[0], [i * n, i * n + n - 1], mesh, 0, { ...NO_OFFLOAD })));
          const rank = (i: number, c: ParallelConfig, ckpt: number): StageEstimate => {
            setDraftStage(draft.stages[i], c, ckpt);
            return estimate(planStageQuery(draft, i), v);
          };
          const fastest = (i: number): number => Math.min(...group.map((c) => rank(i, c, 0).steadyTimeS));
          const sFirst = fastest(0);
          const sLast = fastest(pp - 1);
          const sMiddle = pp > 2 ? fastest(1) : Infinity;
          const sMax = Math.max(sFirst, sLast, pp > 2 ? sMiddle : 0);
          const sSum = sFirst + sLast + (pp > 2 ? (pp - 2) * sMiddle : 0);
          return { rank, sMax, sSum };
        };
        // One bound for every v first: a rank's steady time only grows with v (its extra pipeline
        // messages, analyzer interleavedStageEstimate), so with the fastest corners at the smallest v,
        // (G - 1/v) sMax_v + sSum_v / v >= G sMax + (sSum - sMax) / v >= G sMax + (sSum - sMax) / vMax.
        const first = atV(vs[0]);
        if (G * first.sMax + (first.sSum - first.sMax) / vs[vs.length - 1] + jitter >= bar) continue;
        for (const v of vs) {
          const strategy = (i: number, c: ParallelConfig, ckpt: number): StageStrategy =>
            stageStrategyOf(c, [i * n, i * n + n - 1], mesh, ckpt, { ...NO_OFFLOAD });
          const { rank, sMax, sSum } = v === vs[0] ? first : atV(v);
          if ((G - 1 / v) * sMax + sSum / v + jitter >= bar) continue;
          const least = leastFittingCkpt(pp, group, ckpts, rank, (fitMax, fitSum) => (G - 1 / v) * fitMax + fitSum / v + jitter >= bar);
          if (!least) continue;
          const ranks: RankPoint[][] = [];
          for (let i = 0; i < pp; i++) {
            const points: RankPoint[] = [];
            group.forEach((c, k) => {
              for (let j = least[i][k]; j < ckpts.length; j++) {
                const e = rank(i, c, ckpts[j]);
                if (e.fits) points.push({ steady: e.steadyTimeS, extra: e.firstTimeS - e.steadyTimeS, last: e.lastTimeS, config: c, ckpt: ckpts[j], estimate: e });
              }
            });
            if (points.length === 0) break;
            ranks.push(points);
          }
          if (ranks.length < pp) continue;
          const choice = bestChoice(ranks, G, v);
          if (choice.timeS + jitter >= bar) continue;
          // The analyzer's own combination of the chosen ranks (equal to choice.timeS up to rounding).
          const timeS = iterationTime(choice.points.map((p) => p.estimate), G, v).total + jitter;
          if (timeS < bar) {
            best = { plan: interleavedPlan(input, G, v, choice.points.map((p, i) => strategy(i, p.config, p.ckpt))), iterationTimeS: timeS };
            bar = timeS;
          }
        }
      }
    }
  }
  return best;
}

/**
 * Per rank and configuration, the index of the least checkpointed-layer count that fits (ckpts.length:
 * none does), by bisection: device memory never rises and the steady time never falls with more
 * checkpointing (analyzer-assumptions.test.ts), so a rank's fastest fitting point of a configuration is
 * at that count. Ranks are taken in order and `hopeless(max, sum)` is asked with the max and the sum of
 * the fastest fitting steady times so far (lower bounds of T and of the sum of s_i of every plan of
 * these ranks); null when it says so, or when a rank has no fitting point.
 */
function leastFittingCkpt(
  pp: number, group: readonly ParallelConfig[], ckpts: readonly number[], rank: (i: number, c: ParallelConfig, ckpt: number) => StageEstimate,
  hopeless: (fitMax: number, fitSum: number) => boolean,
): number[][] | null {
  const least: number[][] = [];
  let fitMax = 0;
  let fitSum = 0;
  for (let i = 0; i < pp; i++) {
    const row: number[] = [];
    let fastest = Infinity;
    for (const c of group) {
      let lo = 0;
      let hi = ckpts.length; // every index below lo does not fit; hi fits (or is past the end)
      let steadyAtHi = Infinity;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        const e = rank(i, c, ckpts[mid]);
        if (e.fits) {
          hi = mid;
          steadyAtHi = e.steadyTimeS;
        } else lo = mid + 1;
      }
      row.push(lo);
      if (steadyAtHi < fastest) fastest = steadyAtHi;
    }
    if (fastest === Infinity) return null;
    fitMax = Math.max(fitMax, fastest);
    fitSum += fastest;
    if (hopeless(fitMax, fitSum)) return null;
    least.push(row);
  }
  return least;
}

/** The cheapest choice of one point per rank under the smaller of the two forms of the header. */
function bestChoice(ranks: readonly RankPoint[][], G: number, v: number): { timeS: number; points: RankPoint[] } {
  const lasts = [...new Set(ranks.flatMap((points) => points.map((p) => p.last)))].sort((a, b) => a - b);
  let best: { timeS: number; points: RankPoint[] } = { timeS: Infinity, points: [] };
  let X = Infinity;
  for (;;) {
    const sub = bestChoiceWithLastAtMost(ranks, G, v, X);
    if (sub.points.length === 0 || sub.timeS + lasts[0] >= best.timeS) break;
    const E = Math.max(...sub.points.map((p) => p.last));
    if (sub.timeS + E < best.timeS) best = { timeS: sub.timeS + E, points: sub.points };
    const below = lasts.filter((l) => l < E);
    if (below.length === 0) break;
    X = below[below.length - 1];
  }
  return best;
}

/**
 * The cheapest choice of one point per rank among those with last <= X, end-of-step term aside, by a
 * scan of the bottleneck bound T over every rank's steady times (ascending): per rank and form, the
 * cheapest point with steady <= T is a running minimum.
 */
function bestChoiceWithLastAtMost(allRanks: readonly RankPoint[][], G: number, v: number, X: number): { timeS: number; points: RankPoint[] } {
  const ranks = allRanks.map((points) => points.filter((p) => p.last <= X));
  const pp = ranks.length;
  const interCost = (p: RankPoint): number => p.extra - (1 - 2 / v) * p.steady;
  const plainCost = (p: RankPoint): number => p.extra + p.steady;
  const all: { rank: number; p: RankPoint }[] = [];
  ranks.forEach((points, rank) => points.forEach((p) => all.push({ rank, p })));
  all.sort((a, b) => a.p.steady - b.p.steady);
  const bestInter: (RankPoint | null)[] = ranks.map(() => null);
  const bestPlain: (RankPoint | null)[] = ranks.map(() => null);
  let covered = 0;
  let sumInter = 0;
  let sumPlain = 0;
  let best: { timeS: number; points: RankPoint[] } = { timeS: Infinity, points: [] };
  for (let k = 0; k < all.length; k++) {
    const { rank, p } = all[k];
    if (!bestInter[rank]) covered++;
    const bi = bestInter[rank];
    if (!bi || interCost(p) < interCost(bi)) {
      sumInter += interCost(p) - (bi ? interCost(bi) : 0);
      bestInter[rank] = p;
    }
    const bp = bestPlain[rank];
    if (!bp || plainCost(p) < plainCost(bp)) {
      sumPlain += plainCost(p) - (bp ? plainCost(bp) : 0);
      bestPlain[rank] = p;
    }
    // Evaluate at T = this steady time once every point with it is in (ties) and every rank has one.
    if (covered < pp || (k + 1 < all.length && all[k + 1].p.steady === p.steady)) continue;
    const T = p.steady;
    const inter = sumInter + (pp * (1 - 1 / v) + G - 1 / v) * T;
    const plain = sumPlain + (G - 1) * T;
    if (inter < best.timeS) best = { timeS: inter, points: bestInter.map((x) => x as RankPoint) };
    if (plain < best.timeS) best = { timeS: plain, points: bestPlain.map((x) => x as RankPoint) };
  }
  return best;
}

/** Puts configuration `c` with `ckpt` checkpointed layers into a draft rank, in place. */
function setDraftStage(st: StageStrategy, c: ParallelConfig, ckpt: number): void {
  st.microBatchSize = c.microBatchSize;
  st.dp = c.dp;
  st.tp = c.tp;
  st.cp = c.cp;
  st.ep = c.ep ?? 1;
  st.sequenceParallel = c.sequenceParallel;
  st.ckptLayers = ckpt;
  st.selectiveRecompute = c.selectiveRecompute;
  st.zero = c.zero;
}

/** The interleaved plan of `stages` (one per rank, in rank order). */
function interleavedPlan(input: InterleavedSearchInput, G: number, v: number, stages: StageStrategy[]): Plan {
  const { model, training } = input.ctx;
  return {
    version: PLAN_VERSION, model: model.name, cluster: input.clusterName, seqLen: training.seqLen, globalBatch: training.globalBatch,
    gradAccumSteps: G, flashAttention: training.flashAttention, ...planFp8Field(training), virtualStages: v, stages,
  };
}
