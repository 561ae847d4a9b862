// The best plan an engine can run: a search over exactly what the engine's capability table (core)
// lets it express. Megatron-LM, NeMo, DeepSpeed and torchtitan run one strategy for the whole model
// (one tp, pp, dp, micro-batch, sequence-parallel, ZeRO, offload and recompute setting), so the space
// is a grid: pp x tp x G x sp x ZeRO x offload x partition, and per grid point the recompute setting
// that fits with the least recomputation (time never falls and memory never rises with more
// checkpointed layers: the analyzer's monotonicity tests). Engines with Megatron-LM's interleaved 1F1B
// (capability `interleaved`) also try every chunk count v > 1 that divides the layers of a uniform
// partition, with G a multiple of pp (core's plan rules). The same grid gives the tuner's
// megatron/deepspeed baselines and `mist tune --target ENGINE`.
import {
  type AnalyzerContext, type CompiledStageModel, compileStageModel, estimatePlan, INPUT_WIDTH, interleavedStageEstimate, iterationTime,
  planStageQuery, type StageEstimate, type StageQuery, stepJitter, writeStageQuery,
} from '@mist/analyzer';
import {
  clusterDevices, type EngineCapabilities, engineOverlapsGradReduce, type Mesh, modelRuleViolations, type Offload, type OffloadCapability, parsePlan, type Plan,
  planCapabilityViolations, PLAN_VERSION, type StageStrategy, type ZeroLevel,
} from '@mist/core';
import { divisors, epChoices, equalStageMesh, gradAccumChoices, cpChoices, isPowerOfTwo, probeStage, selectiveLevels, tpProblem } from './enumerate';
import type { Shortfall } from './intra-stage';
import { diagnoseNoFit } from './no-fit';
import { mistSpace, type OffloadLevels, type SearchSpace } from './search-space';
import type { TuneProgress, TuneResult } from './tuner';
import { planFp8Field } from './fp8-choice';
import { bestLineAt, EngineCache, type PointLine, saturatedAt, usefulLines } from './engine-cache';
import { dependsOnG } from './frontier-cache';

export interface EngineTuneOptions {
  /** Restrictions on top of the engine's table (the CLI's ablation flags); default: the full Mist space, i.e. none. */
  space?: SearchSpace;
  clusterName?: string;
  compiled?: CompiledStageModel;
  onProgress?: (p: TuneProgress) => void;
  /** Grid point cache folder (engine-cache.ts; the tune cache's): a re-tune with another global batch re-costs cached points. */
  cacheDir?: string;
}

const OFFLOAD_KINDS = ['weights', 'grads', 'optim', 'activations'] as const;

/** Ratios an offload capability allows within the restriction's grid. */
function offloadChoices(cap: OffloadCapability, levels: readonly number[]): number[] {
  if (cap === 'none') return [0];
  if (cap === 'full') return levels.includes(1) ? [0, 1] : [0];
  return [...levels];
}

/** Every offload setting the engine allows at a ZeRO level (the four kinds' choices, then the table's rules). */
function offloadSettings(caps: EngineCapabilities, levels: OffloadLevels, zero: ZeroLevel): Offload[] {
  let out: Offload[] = [{ weights: 0, grads: 0, optim: 0, activations: 0 }];
  for (const kind of OFFLOAD_KINDS) {
    const minZero = caps.offloadMinZero[kind];
    const partialMinZero = caps.partialOffloadMinZero[kind];
    const ratios = (minZero !== undefined && zero < minZero ? [0] : offloadChoices(caps.offload[kind], levels[kind]))
      .filter((r) => r === 0 || r === 1 || partialMinZero === undefined || zero >= partialMinZero);
    out = out.flatMap((o) => ratios.map((r) => ({ ...o, [kind]: r })));
  }
  return out.filter((o) => caps.offloadTied.every(([a, b]) => o[a] === o[b]));
}

/** ZeRO levels a stage of the grid may use (the table's, within the restriction). */
function zeroChoices(caps: EngineCapabilities, space: SearchSpace, pp: number, tp: number, dp: number): ZeroLevel[] {
  const allowed = (pp > 1 ? caps.zeroWithPipeline : caps.zero)
    .filter((z) => space.zero.includes(z) && (tp === 1 || caps.zeroWithTensorParallel.includes(z)));
  if (dp > 1) return allowed;
  // With one data-parallel rank every level shards nothing: one is enough (any, where the engine ignores it).
  if (caps.zeroIgnoredWithoutDataParallel) return [Math.min(...space.zero) as ZeroLevel];
  return allowed.slice(0, 1);
}

/**
 * Layer counts per stage the engine can express. 'uniform': L / pp each. 'uniform-except-first-last'
 * (Megatron-LM's --decoder-first/last-pipeline-num-layers): the middle stages share the rest evenly
 * and the first and last have at most as many as a middle stage (two stages: any split). 'any' is
 * searched the same way: the exact search over arbitrary splits is the Mist space's job.
 */
export function enginePartitions(layers: number, pp: number, mode: EngineCapabilities['partition']): number[][] {
  if (pp === 1) return [[layers]];
  const out: number[][] = [];
  if (layers % pp === 0) out.push(Array(pp).fill(layers / pp));
  if (mode === 'uniform') return out;
  if (pp === 2) {
    for (let f = 1; f < layers; f++) if (2 * f !== layers) out.push([f, layers - f]);
    return out;
  }
  for (let m = 1; m * (pp - 2) <= layers - 2; m++) {
    const ends = layers - m * (pp - 2);
    for (let f = Math.max(1, ends - m); f <= Math.min(m, ends - 1); f++) {
      const l = ends - f;
      if (f === m && l === m) continue; // the uniform partition, already listed
      out.push([f, ...Array(pp - 2).fill(m), l]);
    }
  }
  return out;
}

/**
 * The candidates that came closest to fitting, for the "nothing fits" report (as the Mist search keeps
 * them). Only stages that carry at least their share of the model (layers / devices >= L / D) count:
 * every plan has such a stage, so the smallest shortfall among them is what the closest plan lacks at
 * least, while a one-layer stage that nearly fits says nothing about the rest of the model.
 */
class ClosestMiss {
  device: Shortfall | null = null;
  host: Shortfall | null = null;

  constructor(private readonly layers: number, private readonly devices: number) {}

  note(q: StageQuery, e: StageEstimate): void {
    if (q.layers * this.devices < this.layers * q.mesh.nodes * q.mesh.gpusPerNode) return;
    const deviceBytes = Math.max(0, e.peakMemoryBytes - e.capacityBytes);
    const hostBytes = Math.max(0, e.hostMemoryBytes - e.hostCapacityBytes);
    const row = (): Float64Array => {
      const r = new Float64Array(INPUT_WIDTH);
      writeStageQuery(q, r);
      return r;
    };
    if (!e.deviceFits) {
      if (!this.device || deviceBytes < this.device.deviceBytes) this.device = { deviceBytes, hostBytes, row: row() };
    } else if (!this.host || hostBytes < this.host.hostBytes) {
      this.host = { deviceBytes: 0, hostBytes, row: row() };
    }
  }
}

interface GridPoint {
  pp: number;
  mesh: Mesh;
  tp: number;
  dp: number;
  /** Context-parallel degree (1: none). */
  cp: number;
  /** Expert-parallel degree (mixture of experts; 1: none). */
  ep: number;
  microBatchSize: number;
  G: number;
  sequenceParallel: boolean;
  zero: ZeroLevel;
  offload: Offload;
  /** Selective recompute of the attention core in every stage (engines that have it: one choice for the model). */
  selectiveRecompute: boolean;
  /** torchtitan's per-op selective checkpointing in every stage (engines that have it: one mode for the model). */
  opRecompute: boolean;
}

function planOf(ctx: AnalyzerContext, p: GridPoint, counts: number[], ckpt: number[], clusterName: string, virtualStages = 1): Plan {
  let first = 0;
  const stages: StageStrategy[] = counts.map((n, i) => {
    const s: StageStrategy = {
      layers: [first, first + n - 1], mesh: p.mesh, microBatchSize: p.microBatchSize, dp: p.dp, tp: p.tp,
      ...(p.cp > 1 ? { cp: p.cp } : {}),
      ...(p.ep > 1 ? { ep: p.ep } : {}),
      sequenceParallel: p.sequenceParallel, ckptLayers: ckpt[i], ...(p.selectiveRecompute ? { selectiveRecompute: true } : {}),
      ...(p.opRecompute ? { opRecompute: true } : {}),
      zero: p.zero, offload: p.offload,
    };
    first += n;
    return s;
  });
  return {
    version: PLAN_VERSION, model: ctx.model.name, cluster: clusterName, seqLen: ctx.training.seqLen,
    globalBatch: ctx.training.globalBatch, gradAccumSteps: p.G, flashAttention: ctx.training.flashAttention,
    ...planFp8Field(ctx.training), ...(virtualStages > 1 ? { virtualStages } : {}), stages,
  };
}

/**
 * The plan of a grid point with every stage at one fixed shape (all optional fields present, at
 * their neutral values where off): what the estimates read, built for every partition and chunk
 * count, where planOf's canonical plan (optional fields only when set) is built for a new best only.
 */
function probePlan(p: GridPoint, counts: readonly number[], virtualStages: number): Plan {
  let first = 0;
  const stages = counts.map((n) => {
    const s = probeStage(p, [first, first + n - 1], p.mesh, 0, p.offload, p.opRecompute);
    first += n;
    return s;
  });
  return { version: PLAN_VERSION, model: '', seqLen: 0, globalBatch: 0, gradAccumSteps: p.G, virtualStages, stages };
}

/** Chunk counts per rank the engine may run a partition with: 1, and with interleaving every v > 1 the plan rules allow. */
export function virtualStageChoices(caps: Pick<EngineCapabilities, 'interleaved'>, counts: readonly number[], G: number): number[] {
  const pp = counts.length;
  if (!caps.interleaved || pp < 2 || G % pp !== 0 || counts.some((c) => c !== counts[0])) return [1];
  return divisors(counts[0]);
}

/**
 * Checkpointed-layer counts the engine (and the restriction) allow for a stage of n layers in v
 * chunks, ascending. A per-model count (Megatron-LM's --recompute-num-layers) applies to each chunk,
 * so with v chunks a rank checkpoints a multiple of v layers.
 */
function ckptCandidates(caps: EngineCapabilities, space: SearchSpace, n: number, v = 1, selective = false, perOp = false): readonly number[] {
  // Megatron-LM's one recompute granularity: with selective recompute no whole layer is recomputed;
  // torchtitan's one activation checkpointing mode: with the per-op policy neither.
  if (space.ckpt === 'none' || (selective && caps.selectiveRecompute === 'whole-model') || perOp) return ZERO_ONLY;
  if (space.ckpt === 'all-or-none' || caps.ckpt === 'all-or-none') return [0, n];
  const step = caps.ckpt === 'uniform-count' ? v : 1;
  const key = n * 1024 + step;
  let c = CKPT_STEPS.get(key);
  if (!c) {
    c = Array.from({ length: Math.floor(n / step) + 1 }, (_, i) => i * step);
    CKPT_STEPS.set(key, c);
  }
  return c;
}
const ZERO_ONLY: readonly number[] = [0];
/** Every multiple of a step from 0 to n, by n and step (shared, read-only). */
const CKPT_STEPS = new Map<number, readonly number[]>();

/**
 * Selective-recompute choices of the engine grid: on as well where the engine runs it and the space
 * and training spec search it (no flash attention: with it the switch changes nothing).
 */
function selectiveChoices(caps: EngineCapabilities, space: SearchSpace, flashAttention: boolean): boolean[] {
  return caps.selectiveRecompute !== 'none' ? selectiveLevels(space, flashAttention) : [false];
}

/** Per-op checkpointing choices of the engine grid: on as well where the engine runs it and the space recomputes at all. */
function opRecomputeChoices(caps: EngineCapabilities, space: SearchSpace): boolean[] {
  return caps.opRecompute !== 'none' && space.ckpt !== 'none' ? [false, true] : [false];
}

/** The best plan the engine can run under the restrictions, by the analyzer's estimate. */
export async function tuneForEngine(ctx: AnalyzerContext, caps: EngineCapabilities, options: EngineTuneOptions = {}): Promise<TuneResult> {
  const started = performance.now();
  const space = options.space ?? mistSpace();
  const { model, training, profile } = ctx;
  const cluster = profile.cluster;
  const clusterName = options.clusterName ?? cluster.name;
  const name = caps.engine;
  // The engine's own gradient reduction per ZeRO level (core engineOverlapsGradReduce): a level it
  // reduces after the backward (DeepSpeed's ZeRO-0) is costed with a model compiled so.
  const compiled = options.compiled ?? compileStageModel(ctx);
  const afterCtx: AnalyzerContext = { ...ctx, training: { ...training, gradReduceOverlap: false } };
  let after: CompiledStageModel | null = null;
  const reducesAfter = (zero: number): boolean => training.gradReduceOverlap !== false && !engineOverlapsGradReduce(name, zero);
  const ctxAt = (zero: number): AnalyzerContext => (reducesAfter(zero) ? afterCtx : ctx);
  const compiledAt = (zero: number): CompiledStageModel => (reducesAfter(zero) ? (after ??= compileStageModel(afterCtx)) : compiled);
  // A model the engine cannot run at all (a mixture of experts on a dense-only engine) has no plan there.
  const unsupported = modelRuleViolations(model, caps, name);
  if (unsupported.length > 0) {
    const why = unsupported.map((v) => `${v.feature}: ${v.detail}`).join('; ');
    return {
      space: name, plan: null, predicted: null, objectiveS: null, candidatesEvaluated: 0, frontierPoints: 0, stageGroups: 0,
      tuningTimeS: (performance.now() - started) / 1000, interStageTimeS: 0, solver: 'dp', noFit: null, notes: [`no ${name} plan: ${why}`],
    };
  }
  const D = clusterDevices(cluster);
  const L = model.layers;
  const ppChoices = divisors(D).filter((pp) => pp <= L && pp <= space.maxStages && (pp === 1 || caps.pipeline));
  let evaluated = 0;
  // The best plan so far: built at once from a point searched here, or (plan null) a cached point's
  // line, whose plan is rebuilt from that point after the search.
  let best: { timeS: number; plan: Plan | null; from?: { point: GridPoint; partitions: number[][]; line: PointLine } } | null = null;
  let done = 0;
  // The grid point cache (engine-cache.ts): used when the cost columns do not read G (checked on the
  // first point's stages) and at saturated G only.
  const cache = options.cacheDir ? EngineCache.open(options.cacheDir, ctx, space, caps) : null;
  let cacheUsable: boolean | null = cache ? null : false;
  const miss = new ClosestMiss(L, D);
  const report = (phase: TuneProgress['phase']): void => {
    options.onProgress?.({
      space: name, phase, done, total: ppChoices.length, candidatesEvaluated: evaluated, bestIterationTimeS: best ? best.timeS : null,
    });
  };
  for (const pp of ppChoices) {
    done++;
    const mesh = equalStageMesh(D, cluster.gpusPerNode, pp);
    if (!mesh) continue;
    const partitions = enginePartitions(L, pp, space.uniformPartition ? 'uniform' : caps.partition);
    if (partitions.length === 0) continue;
    for (const tp of divisors(mesh.gpusPerNode)) {
      if (tp > space.maxTp || (tp > 1 && !caps.tensorParallel) || tpProblem(model, tp)) continue;
      for (const cp of caps.contextParallel ? cpChoices(space, training.seqLen, (mesh.nodes * mesh.gpusPerNode) / tp) : [1]) {
        const dp = (mesh.nodes * mesh.gpusPerNode) / (tp * cp);
        const spOk = tp > 1 && caps.sequenceParallel && space.sequenceParallel && training.seqLen % tp === 0;
        const sps = tp > 1 && caps.sequenceParallelForcedWithTp ? (spOk ? [true] : []) : spOk ? [false, true] : [false];
        for (const G of gradAccumChoices(training.globalBatch)) {
          const perMicro = training.globalBatch / G;
          if (perMicro % dp !== 0) continue;
          // Every chunk count a partition may run with keeps its G-free in-flight counts at this G (only
          // the even partition, enginePartitions' first where there is one, interleaves: virtualStageChoices).
          const even = partitions[0].every((c) => c === partitions[0][0]) ? partitions[0] : null;
          const saturated = cache !== null && saturatedAt(G, pp, 1) && (!even || virtualStageChoices(caps, even, G).every((v) => saturatedAt(G, pp, v)));
          const b = perMicro / dp;
          if (space.microBatchPow2 && !isPowerOfTwo(b)) continue;
          // ZeRO shards over dp * cp (Megatron-Core's data-parallel group with context parallelism).
          // Expert parallelism (mixture of experts, where the engine runs it): ep of the dp * cp ranks.
          for (const ep of caps.expertParallel ? epChoices(space, model, dp * cp) : [1]) {
            for (const zero of zeroChoices(caps, space, pp, tp, dp * cp)) {
              for (const offload of offloadSettings(caps, space.offload, zero)) {
                for (const sequenceParallel of sps) for (const selectiveRecompute of selectiveChoices(caps, space, training.flashAttention)) for (const opRecompute of opRecomputeChoices(caps, space)) {
                  const point: GridPoint = { pp, mesh, tp, dp, cp, ep, microBatchSize: b, G, sequenceParallel, zero, offload, selectiveRecompute, opRecompute };
                  if (cacheUsable === null) cacheUsable = !pointReadsG(compiled, point, partitions[0]);
                  const cacheable = cache !== null && cacheUsable && saturated;
                  const key = cacheable ? gridPointKey(point) : '';
                  const cached = cacheable ? cache.get(key) : null;
                  if (cached) {
                    const { totalS, line } = bestLineAt(cached, G);
                    if (line && (!best || totalS < best.timeS)) best = { timeS: totalS, plan: null, from: { point, partitions, line } };
                    continue;
                  }
                  const lines: PointLine[] | undefined = cacheable ? [] : undefined;
                  const found = bestOfPoint(ctxAt(zero), compiledAt(zero), caps, space, point, partitions, clusterName, best ? best.timeS : Infinity, miss, lines);
                  evaluated += found.evaluated;
                  if (cacheable && lines) cache.put(key, usefulLines(lines));
                  if (found.best && (!best || found.best.timeS < best.timeS)) best = found.best;
                }
              }
            }
          }
        }
      }
    }
    report('intra-stage');
  }
  cache?.save();
  // A best plan read from the cache is rebuilt from its point's partition and chunk count; a tune that
  // found no plan with cached points runs again without them, so that the no-fit diagnosis sees the rows.
  if (best && !best.plan && best.from) {
    const { point, partitions, line } = best.from;
    const again = bestOfPoint(ctxAt(point.zero), compiledAt(point.zero), caps, space, point, [partitions[line.partition]], clusterName, Infinity, miss, undefined, line.v);
    evaluated += again.evaluated;
    if (!again.best) throw new Error(`internal: the ${name} search's cached point no longer has its plan`);
    best = again.best;
  }
  if (!best && cache && cache.hits > 0) return tuneForEngine(ctx, caps, { ...options, cacheDir: undefined });
  let plan: Plan | null = null;
  if (best && best.plan) {
    plan = parsePlan(best.plan, { model, cluster });
    const broken = planCapabilityViolations(plan, caps);
    if (broken.length > 0) throw new Error(`internal: the ${name} search produced a plan the engine cannot run: ${broken.map((v) => v.detail).join('; ')}`);
  }
  const predicted = plan ? estimatePlan(plan, ctxAt(plan.stages[0].zero), compiledAt(plan.stages[0].zero)) : null;
  report('done');
  return {
    space: name, plan, predicted, objectiveS: predicted ? predicted.iterationTimeS : null, candidatesEvaluated: evaluated,
    frontierPoints: 0, stageGroups: 0, tuningTimeS: (performance.now() - started) / 1000, interStageTimeS: 0, solver: 'dp',
    noFit: plan ? null : diagnoseNoFit(ctx, space, compiled, miss.device, miss.host),
  };
}

/**
 * The best partition and recompute setting of one grid point. Each stage's estimate depends only on
 * its own layers, position and recompute count, so per stage the least recomputation that fits is
 * found alone; 'uniform-count' engines recompute the same count in every stage (capped at the
 * stage's layers), the largest of the stages' needs.
 */
function bestOfPoint(
  ctx: AnalyzerContext, compiled: CompiledStageModel, caps: EngineCapabilities, space: SearchSpace, p: GridPoint,
  partitions: number[][], clusterName: string, cutoffS: number, miss: ClosestMiss, lines?: PointLine[], onlyV?: number,
): { best: { timeS: number; plan: Plan } | null; evaluated: number } {
  let evaluated = 0;
  const memo = new Map<string, StageEstimate>();
  const jitter = stepJitter(ctx.profile, p.pp * p.mesh.nodes * p.mesh.gpusPerNode);
  const estimateStage = (plan: Plan, i: number): StageEstimate => {
    const st = plan.stages[i];
    const v = plan.virtualStages ?? 1;
    const key = `${i}:${st.layers[1] - st.layers[0] + 1}:${st.ckptLayers}:${v}`;
    let e = memo.get(key);
    if (!e) {
      const q = planStageQuery(plan, i);
      // The query comes from a plan this search built from the space's own grid.
      e = interleavedStageEstimate(compiled.estimateUnchecked(q), q, v);
      memo.set(key, e);
      evaluated++;
      if (!e.fits) miss.note(q, e);
    }
    return e;
  };
  let best: { timeS: number; plan: Plan } | null = null;
  const maxV = space.maxVirtualStages ?? Number.MAX_SAFE_INTEGER;
  for (const [k, counts] of partitions.entries()) for (const v of virtualStageChoices(caps, counts, p.G).filter((x) => x <= maxV && (onlyV === undefined || x === onlyV))) {
    // Least recompute per stage that fits (the least fitting candidate, found by bisection below).
    const probe = probePlan(p, counts, v);
    const need: number[] = [];
    for (let i = 0; i < counts.length; i++) {
      // The least candidate that fits, by bisection: device and host memory never rise with the
      // checkpointed-layer count (the intra-stage search rests on the same monotonicity), so the
      // candidates that fit are a suffix of the ascending list.
      const cands = ckptCandidates(caps, space, counts[i], v, p.selectiveRecompute, p.opRecompute);
      const fits = (k: number): boolean => {
        probe.stages[i].ckptLayers = cands[k];
        return estimateStage(probe, i).fits;
      };
      let lo = 0;
      let hi = cands.length - 1;
      if (!fits(hi)) break;
      if (fits(0)) hi = 0;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (fits(mid)) hi = mid;
        else lo = mid;
      }
      need.push(cands[hi]);
    }
    if (need.length < counts.length) continue;
    let ckpt = need;
    if (caps.ckpt === 'uniform-count') {
      const n = Math.max(...need);
      ckpt = counts.map((c) => Math.min(n, c));
    } else if (caps.ckpt === 'all-or-none' && need.some((c) => c > 0)) {
      ckpt = [...counts];
    }
    // The probe with the chosen counts is the plan; a plan object is built only for a new best.
    counts.forEach((_, i) => { probe.stages[i].ckptLayers = ckpt[i]; });
    const stages = counts.map((_, i) => estimateStage(probe, i));
    if (!stages.every((s) => s.fits)) continue;
    const timeS = iterationTime(stages, p.G, v).total + jitter;
    if (lines) {
      // total(G) = alpha + G * S at every saturated G (engine-cache.ts).
      const slope = Math.max(...stages.map((e) => e.steadyTimeS));
      lines.push({ alpha: timeS - p.G * slope, slope, partition: k, v });
    }
    if (timeS < cutoffS && (!best || timeS < best.timeS)) best = { timeS, plan: planOf(ctx, p, counts, ckpt, clusterName, v) };
  }
  return { best, evaluated };
}

/** A grid point's cache key: everything but G, and whether pp divides G (interleaving needs it). */
function gridPointKey(p: GridPoint): string {
  const o = p.offload;
  return `${p.pp}:${p.mesh.nodes}x${p.mesh.gpusPerNode}:t${p.tp}:c${p.cp}:e${p.ep}:d${p.dp}:b${p.microBatchSize}:sp${p.sequenceParallel ? 1 : 0}:` +
    `z${p.zero}:o${o.weights},${o.grads},${o.optim},${o.activations}:sel${p.selectiveRecompute ? 1 : 0}:op${p.opRecompute ? 1 : 0}:` +
    `div${p.G % p.pp === 0 ? 1 : 0}`;
}

/** Whether the analyzer's cost columns read G for a point's stages (frontier-cache.ts dependsOnG). */
function pointReadsG(compiled: CompiledStageModel, p: GridPoint, counts: readonly number[]): boolean {
  const plan = probePlan(p, counts, 1);
  const rows = new Float64Array(counts.length * INPUT_WIDTH);
  counts.forEach((_, i) => writeStageQuery(planStageQuery(plan, i), rows, i));
  return dependsOnG(compiled, rows, counts.length);
}
