// `mist tune --from plan.json`: what changes between an earlier plan and the plan tuned for a new
// setting (global batch, cluster, sequence length), and why: the earlier plan carried over to the
// new setting (same stages, G re-derived from the new global batch) is either still valid, with its
// predicted time and memory beside the new plan's, or breaks a rule, which is named.
import { type AnalyzerContext, type CompiledStageModel, estimatePlan, type PlanEstimate } from '@mist/analyzer';
import { clusterDevices, parsePlan, type Plan, type StageStrategy } from '@mist/core';

export interface StageChange {
  stage: number;
  /** "field: old -> new" for every field that differs (or the whole stage added/removed). */
  changes: string[];
}

export interface ReplanReport {
  /** The earlier plan carried over to the new setting, when every rule holds. */
  carried: Plan | null;
  /** Its estimate under the new setting (null when it breaks a rule). */
  carriedEstimate: PlanEstimate | null;
  /** Why the earlier plan cannot run in the new setting (a broken rule or a memory overflow), or null. */
  broken: string | null;
  /** Plan-level changes (pp, G, micro-batches) then per-stage changes. */
  planChanges: string[];
  stages: StageChange[];
  /** One-paragraph summary. */
  summary: string;
}

function offloadText(s: StageStrategy): string {
  const o = s.offload;
  return `w${o.weights} g${o.grads} o${o.optim} a${o.activations}`;
}

function stageFields(s: StageStrategy): Array<[string, string]> {
  return [
    ['layers', `${s.layers[0]}-${s.layers[1]}`],
    ['mesh', `${s.mesh.nodes}x${s.mesh.gpusPerNode}`],
    ['dp x tp', `${s.dp} x ${s.tp}${(s.cp ?? 1) > 1 ? ` cp ${s.cp}` : ''}${s.sequenceParallel ? ' sp' : ''}`],
    ['micro-batch', String(s.microBatchSize)],
    ['ckpt', String(s.ckptLayers)],
    ['zero', String(s.zero)],
    ['offload', offloadText(s)],
  ];
}

/**
 * Samples per micro-batch for an earlier plan's stages at a new global batch when their own do not
 * divide it: the largest smaller count that every stage's dp divides and that divides the batch (each
 * stage's micro-batch shrinks in proportion); null when there is none.
 */
function smallerSamplesPerMicro(old: Plan, globalBatch: number): number | null {
  const s0 = old.stages[0];
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  const step = old.stages.reduce((l, s) => (l / gcd(l, s.dp)) * s.dp, 1);
  for (let n = Math.floor(Math.min(s0.microBatchSize * s0.dp - 1, globalBatch) / step) * step; n >= step; n -= step) {
    if (globalBatch % n === 0) return n;
  }
  return null;
}

/**
 * The earlier plan in the new setting: same stages, the new global batch, cluster and sequence length.
 * With `shrinkMicroBatch` (the tuner's carried incumbent), a batch its samples per micro-batch do not
 * divide takes the largest smaller count that does (smallerSamplesPerMicro) instead of breaking.
 */
export function carryPlan(old: Plan, ctx: AnalyzerContext, clusterName: string, opts: { shrinkMicroBatch?: boolean } = {}): { plan: Plan | null; broken: string | null } {
  const { training, profile, model } = ctx;
  const s0 = old.stages[0];
  let perMicro = s0.microBatchSize * s0.dp;
  let stages = old.stages;
  if (training.globalBatch % perMicro !== 0) {
    const smaller = opts.shrinkMicroBatch ? smallerSamplesPerMicro(old, training.globalBatch) : null;
    if (smaller === null) {
      return { plan: null, broken: `global batch ${training.globalBatch} is not a multiple of micro-batch ${s0.microBatchSize} x dp ${s0.dp} = ${perMicro}` };
    }
    perMicro = smaller;
    stages = old.stages.map((s) => ({ ...s, microBatchSize: smaller / s.dp }));
  }
  const devices = old.stages.reduce((a, s) => a + s.mesh.nodes * s.mesh.gpusPerNode, 0);
  if (devices !== clusterDevices(profile.cluster)) {
    return { plan: null, broken: `its stages use ${devices} GPUs; the cluster has ${clusterDevices(profile.cluster)}` };
  }
  const candidate: Plan = {
    ...old, stages, cluster: clusterName, model: model.name, seqLen: training.seqLen, globalBatch: training.globalBatch,
    gradAccumSteps: training.globalBatch / perMicro, flashAttention: training.flashAttention,
  };
  try {
    return { plan: parsePlan(candidate, { model, cluster: profile.cluster }), broken: null };
  } catch (err) {
    return { plan: null, broken: (err as Error).message };
  }
}

/**
 * The tuner's incumbent from an earlier plan at a new global batch: the plan carried over, its
 * micro-batches shrunk where they do not divide the batch (carryPlan shrinkMicroBatch); when no
 * smaller count divides it either (768 samples on 512 data-parallel ranks), the same stages with dp / k
 * and tp x k (k = 2, 4, 8: fewer samples per micro-batch on the same GPUs). Null when none is a valid
 * plan; the search that starts from it finds the same plan either way (it is only a first bar).
 */
export function carryIncumbent(old: Plan, ctx: AnalyzerContext, clusterName: string): Plan | null {
  const direct = carryPlan(old, ctx, clusterName, { shrinkMicroBatch: true }).plan;
  if (direct) return direct;
  for (const k of [2, 4, 8]) {
    if (!old.stages.every((st) => st.dp % k === 0)) break;
    const traded: Plan = { ...old, stages: old.stages.map((st) => ({ ...st, dp: st.dp / k, tp: st.tp * k })) };
    const plan = carryPlan(traded, ctx, clusterName, { shrinkMicroBatch: true }).plan;
    if (plan) return plan;
  }
  return null;
}

/**
 * The earlier plan on a cluster of `devices` GPUs (with the same GPUs per node) when it ran on another
 * count: every stage's data parallelism and mesh nodes scaled by the same factor (tensor, context and
 * expert parallelism, micro-batch, layers, recompute, ZeRO and offload kept), so that a re-tune with
 * another node count starts from the plan of the earlier one. Null when a stage's mesh is not whole
 * nodes or a scaled dp or node count is not whole; the global batch is left to carryPlan.
 */
export function rescalePlan(old: Plan, devices: number, gpusPerNode: number): Plan | null {
  const had = old.stages.reduce((a, s) => a + s.mesh.nodes * s.mesh.gpusPerNode, 0);
  if (had === devices) return old;
  const r = devices / had;
  const stages: StageStrategy[] = [];
  for (const s of old.stages) {
    const nodes = s.mesh.nodes * r;
    const dp = s.dp * r;
    if (s.mesh.gpusPerNode !== gpusPerNode || !Number.isInteger(nodes) || nodes < 1 || !Number.isInteger(dp) || dp < 1) return null;
    stages.push({ ...s, mesh: { nodes, gpusPerNode }, dp });
  }
  return { ...old, stages };
}

export function explainReplan(
  old: Plan, fresh: { plan: Plan | null; predicted: PlanEstimate | null }, ctx: AnalyzerContext, clusterName: string,
  compiled?: CompiledStageModel,
): ReplanReport {
  const carriedOut = carryPlan(old, ctx, clusterName);
  let broken = carriedOut.broken;
  const carriedEstimate = carriedOut.plan ? estimatePlan(carriedOut.plan, ctx, compiled) : null;
  if (carriedEstimate && !carriedEstimate.allFit) {
    const bad = carriedEstimate.stages.findIndex((s) => !s.fits);
    const s = carriedEstimate.stages[bad];
    broken = !s.deviceFits
      ? `stage ${bad} no longer fits in device memory (${(s.peakMemoryBytes / 2 ** 30).toFixed(1)} GiB > ${(s.capacityBytes / 2 ** 30).toFixed(1)} GiB)`
      : `stage ${bad} no longer fits in host memory (${(s.hostMemoryBytes / 2 ** 30).toFixed(1)} GiB > ${(s.hostCapacityBytes / 2 ** 30).toFixed(1)} GiB)`;
  }
  const planChanges: string[] = [];
  const stages: StageChange[] = [];
  const next = fresh.plan;
  if (next) {
    const diff = (label: string, a: unknown, b: unknown): void => {
      if (String(a) !== String(b)) planChanges.push(`${label}: ${String(a)} -> ${String(b)}`);
    };
    diff('pp', old.stages.length, next.stages.length);
    diff('G', old.gradAccumSteps, next.gradAccumSteps);
    diff('global batch', old.globalBatch, next.globalBatch);
    diff('seq', old.seqLen, next.seqLen);
    diff('cluster', old.cluster, next.cluster);
    for (let i = 0; i < Math.max(old.stages.length, next.stages.length); i++) {
      const a = old.stages[i];
      const b = next.stages[i];
      if (!a || !b) {
        stages.push({ stage: i, changes: [a ? 'removed' : 'added: ' + stageFields(b).map(([k, v]) => `${k} ${v}`).join(', ')] });
        continue;
      }
      const fb = stageFields(b);
      const changes = stageFields(a).flatMap(([k, v], j) => (v === fb[j][1] ? [] : [`${k}: ${v} -> ${fb[j][1]}`]));
      if (changes.length > 0) stages.push({ stage: i, changes });
    }
  }
  const t = (x: number): string => `${x.toFixed(3)} s`;
  let summary: string;
  const newT = fresh.predicted ? fresh.predicted.iterationTimeS : null;
  if (!next || newT === null) summary = 'No plan fits the new setting.';
  else if (broken) summary = `The earlier plan cannot run in the new setting: ${broken}. The new plan takes ${t(newT)} per iteration.`;
  else if (carriedEstimate && stages.length === 0 && planChanges.every((c) => !c.startsWith('pp'))) {
    summary = `The earlier plan is still the best: ${t(carriedEstimate.iterationTimeS)} per iteration in the new setting.`;
  } else if (carriedEstimate) {
    const gain = carriedEstimate.iterationTimeS / newT;
    summary = `The earlier plan still runs, predicted ${t(carriedEstimate.iterationTimeS)} per iteration in the new setting; ` +
      `the new plan takes ${t(newT)} (${gain.toFixed(2)}x faster).`;
  } else summary = `The new plan takes ${t(newT)} per iteration.`;
  return { carried: carriedOut.plan, carriedEstimate, broken, planChanges, stages, summary };
}
