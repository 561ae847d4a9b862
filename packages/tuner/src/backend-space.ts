// The search space of an executor backend (`mist tune --target cpu`): core's backend table mapped onto
// the SearchSpace switches, so the tuner only proposes plans that backend runs as the analyzer models
// them. Rules a switch cannot express throw "not implemented" rather than being searched loosely.
import {
  type BackendCapabilities, backendCapabilities, backendMaxTp, type BackendName, type ModelSpec, OFFLOAD_KINDS, type OffloadCapability,
  type TrainingSpec, type ZeroLevel,
} from '@mist/core';
import { type CkptMode, DEFAULT_OFFLOAD_STEP, mistSpace, type OffloadLevels, ratioGrid, type SearchSpace } from './search-space';

function levels(cap: OffloadCapability): number[] {
  if (cap === 'none') return [0];
  if (cap === 'full') return [0, 1];
  return ratioGrid(DEFAULT_OFFLOAD_STEP);
}

function sameLevels(a: readonly ZeroLevel[], b: readonly ZeroLevel[]): boolean {
  return a.length === b.length && a.every((z) => b.includes(z));
}

/** The switches that say exactly what `caps` runs for `model` (and, when given, the training spec). */
function backendSwitches(caps: BackendCapabilities, model: ModelSpec, training?: Pick<TrainingSpec, 'flashAttention'>): Partial<SearchSpace> {
  const p = caps.plan;
  const who = `the ${caps.backend} backend's search space`;
  if (!p.perStageStrategy) throw new Error(`not implemented: ${who} with one strategy for all stages`);
  if (p.partition === 'uniform-except-first-last') throw new Error(`not implemented: ${who} with uneven first/last stages only`);
  if (p.ckpt === 'uniform-count') throw new Error(`not implemented: ${who} with one recompute count for all stages`);
  if (!sameLevels(p.zero, p.zeroWithPipeline) || !sameLevels(p.zero, p.zeroWithTensorParallel) || p.zeroIgnoredWithoutDataParallel) {
    throw new Error(`not implemented: ${who} with ZeRO levels that depend on pp or tp`);
  }
  if (Object.keys(p.offloadMinZero).length + Object.keys(p.partialOffloadMinZero).length + p.offloadTied.length > 0) {
    throw new Error(`not implemented: ${who} with offload rules tied to ZeRO levels or to each other`);
  }
  if (p.sequenceParallelForcedWithTp) throw new Error(`not implemented: ${who} with sequence parallelism forced by tp`);
  const offload = Object.fromEntries(OFFLOAD_KINDS.map((k) => [k, levels(p.offload[k])])) as unknown as OffloadLevels;
  return {
    maxStages: p.pipeline ? Number.MAX_SAFE_INTEGER : 1,
    uniformPartition: p.partition === 'uniform',
    maxTp: p.tensorParallel ? backendMaxTp(caps, model) : 1,
    // Context parallelism where the backend runs it with the training spec's attention.
    maxCp: p.contextParallel && (training === undefined || training.flashAttention || caps.contextParallelUnfused) ? Number.MAX_SAFE_INTEGER : 1,
    maxVirtualStages: p.interleaved ? Number.MAX_SAFE_INTEGER : 1,
    maxEp: p.expertParallel ? Number.MAX_SAFE_INTEGER : 1,
    // Sequence parallelism that does not shard activations only adds collectives, and the analyzer would
    // credit it with memory the backend does not save: leave it out.
    sequenceParallel: p.sequenceParallel && caps.sequenceParallelShardsActivations,
    ckpt: p.ckpt === 'per-stage' ? 'fine' : 'all-or-none',
    zero: [...p.zero],
    offload,
  };
}

const CKPT_ORDER: readonly CkptMode[] = ['none', 'all-or-none', 'fine'];

function intersect<T>(a: readonly T[], b: readonly T[]): T[] {
  return a.filter((x) => b.includes(x));
}

/**
 * What `backend` runs for `model`, narrowed further by `overrides` (ablation flags): an override can
 * only restrict what the backend allows (smaller maxTp, fewer ZeRO levels...), never widen it.
 */
export function backendSpace(
  backend: BackendName, model: ModelSpec, overrides: Partial<SearchSpace> = {}, training?: Pick<TrainingSpec, 'flashAttention'>,
): SearchSpace {
  const base = mistSpace({ name: backend, ...backendSwitches(backendCapabilities(backend), model, training) });
  const o = overrides;
  const zero = o.zero ? intersect(base.zero, o.zero) : base.zero;
  if (zero.length === 0) throw new RangeError(`zero: got ${o.zero?.join(', ')}; the ${backend} backend runs ZeRO ${base.zero.join(', ')}`);
  const offload = o.offload
    ? Object.fromEntries(OFFLOAD_KINDS.map((k) => [k, intersect(base.offload[k], o.offload![k])])) as unknown as OffloadLevels
    : base.offload;
  for (const k of OFFLOAD_KINDS) if (offload[k].length === 0) offload[k] = [0];
  const ckpt = o.ckpt && CKPT_ORDER.indexOf(o.ckpt) < CKPT_ORDER.indexOf(base.ckpt) ? o.ckpt : base.ckpt;
  return {
    ...base,
    maxStages: Math.min(base.maxStages, o.maxStages ?? Infinity),
    maxTp: Math.min(base.maxTp, o.maxTp ?? Infinity),
    maxCp: Math.min(base.maxCp ?? 1, o.maxCp ?? Infinity),
    maxVirtualStages: Math.min(base.maxVirtualStages ?? 1, o.maxVirtualStages ?? Infinity),
    maxEp: Math.min(base.maxEp ?? 1, o.maxEp ?? Infinity),
    uniformPartition: base.uniformPartition || o.uniformPartition === true,
    uniformMesh: base.uniformMesh || o.uniformMesh === true,
    microBatchPow2: base.microBatchPow2 || o.microBatchPow2 === true,
    sequenceParallel: base.sequenceParallel && o.sequenceParallel !== false,
    ckpt,
    zero,
    offload,
    frontierSize: o.frontierSize ?? base.frontierSize,
    solver: o.solver ?? base.solver,
  };
}
