// The tuner: for every gradient-accumulation count G, intra-stage search of every stage group, then
// the inter-stage solver over the groups' frontiers; the best plan over all G wins. Every plan is
// re-estimated with the analyzer's estimatePlan, the same cost model the search used.
import {
  type AnalyzerContext, type CompiledStageModel, compileStageModel, estimatePlan, INPUT_WIDTH, type PlanEstimate,
} from '@mist/analyzer';
import { clusterDevices, engineCapabilities, meshSize, SpecError, type Mesh, type Plan, parsePlan, PLAN_VERSION, type StageStrategy, type ZeroLevel } from '@mist/core';
import { boundsForG, type GBounds, writeCorner } from './bounds';
import { BoundsCache, boundsKey, fastBoundsKey, samplesKeyPart, specKeyPart } from './bounds-cache';
import { GBoundsCache, groupsBase, groupsFingerprint } from './g-bounds-cache';
import { contextKey, dependsOnG, FrontierCache, groupKey } from './frontier-cache';
import {
  atGradAccum, ckptLevels, gradAccumChoices, meshChoices, type ParallelConfig, parallelConfigs, selectiveLevels, type StageGroupSpec,
  stageGroupSpecs,
} from './enumerate';
import { type DpStats, solveInterStageDp } from './inter-stage-dp';
import { FrontierStoreBuilder, type InterStageInstance, type InterStageSolution, type StageGroup } from './inter-stage-instance';
import { RelaxedGroups } from './group-relaxation';
import { solveInterStageMilpOrDp } from './inter-stage-milp';
import { IntraStageSearch, type Shortfall, ST, StrategyStore } from './intra-stage';
import { diagnoseNoFit, type NoFitReport } from './no-fit';
import { tuneForEngine } from './engine-search';
import { type Fp8Outcome, planFp8Field, tuneFp8Choice } from './fp8-choice';
import { carryIncumbent, rescalePlan } from './replan';
import { checkSearchSpace, mistSpace, type SearchSpace } from './search-space';
import { planInSpace } from './space-membership';
import { stageModelReadsPp } from './pipeline-depth';
import { stageGroupFromSet } from './stage-frontiers';
import { searchInterleaved } from './interleaved-search';

/**
 * The relaxation over unsearched stage groups (group-relaxation.ts) and when it runs. Each round is
 * one DP over the instance, which costs from a millisecond to a second (layers x devices states per
 * stage); it pays where searching the groups it spares costs more (gpt3-175b on 64x8-a100-80gb, whose
 * re-tune at batch 3072 it takes from 2.9 s to 1.2 s), not where its bound stays far below the best
 * plan (llama3-405b's 16-stage pipelines) or the DP is large (thousands of GPUs). So it runs where
 * the DP table is small (RELAXATION_MAX_STATES); per G, at most RELAXATION_ROUNDS rounds, left when
 * the relaxed optimum is more than RELAXATION_GAP below the best plan, within a quarter of the
 * estimated search time of the open groups (at least RELAXATION_FLOOR_MS); per tune, within a credit
 * of RELAXATION_ALLOWANCE_MS plus a quarter of the estimated search time of the groups it spared
 * (mostly cheap ones), less its time so far. The plan is the same either way; only the time changes.
 */
export const RELAXATION_ROUNDS = 6;
/**
 * The largest DP table (layers + 1) x (devices + 1) the relaxation runs on: one relaxed DP costs about
 * the table times the open groups, and beyond this it costs more than the searches it spares
 * (gpt3-175b on 512x8-a100-80gb, 400K states: 1.5 s slower with it; on 64x8, 50K states: 0.8 s faster).
 */
const RELAXATION_MAX_STATES = 65536;
const RELAXATION_GAP = 0.02;
const RELAXATION_FLOOR_MS = 150;
const RELAXATION_ALLOWANCE_MS = 200;
/** A group search's time before this tune has measured 8, ms (gpt3-175b on 64x8-a100-80gb: 3 ms on average). */
const PRIOR_SEARCH_MS_PER_GROUP = 3;

export type TunePhase = 'intra-stage' | 'inter-stage' | 'done';

export interface TuneProgress {
  space: string;
  phase: TunePhase;
  /**
   * Work units done so far, of `total`: one unit per (stage group, G) pair that has parallel
   * configurations (searched, or skipped by a bound); a G skipped whole counts all its groups.
   */
  done: number;
  total: number;
  candidatesEvaluated: number;
  bestIterationTimeS: number | null;
  // The three below are reported by the Mist search (tune); the engine searches may leave them out.
  /** Seconds since the tune started. */
  elapsedS?: number;
  /** Analyzer evaluations per second so far. */
  candidatesPerS?: number;
  /**
   * Seconds left, estimated as elapsed * (total - done) / done: the average time per unit so far
   * applied to the units left (units differ in cost, so the estimate drifts; null before any unit).
   */
  etaS?: number | null;
}

/** Why a search ended before it had proven its plan optimal. */
export type TuneStop = 'time-limit' | 'signal';

/** How far the best plan found may be from the optimum, when the search stopped early. */
export interface TuneGap {
  /** No plan of the space is faster than this (the least lower bound of the work left open). */
  lowerBoundS: number;
  /** (best - lowerBound) / best; null when no plan was found before the stop. */
  relative: number | null;
}

export interface TuneOptions {
  space?: SearchSpace;
  /** Shorthand of the cluster, written into the plan (e.g. `1x8-l4`); default: the profile's cluster name. */
  clusterName?: string;
  /** A stage model already compiled for ctx (saves the compile when tuning several spaces). */
  compiled?: CompiledStageModel;
  onProgress?: (p: TuneProgress) => void;
  /**
   * A plan of this space already known (e.g. the best baseline plan): the search only looks for
   * strategies that can beat its iteration time, and returns it when nothing does.
   */
  incumbent?: Plan;
  /** Stop after this many seconds and return the best plan so far with its proven gap. */
  timeLimitS?: number;
  /** Stop when aborted and return the best plan so far with its proven gap. */
  signal?: AbortSignal;
  /**
   * Folder of the frontier cache (frontier-cache.ts): stage groups searched by an earlier tune of the
   * same model, profile and per-stage grid are read from it, new ones written to it. Default: no cache.
   */
  cacheDir?: string;
  /**
   * Rounds of the relaxation at each G (group-relaxation.ts) before every stage group left open is
   * searched; default RELAXATION_ROUNDS, 0 searches every open group at once (for measurements and tests).
   */
  relaxationRounds?: number;
}

export interface TuneResult {
  space: string;
  /** The best plan, or null when nothing fits. */
  plan: Plan | null;
  /** estimatePlan of the plan. */
  predicted: PlanEstimate | null;
  /** The inter-stage objective of the plan (equal to predicted.iterationTimeS). */
  objectiveS: number | null;
  candidatesEvaluated: number;
  /** Pareto points kept over all stage groups (before sampling). */
  frontierPoints: number;
  /** Stage groups in the solved inter-stage instances. */
  stageGroups: number;
  tuningTimeS: number;
  /** Of which in the inter-stage solver. */
  interStageTimeS: number;
  solver: SearchSpace['solver'];
  /** Set when nothing fits: the smallest shortfall and what would help. */
  noFit: NoFitReport | null;
  // The three below are set by the Mist search (tune); the engine searches run to completion and may leave them out.
  /** Stage groups whose frontier was searched or read from the frontier cache (the rest were proven useless). */
  groupsSearched?: number;
  /** Null when the search completed (the plan is optimal in the space); else what it may still miss. */
  gap?: TuneGap | null;
  /** What stopped the search early, or null when it completed. */
  stoppedBy?: TuneStop | null;
  /** What the user should know about how the result was found (e.g. the MILP fell back to the DP). */
  notes?: string[];
  /** Stage groups read from the frontier cache (hits) and searched (misses); null without a cache. */
  cache?: {
    hits: number; misses: number; dependsOnG: boolean;
    /** Stage groups whose bound minima were read from the bounds cache (bounds-cache.ts). */
    boundsHits: number;
    /** G values whose bounds were derived from an earlier tune's at a smaller G (g-bounds-cache.ts). */
    gBoundsHits: number;
    /** Whether the first incumbent was an earlier tune's plan carried over to this global batch. */
    carriedPlan: boolean;
  } | null;
  /** Set by a search with the fp8 choice (SearchSpace.fp8Choice): whether the plan uses fp8 and its gain. */
  fp8?: Fp8Outcome | null;
}

function stageStrategy(store: StrategyStore, ref: number, firstLayer: number, layers: number, mesh: Mesh): StageStrategy {
  const v = (c: number): number => store.get(ref, c);
  return {
    layers: [firstLayer, firstLayer + layers - 1],
    mesh: { nodes: mesh.nodes, gpusPerNode: mesh.gpusPerNode },
    microBatchSize: v(ST.B),
    dp: v(ST.DP),
    tp: v(ST.TP),
    ...(v(ST.CP) > 1 ? { cp: v(ST.CP) } : {}),
    ...(v(ST.EP) > 1 ? { ep: v(ST.EP) } : {}),
    sequenceParallel: v(ST.SP) === 1,
    ckptLayers: v(ST.CKPT),
    // Written only when on, so that plans without it read as before.
    ...(v(ST.SEL) === 1 ? { selectiveRecompute: true } : {}),
    zero: v(ST.ZERO) as ZeroLevel,
    offload: { weights: v(ST.OW), grads: v(ST.OG), optim: v(ST.OO), activations: v(ST.OA) },
  };
}

/** Finds the plan with the lowest predicted iteration time that fits, in the given search space. */
export async function tune(ctx: AnalyzerContext, options: TuneOptions = {}): Promise<TuneResult> {
  return tuneWith(ctx, options, true);
}

/** `readMinima`: whether the bounds may use spec minima from the bounds cache (bounds-cache.ts). */
async function tuneWith(ctx: AnalyzerContext, options: TuneOptions, readMinima: boolean): Promise<TuneResult> {
  const started = performance.now();
  const space = options.space ?? mistSpace();
  checkSearchSpace(space);
  // fp8 on or off is one global switch: one search per training spec (fp8-choice.ts).
  if (space.fp8Choice) return tuneFp8Choice(ctx, { ...options, space }, tune);
  const { model, training, profile } = ctx;
  const cluster = profile.cluster;
  if (model.positional === 'learned' && training.seqLen > model.maxSeq) {
    throw new SpecError('training spec', [{ field: 'seqLen', value: training.seqLen,
      message: `must be at most ${model.maxSeq} (learned positions of ${model.name})` }]);
  }
  // An engine space is searched over exactly what the engine can run (engine-search.ts).
  if (space.engine) {
    const r = await tuneForEngine(ctx, engineCapabilities(space.engine), {
      space, clusterName: options.clusterName, compiled: options.compiled, onProgress: options.onProgress, cacheDir: options.cacheDir,
    });
    return { gap: null, stoppedBy: null, ...r };
  }
  if (options.timeLimitS !== undefined && !(options.timeLimitS > 0)) {
    throw new RangeError(`timeLimitS must be a positive number of seconds, got ${options.timeLimitS}`);
  }
  const compiled = options.compiled ?? compileStageModel(ctx);
  const strategies = new StrategyStore();
  const search = new IntraStageSearch(compiled, strategies);
  const gValues = gradAccumChoices(training.globalBatch);
  const devices = clusterDevices(cluster);
  // Meshes with a parallel configuration at some G (dp = devices / tp must divide some global batch
  // share): the others can never hold a stage, so no stage group is made of them.
  const allMeshes = meshChoices(cluster);
  const configCache = new Map<string, ParallelConfig[]>();
  const configsAt = (mesh: Mesh, samples: number): ParallelConfig[] => {
    const key = `${mesh.nodes}x${mesh.gpusPerNode}/${samples}`;
    let c = configCache.get(key);
    if (!c) {
      c = parallelConfigs(space, model, training.seqLen, mesh, samples, selectiveLevels(space, training.flashAttention));
      configCache.set(key, c);
    }
    return c;
  };
  const meshes = allMeshes.filter((m) => gValues.some((G) => configsAt(m, training.globalBatch / G).length > 0));
  // Why the search stays exact for every G (G < pp included) and every profile: the analyzer estimates
  // stage i of a pp-stage plan at position(i, pp), in-flight min(pp - i, G) and depth pp. A group's
  // Pareto set is searched with its queries at the group's depth (queryPp) for every in-flight count
  // it serves at G (atGradAccum caps them at G), and the solvers take each stage from the frontier at
  // exactly min(pp - i, G) (evaluateSolution checks it). When the stage model reads pp
  // (pipeline-depth.ts), each group serves one depth and the solvers fix pp first; otherwise the PP
  // column is never read, and one frontier serves every depth.
  const perDepth = stageModelReadsPp(ctx);
  const specs = stageGroupSpecs(space, model.layers, cluster, meshes, perDepth);
  // Per G, the specs with a configuration there (indexes into specs) and the specs at G.
  const specIndexAt = gValues.map((G) => specs.flatMap((spec, k) => (configsAt(spec.mesh, training.globalBatch / G).length > 0 ? [k] : [])));
  const specsAt = specIndexAt.map((ks, i) => ks.map((k) => atGradAccum(specs[k], gValues[i])));
  const total = specsAt.reduce((a, x) => a + x.length, 0);
  const deadline = options.timeLimitS === undefined ? Infinity : started + options.timeLimitS * 1000;
  let stoppedBy: TuneStop | null = null;
  const shouldStop = (): boolean => {
    if (stoppedBy) return true;
    if (options.signal?.aborted) stoppedBy = 'signal';
    else if (performance.now() >= deadline) stoppedBy = 'time-limit';
    return stoppedBy !== null;
  };
  let lastYield = performance.now();
  // Lets timers and signal handlers run (AbortSignal, SIGINT) during a long synchronous search.
  const breathe = async (): Promise<void> => {
    if (performance.now() - lastYield < 50) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    lastYield = performance.now();
  };
  let done = 0;
  let frontierPoints = 0;
  let stageGroups = 0;
  let groupsSearched = 0;
  const relaxationRounds = options.relaxationRounds ?? RELAXATION_ROUNDS;
  // Wall time of the group searches of this tune (not the cache's reads), for the relaxation's budget.
  let searchMs = 0;
  let searchCount = 0;
  const searchMsPerGroup = (): number => (searchCount >= 8 ? searchMs / searchCount : PRIOR_SEARCH_MS_PER_GROUP);
  // The relaxation's time in this tune (its DPs and the searches it chose) and the open groups it
  // left unsearched at the G values it settled (see RELAXATION_ROUNDS).
  let relaxMs = 0;
  let relaxSpared = 0;
  const relaxationCredit = (): number => RELAXATION_ALLOWANCE_MS + 0.25 * relaxSpared * searchMsPerGroup() - relaxMs;
  let interStageMs = 0;
  const notes: string[] = [];
  let boundRows = 0;
  let best: { iterationTimeS: number; plan: Plan } | null = null;
  if (options.incumbent) {
    const est = estimatePlan(parsePlan(options.incumbent, { model, cluster }), ctx, compiled);
    if (est.allFit) best = { iterationTimeS: est.iterationTimeS, plan: options.incumbent };
  }
  // Seed: the best plan with even layers and one mesh size (a small part of this space, searched
  // first and fast) gives the cutoff that prunes most of the full search. The result stays exact:
  // the seed only raises the bar a plan must beat.
  let seedEvaluated = 0;
  let seedGroupsSearched = 0;
  let interleavedEvaluated = 0;
  // The bounds cache (bounds-cache.ts): the best plans of earlier tunes, carried over to this global
  // batch, may give the first incumbent; the spec minima skip most of the bounds phase.
  // Both caches are keyed by the analyzer context and the per-stage grid (frontier-cache.ts contextKey).
  const cacheKey = options.cacheDir ? contextKey(ctx, space) : '';
  const boundsCache = options.cacheDir ? BoundsCache.open(options.cacheDir, cacheKey) : null;
  // carried: an earlier plan became the incumbent; carriedFits: one fits here (then the bar is at
  // least that good, whichever incumbent is better, and the seed search is not needed).
  let carried = false;
  let carriedFits = false;
  if (boundsCache) {
    const clusterName = options.clusterName ?? cluster.name;
    // Plans of the same device count first, then those of other node counts rescaled (replan.ts rescalePlan).
    const rescaled = boundsCache.storedPlansElsewhere(devices).flatMap((p) => rescalePlan(p, devices, cluster.gpusPerNode) ?? []);
    for (const old of [...boundsCache.storedPlans(devices), ...rescaled]) {
      const plan = carryIncumbent(old, ctx, clusterName);
      if (!plan || !planInSpace(plan, space)) continue;
      const est = estimatePlan(plan, ctx, compiled);
      // A plan with fewer micro-batches than stages is mostly bubble: the seed search below is then
      // the better start.
      if (!est.allFit || plan.gradAccumSteps < plan.stages.length) continue;
      carriedFits = true;
      if (!best || est.iterationTimeS < best.iterationTimeS) {
        best = { iterationTimeS: est.iterationTimeS, plan };
        carried = true;
      }
    }
  }
  if ((!space.uniformPartition || !space.uniformMesh) && !carriedFits) {
    const seed = await tune(ctx, {
      // The interleaved plans are searched once, by this tune, after its main search.
      space: { ...space, uniformPartition: true, uniformMesh: true, maxVirtualStages: 1 }, compiled, clusterName: options.clusterName,
      incumbent: best ? best.plan : undefined, signal: options.signal, cacheDir: options.cacheDir, relaxationRounds,
      timeLimitS: Number.isFinite(deadline) ? Math.max(1e-3, (deadline - performance.now()) / 1000) : undefined,
    });
    seedEvaluated = seed.candidatesEvaluated;
    seedGroupsSearched = seed.groupsSearched ?? 0;
    if (seed.plan && seed.objectiveS !== null && (!best || seed.objectiveS < best.iterationTimeS)) {
      best = { iterationTimeS: seed.objectiveS, plan: seed.plan };
    }
  }
  const shortfalls: { device: Shortfall | null; host: Shortfall | null } = { device: null, host: null };
  const evaluated = (): number => search.evaluated + boundRows + seedEvaluated + interleavedEvaluated;
  const report = (phase: TunePhase): void => {
    if (!options.onProgress) return;
    const elapsedS = (performance.now() - started) / 1000;
    options.onProgress({
      space: space.name, phase, done, total, candidatesEvaluated: evaluated(),
      bestIterationTimeS: best ? best.iterationTimeS : null,
      elapsedS,
      candidatesPerS: elapsedS > 0 ? evaluated() / elapsedS : 0,
      etaS: done > 0 ? (elapsedS * (total - done)) / done : null,
    });
  };
  const offloadMax: [number, number, number, number] = [space.offload.weights, space.offload.grads, space.offload.optim,
    space.offload.activations].map((levels) => levels[levels.length - 1]) as [number, number, number, number];
  const ckptCache = new Map<number, number[]>();
  const ckptOf = (layers: number): number[] => {
    let c = ckptCache.get(layers);
    if (!c) {
      c = ckptLevels(space.ckpt, layers);
      ckptCache.set(layers, c);
    }
    return c;
  };
  const ckptMax = (layers: number): number => { const c = ckptOf(layers); return c[c.length - 1]; };

  // Lower bounds of every G first: they order the search (most promising G first, so that the best
  // plan found early prunes the rest) and skip the G values that cannot beat the best plan.
  const bounds: Array<GBounds | null> = gValues.map(() => null);
  const openLowerBound = new Float64Array(gValues.length).fill(0);
  let cache: FrontierCache | null = null;
  let gDependent = true;
  if (options.cacheDir) {
    cache = FrontierCache.open(options.cacheDir, cacheKey);
    gDependent = probeDependsOnG(compiled, gValues, specsAt, (spec, G) => configsAt(spec.mesh, training.globalBatch / G), ckptMax, offloadMax);
  }
  // Each group's part of its bounds keys, one string per group for every G (bounds-cache.ts BoundsView).
  const specPart = boundsCache ? specs.map(specKeyPart) : [];
  // The bounds of each G, kept for re-tunes at a larger G over the same groups (g-bounds-cache.ts):
  // only where the cost columns do not read G (then a plan's time grows by its bottleneck per G).
  const gCache = options.cacheDir && !gDependent ? GBoundsCache.open(options.cacheDir, cacheKey) : null;
  const groupsHash = gCache ? groupsBase(specPart) : '';
  let gBoundsHits = 0;
  // The fast-corner test (bounds.ts) runs in re-tunes only: a first tune's exact minima are what its
  // re-tunes read (a doubled batch meets its G's groups at 2G, where the margin to the best plan is
  // thinner and the fast corners alone rarely close it), and it gains little there (gpt3-175b on
  // 512 GPUs: 4.0-4.1 s either way), while a re-tune closes its new G values with a third of the rows.
  const reTune = boundsCache !== null && readMinima && boundsCache.heldAtOpen > 0;
  for (let i = 0; i < gValues.length && !shouldStop(); i++) {
    const G = gValues[i];
    const samples = training.globalBatch / G;
    const keyG = gDependent ? G : null;
    const view = boundsCache && readMinima ? boundsCache.view(samples, keyG) : null;
    const part = (s: number): string => specPart[specIndexAt[i][s]];
    const known = view ? (s: number) => view.exact(part(s), specsAt[i][s].inFlightMin) : undefined;
    const knownWeak = view ? (s: number) => view.weaker(part(s), specsAt[i][s].inFlightMin) : undefined;
    const groupsPrint = gCache ? groupsFingerprint(groupsHash, specIndexAt[i]) : '';
    const samplesPart = samplesKeyPart(samples, null);
    const earlierG = gCache && readMinima ? gCache.find(samplesPart, devices, groupsPrint, G) : null;
    const b = boundsForG(compiled, model.layers, G, specsAt[i], (spec) => configsAt(spec.mesh, samples),
      { ckpt: ckptOf, offload: space.offload }, devices, best ? best.iterationTimeS : Infinity, { known, knownWeak, fastTest: reTune, earlierG });
    if (b.fromEarlierG) gBoundsHits++;
    if (gCache && b.complete && !b.fromEarlierG) gCache.put(samplesPart, devices, groupsPrint, G, b, specsAt[i].length);
    if (boundsCache) {
      b.derived.forEach((d, s) => { if (d) boundsCache.put(boundsKey(specsAt[i][s], samples, keyG), b.minima[s]); });
      b.derivedWeak.forEach((d, s) => { if (d) boundsCache.put(fastBoundsKey(specsAt[i][s], samples, keyG), b.minima[s]); });
    }
    boundRows += b.evaluated;
    mergeShortfall(shortfalls, b.shortfall, b.hostShortfall);
    bounds[i] = b;
    openLowerBound[i] = b.lowerBoundS;
    // The bounds of every G come before the main search (seconds at thousands of GPUs): the seed's
    // plan is reported from the start, and progress goes on meanwhile.
    report('intra-stage');
    await breathe();
  }
  const order = gValues.map((_, i) => i).sort((a, b) => openLowerBound[a] - openLowerBound[b] || gValues[a] - gValues[b]);
  const closed = new Uint8Array(gValues.length);

  for (const gi of order) {
    if (shouldStop()) break;
    const G = gValues[gi];
    const b = bounds[gi];
    const groupSpecs0 = specsAt[gi];
    if (!b || b.lowerBoundS === Infinity || (best && b.lowerBoundS >= best.iterationTimeS)) {
      // No plan at G can beat the best one (or, without bounds, it was stopped before: left open).
      if (b) closed[gi] = 1;
      done += groupSpecs0.length;
      continue;
    }
    const doneBefore = done;
    const cutoffOf = (s: number): number => (best ? best.iterationTimeS - b.specRestS[s] : Infinity);
    // Infinity: no plan at G that uses the group fits (bounds.ts), with or without a best plan.
    const open: number[] = [];
    for (let s = 0; s < groupSpecs0.length; s++) {
      if (b.specLowerBoundS[s] !== Infinity && !(best && b.specLowerBoundS[s] >= best.iterationTimeS)) open.push(s);
    }
    const rounds = best && relaxationCredit() > 0 && (model.layers + 1) * (devices + 1) <= RELAXATION_MAX_STATES ? relaxationRounds : 0;
    // The instance of the relaxation (only built when it runs) and the open groups searched so far.
    const relaxed = rounds > 0 ? new RelaxedGroups(groupSpecs0, open, b.minima) : null;
    const searched = new Set<number>();
    // The real-only instance of the final solve (inter-stage-dp.ts reads every point of its store).
    const store = new FrontierStoreBuilder();
    const groups: StageGroup[] = [];
    const groupSpecs: StageGroupSpec[] = [];
    /** Searches one open group (or reads it from the frontier cache) into both instances. */
    const searchSpec = async (s: number): Promise<void> => {
      const spec = groupSpecs0[s];
      searched.add(s);
      done++;
      groupsSearched++;
      // A point of this group is useless when it alone, with the least the other stages add, reaches the best plan.
      const cutoff = cutoffOf(s);
      const key = cache ? groupKey(spec, training.globalBatch / G, gDependent ? G : null) : '';
      let set = cache ? cache.get(key, G, cutoff, strategies, { ...b.minima[s], bottleneck: b.specBottleneckS[s] }) : null;
      if (!set) {
        const searchStart = performance.now();
        // The configurations that may fit and their least levels: derived only for a group to search.
        const detail = b.detail(s);
        boundRows += detail.evaluated;
        if (detail.configs.length > 0) {
          set = search.searchGroup(spec, G, detail.configs, ckptOf(spec.layers), space.offload, cutoff,
            { roots: detail.roots, steady: detail.steady, imbalance: detail.imbalance });
          cache?.put(key, G, cutoff, set, strategies);
        }
        searchMs += performance.now() - searchStart;
        searchCount++;
        if (!set) {
          relaxed?.setSearched(s, null);
          return;
        }
      }
      frontierPoints += set.size;
      const group = stageGroupFromSet(spec, meshSize(spec.mesh), set, space.frontierSize, store, G, cutoff);
      relaxed?.setSearched(s, group ? stageGroupFromSet(spec, meshSize(spec.mesh), set, space.frontierSize, relaxed.store, G, cutoff) : null);
      if (group) {
        groups.push(group);
        groupSpecs.push(spec);
      }
      if (done % 16 === 0) report('intra-stage');
      await breathe();
    };
    const base = {
      layers: model.layers, devices, gradAccumSteps: G, minStages: 1, maxStages: Math.min(space.maxStages, model.layers, devices),
      uniformPartition: space.uniformPartition, uniformMesh: space.uniformMesh, frontiersPerDepth: perDepth,
    };
    let stopped = false;
    // Lazy rounds (group-relaxation.ts): solve with the unsearched groups as virtual points; search
    // only the groups its optimum uses, until it proves nothing at G beats the best plan or its
    // optimum is a real plan; the open groups left are then searched (when: see RELAXATION_ROUNDS).
    let solution: InterStageSolution | null = null;
    let inst: InterStageInstance | null = null;
    let specOfGroup: StageGroupSpec[] = groupSpecs;
    let provenNone = false;
    const relaxStart = performance.now();
    const relaxUntil = relaxStart + Math.max(RELAXATION_FLOOR_MS, Math.min(0.25 * open.length * searchMsPerGroup(), relaxationCredit()));
    const relaxStop = (): boolean => shouldStop() || performance.now() > relaxUntil;
    const searchedBefore = groupsSearched;
    for (let round = 0; relaxed && best && round < rounds; round++) {
      const r = relaxed.instance(base);
      const stats: DpStats = { thresholdsTried: 0 };
      const solveStart = performance.now();
      const sol = solveInterStageDp(r.inst, stats, relaxStop, best.iterationTimeS);
      interStageMs += performance.now() - solveStart;
      if (stats.stopped) {
        // Out of time for the relaxation (its result is then no bound): search the rest, unless the tune itself stops.
        stopped = stoppedBy !== null;
        break;
      }
      if (!sol) {
        provenNone = true;
        break;
      }
      openLowerBound[gi] = Math.max(openLowerBound[gi], sol.iterationTimeS);
      // Far from proving anything (more rounds would mostly add DPs): the open groups are searched.
      if (sol.iterationTimeS < (1 - RELAXATION_GAP) * best.iterationTimeS) break;
      const unsearched = [...new Set(sol.stages.map((st) => r.specOf[st.group]).filter((s) => !searched.has(s)))];
      if (unsearched.length === 0) {
        // A real plan, optimal over a relaxation of G: the best at G (the MILP solver checks it below).
        if (space.solver === 'dp') {
          solution = sol;
          inst = r.inst;
          specOfGroup = r.specOf.map((s) => groupSpecs0[s]);
        }
        break;
      }
      for (const s of unsearched) {
        if (shouldStop()) {
          stopped = true;
          break;
        }
        await searchSpec(s);
      }
      if (stopped) break;
    }
    if (stopped) break;
    if (rounds > 0 && best) {
      relaxMs += performance.now() - relaxStart;
      if (provenNone || solution) relaxSpared += open.length - (groupsSearched - searchedBefore);
    }
    if (!provenNone && !solution) {
      for (const s of open) {
        if (searched.has(s)) continue;
        if (shouldStop()) {
          stopped = true;
          break;
        }
        await searchSpec(s);
      }
      if (stopped) break;
      stageGroups += groups.length;
      report('inter-stage');
      inst = { ...base, groups, frontiers: store.build() };
      const solveStart = performance.now();
      const stats: DpStats = { thresholdsTried: 0 };
      const finalInst = inst;
      solution = space.solver === 'milp'
        ? await solveInterStageMilpOrDp(finalInst, () => solveInterStageDp(finalInst, stats, shouldStop), notes)
        : solveInterStageDp(finalInst, stats, shouldStop, best ? best.iterationTimeS : Infinity);
      interStageMs += performance.now() - solveStart;
      if (stats.stopped) stopped = true;
    } else {
      stageGroups += groups.length;
    }
    done = doneBefore + groupSpecs0.length;
    if (!stopped) closed[gi] = 1;
    await breathe();
    if (!solution || !inst || (best && solution.iterationTimeS >= best.iterationTimeS)) continue;
    const chosen = inst;
    let layer = 0;
    const stages = solution.stages.map((st) => {
      const spec = specOfGroup[st.group];
      const strategy = stageStrategy(strategies, chosen.frontiers.ref[st.point], layer, spec.layers, spec.mesh);
      layer += spec.layers;
      return strategy;
    });
    const plan: Plan = {
      version: PLAN_VERSION,
      model: model.name,
      cluster: options.clusterName ?? cluster.name,
      seqLen: training.seqLen,
      globalBatch: training.globalBatch,
      gradAccumSteps: G,
      flashAttention: training.flashAttention,
      ...planFp8Field(training),
      stages,
    };
    best = { iterationTimeS: solution.iterationTimeS, plan: parsePlan(plan, { model, cluster }) };
    report('intra-stage');
  }
  // Interleaved 1F1B plans (interleaved-search.ts): searched after the main search, whose best plan
  // prunes them. Skipped when the search stopped early (the gap then covers the main search only, and
  // a note says so).
  if ((space.maxVirtualStages ?? 1) > 1) {
    if (stoppedBy) notes.push('interleaved 1F1B plans were not searched (the search stopped before them)');
    else {
      const stats = { evaluated: 0 };
      const found = searchInterleaved({
        ctx, compiled, space, configsAt, clusterName: options.clusterName ?? cluster.name,
        cutoffS: best ? best.iterationTimeS : Infinity, shouldStop,
      }, stats);
      interleavedEvaluated = stats.evaluated;
      if (stoppedBy) notes.push('the search of interleaved 1F1B plans stopped early');
      if (found) best = { iterationTimeS: found.iterationTimeS, plan: parsePlan(found.plan, { model, cluster }) };
    }
  }
  const predicted = best ? estimatePlan(best.plan, ctx, compiled) : null;
  let gap: TuneGap | null = null;
  if (stoppedBy) {
    let lowerBoundS = best ? best.iterationTimeS : Infinity;
    gValues.forEach((_, i) => {
      if (!closed[i]) lowerBoundS = Math.min(lowerBoundS, openLowerBound[i]);
    });
    gap = { lowerBoundS, relative: best ? (best.iterationTimeS - lowerBoundS) / best.iterationTimeS : null };
  }
  if (!best && !stoppedBy && boundsCache && boundsCache.hits > 0) {
    // Nothing fits: the no-fit diagnosis reports the smallest shortfall of the rows evaluated, and
    // cached minima skipped rows. Rare and quick (the bounds prove most of it), so the tune runs
    // again without them.
    return tuneWith(ctx, options, false);
  }
  mergeShortfall(shortfalls, search.shortfall, search.hostShortfall);
  cache?.save();
  gCache?.save();
  if (boundsCache) {
    if (best) boundsCache.addPlan(best.plan, devices);
    boundsCache.save();
  }
  const result: TuneResult = {
    space: space.name,
    plan: best ? best.plan : null,
    predicted,
    objectiveS: best ? best.iterationTimeS : null,
    candidatesEvaluated: evaluated(),
    frontierPoints,
    stageGroups,
    groupsSearched: groupsSearched + seedGroupsSearched,
    tuningTimeS: (performance.now() - started) / 1000,
    interStageTimeS: interStageMs / 1000,
    solver: space.solver,
    noFit: best ? null : diagnoseNoFit(ctx, space, compiled, shortfalls.device, shortfalls.host),
    gap,
    stoppedBy,
    notes,
    cache: cache ? {
      hits: cache.hits, misses: cache.misses, dependsOnG: gDependent, boundsHits: boundsCache ? boundsCache.hits : 0, gBoundsHits, carriedPlan: carried,
    } : null,
  };
  report('done');
  return result;
}

/** Probes, on a few corner rows of the first G with groups, whether the search's cost columns depend on G. */
function probeDependsOnG(
  compiled: CompiledStageModel, gValues: number[], specsAt: StageGroupSpec[][],
  configsOf: (spec: StageGroupSpec, G: number) => ParallelConfig[], ckptMax: (layers: number) => number,
  offloadMax: readonly [number, number, number, number],
): boolean {
  const rows = new Float64Array(64 * INPUT_WIDTH);
  let n = 0;
  for (let i = 0; i < gValues.length && n < 64; i++) {
    for (const spec of specsAt[i]) {
      for (const c of configsOf(spec, gValues[i])) {
        if (n >= 64) break;
        const half = offloadMax.map((x) => x / 2) as [number, number, number, number];
        writeCorner(rows, n++, spec, gValues[i], c, n % 2 === 0 ? 0 : ckptMax(spec.layers), n % 3 === 0 ? [0, 0, 0, 0] : half);
      }
      if (n >= 64) break;
    }
  }
  return dependsOnG(compiled, rows, n);
}

/** Keeps the smaller device shortfall and the smaller host shortfall (see Shortfall). */
function mergeShortfall(into: { device: Shortfall | null; host: Shortfall | null }, device: Shortfall | null, host: Shortfall | null): void {
  if (device && (!into.device || device.deviceBytes < into.device.deviceBytes)) into.device = device;
  if (host && (!into.host || host.hostBytes < into.host.hostBytes)) into.host = host;
}
