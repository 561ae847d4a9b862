// The closest plan an engine can express: one strategy for all stages (the one covering most layers),
// the engine's partition rule, offload ratios rounded up to what the engine can do (more offload is the
// memory-safe side), ZeRO raised to an allowed level, checkpointing widened to the engine's granularity.
// The result is re-validated with core's parsePlan and must pass the capability table.
import {
  type ClusterSpec, type EngineName, type ModelSpec, type Offload, type Plan, type StageStrategy, type ZeroLevel,
  OFFLOAD_KINDS, engineCapabilities, meshSize, parsePlan, planCapabilityViolations, stageLayerCount,
} from '@mist/core';
import { rangesFromCounts } from './common';
import { InexpressiblePlanError, modelViolations } from './types';

function mostCommonStrategy(plan: Plan, cluster: ClusterSpec): StageStrategy {
  const pp = plan.stages.length;
  const fits = plan.stages.filter((s) => meshSize(s.mesh) * pp <= cluster.nodes * cluster.gpusPerNode);
  const pool = fits.length > 0 ? fits : plan.stages;
  const weight = new Map<string, number>();
  for (const s of pool) {
    const { layers: _l, ckptLayers: _c, ...rest } = s;
    const k = JSON.stringify(rest);
    weight.set(k, (weight.get(k) ?? 0) + stageLayerCount(s));
  }
  let best = pool[0];
  let bestW = -1;
  for (const s of pool) {
    const { layers: _l, ckptLayers: _c, ...rest } = s;
    const w = weight.get(JSON.stringify(rest)) ?? 0;
    if (w > bestW) {
      best = s;
      bestW = w;
    }
  }
  return best;
}

function partitionCounts(counts: number[], rule: 'uniform' | 'uniform-except-first-last' | 'any'): number[] {
  const pp = counts.length;
  const total = counts.reduce((a, b) => a + b, 0);
  if (rule === 'any' || pp === 1) return counts;
  if (rule === 'uniform') {
    if (total % pp !== 0) return [];
    return counts.map(() => total / pp);
  }
  if (pp === 2) return counts;
  const middleTotal = counts.slice(1, -1).reduce((a, b) => a + b, 0);
  const m = Math.floor(middleTotal / (pp - 2));
  const out = counts.map((c, i) => (i === 0 || i === pp - 1 ? c : m));
  out[0] += middleTotal - m * (pp - 2);
  return out;
}

export interface NearestResult {
  plan: Plan;
  /** What was changed, in words. */
  changes: string[];
}

export function nearestExpressiblePlan(engine: EngineName, plan: Plan, model: ModelSpec, cluster: ClusterSpec): NearestResult {
  const mv = modelViolations(model, engine);
  if (mv.length > 0) throw new InexpressiblePlanError(engine, mv);
  const caps = engineCapabilities(engine);
  const changes: string[] = [];
  let pp = plan.stages.length;
  let counts = plan.stages.map(stageLayerCount);
  if (pp > 1 && !caps.pipeline) {
    changes.push(`one stage instead of ${pp}`);
    counts = [model.layers];
    pp = 1;
  }
  const base = caps.perStageStrategy ? undefined : mostCommonStrategy(plan, cluster);
  if (base && plan.stages.some((s) => s !== base)) changes.push(`every stage uses stage ${plan.stages.indexOf(base)}'s strategy`);
  let newCounts = partitionCounts(counts, caps.partition);
  if (newCounts.length === 0) {
    // An even split needs pp to divide the layers: the largest such pp below the plan's.
    let p = pp;
    while (model.layers % p !== 0) p--;
    changes.push(`${p} stages instead of ${pp} (even split of ${model.layers} layers)`);
    pp = p;
    newCounts = Array.from({ length: p }, () => model.layers / p);
  } else if (newCounts.some((c, i) => c !== counts[i])) changes.push(`layers per stage ${newCounts.join(', ')} instead of ${counts.join(', ')}`);
  counts = newCounts;
  const ranges = rangesFromCounts(counts);
  // Interleaved 1F1B stays where the engine runs it and the new stages still allow it (uniform,
  // chunk count dividing their layers); otherwise one chunk per rank.
  const v0 = plan.virtualStages ?? 1;
  const keepV = v0 > 1 && caps.interleaved && counts.length > 1 && counts.every((c) => c === counts[0] && c % v0 === 0);
  if (v0 > 1 && !keepV) changes.push(`one model chunk per rank instead of ${v0} (${caps.interleaved ? 'the stages no longer split into them' : `${engine} has no interleaved 1F1B`})`);
  const v = keepV ? v0 : 1;
  const ckptFraction = plan.stages.map((s) => s.ckptLayers / stageLayerCount(s));
  const anyCkpt = plan.stages.some((s) => s.ckptLayers > 0);
  const maxCkpt = Math.max(...plan.stages.map((s) => s.ckptLayers));

  const stages = ranges.map((layers, i): StageStrategy => {
    const src = base ?? plan.stages[Math.min(i, plan.stages.length - 1)];
    let { dp, tp, microBatchSize, zero } = src;
    if (tp > 1 && !caps.tensorParallel) {
      dp *= tp;
      if (microBatchSize % tp === 0) microBatchSize /= tp;
      else {
        microBatchSize = 1;
      }
      tp = 1;
    }
    const sequenceParallel = tp > 1 && caps.sequenceParallel && (src.sequenceParallel || caps.sequenceParallelForcedWithTp);
    const offload: Offload = { ...src.offload };
    for (const k of OFFLOAD_KINDS) {
      const cap = caps.offload[k];
      if (cap === 'none') offload[k] = 0;
      else if (cap === 'full' && offload[k] > 0) offload[k] = 1;
    }
    for (const [a, b] of caps.offloadTied) {
      const v = Math.max(offload[a], offload[b]);
      offload[a] = v;
      offload[b] = v;
    }
    const allowed = (z: ZeroLevel): boolean => (pp > 1 ? caps.zeroWithPipeline : caps.zero).includes(z) &&
      (tp === 1 || caps.zeroWithTensorParallel.includes(z));
    const need = Math.max(zero, ...OFFLOAD_KINDS.map((k) => (offload[k] > 0 ? caps.offloadMinZero[k] ?? 0 : 0)),
      ...OFFLOAD_KINDS.map((k) => (offload[k] > 0 && offload[k] < 1 ? caps.partialOffloadMinZero[k] ?? 0 : 0)));
    const up = ([0, 1, 2, 3] as ZeroLevel[]).filter((z) => z >= need && allowed(z));
    if (caps.zeroIgnoredWithoutDataParallel && dp === 1) {
      // nothing to shard: keep the level
    } else if (up.length > 0) zero = up[0];
    else {
      // No allowed level carries the offload: drop the offload, keep the nearest allowed level.
      for (const k of OFFLOAD_KINDS) offload[k] = 0;
      const levels = ([0, 1, 2, 3] as ZeroLevel[]).filter(allowed);
      zero = levels.find((z) => z >= src.zero) ?? levels[levels.length - 1];
    }
    const count = layers[1] - layers[0] + 1;
    let ckptLayers: number;
    if (caps.ckpt === 'all-or-none') ckptLayers = anyCkpt ? count : 0;
    else if (caps.ckpt === 'uniform-count') ckptLayers = Math.min(Math.ceil(maxCkpt / v) * v, count); // a count per chunk
    else ckptLayers = Math.min(count, Math.round(ckptFraction[Math.min(i, ckptFraction.length - 1)] * count));
    return { layers, mesh: src.mesh, microBatchSize, dp, tp, sequenceParallel, ckptLayers, zero, offload };
  });
  const s0 = stages[0];
  const gradAccumSteps = plan.globalBatch / (s0.microBatchSize * s0.dp);
  // fp8 linear layers: the engine's other recipe where it has one (current for delayed), else none.
  let fp8 = plan.fp8;
  if (fp8 !== undefined && fp8 !== 'none' && !caps.fp8.includes(fp8)) {
    const other = caps.fp8[0];
    changes.push(`fp8 ${fp8} -> ${other ?? 'none'} (${engine} runs ${caps.fp8.length === 0 ? 'no fp8 linear layers' : `${caps.fp8.join(', ')} scaling only`})`);
    fp8 = other;
  }
  const { virtualStages: _v, ...rest } = plan;
  const interleaved = v > 1 && gradAccumSteps % counts.length === 0 ? { virtualStages: v } : {};
  if (keepV && !('virtualStages' in interleaved)) changes.push(`one model chunk per rank instead of ${v} (gradAccumSteps ${gradAccumSteps} is not a multiple of ${counts.length} stages)`);
  const next = parsePlan({ ...rest, gradAccumSteps, stages, fp8, ...interleaved }, { model, cluster });
  for (const [i, s] of next.stages.entries()) {
    const old = plan.stages[Math.min(i, plan.stages.length - 1)];
    for (const k of ['tp', 'dp', 'microBatchSize', 'zero', 'sequenceParallel', 'ckptLayers'] as const) {
      if (s[k] !== old[k] && !changes.some((c) => c.startsWith(`${k} `))) changes.push(`${k} ${String(old[k])} -> ${String(s[k])}`);
    }
    if (JSON.stringify(s.offload) !== JSON.stringify(old.offload) && !changes.some((c) => c.startsWith('offload'))) {
      changes.push(`offload ${JSON.stringify(old.offload)} -> ${JSON.stringify(s.offload)}`);
    }
  }
  const left = planCapabilityViolations(next, caps);
  if (left.length > 0) throw new InexpressiblePlanError(engine, left);
  return { plan: next, changes };
}
