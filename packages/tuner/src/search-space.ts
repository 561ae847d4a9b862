// The search space of the tuner and its presets. Every dimension is a switch so that an ablation is
// one flag: the Mist space turns everything on; the Megatron-LM and DeepSpeed spaces are the subsets
// a person would search with those systems (Mist, EuroSys'25, Sec. 7 baselines).
import { type ZeroLevel, ZERO_LEVELS } from '@mist/core';

export type CkptMode = 'fine' | 'all-or-none' | 'none';
export type InterStageSolver = 'dp' | 'milp';
export type SpaceName = 'mist' | 'megatron' | 'deepspeed';

/** Offload ratio levels per model state, ascending, each starting at 0. */
export interface OffloadLevels {
  weights: number[];
  grads: number[];
  optim: number[];
  activations: number[];
}

export interface SearchSpace {
  name: string;
  /** Largest number of pipeline stages (1 turns pipelining off). */
  maxStages: number;
  /** Every stage gets layers / pp layers (pp must divide the layer count). */
  uniformPartition: boolean;
  /** Every stage uses the same device mesh; otherwise meshes may differ as long as they tile the cluster. */
  uniformMesh: boolean;
  /** Micro-batch sizes restricted to powers of two. */
  microBatchPow2: boolean;
  /** Largest tensor-parallel degree (1 turns TP off); TP always stays inside a node. */
  maxTp: number;
  /** Try Megatron sequence parallelism when tp > 1. */
  sequenceParallel: boolean;
  /** fine: ckptLayers 0..layers of the stage; all-or-none: 0 or all; none: 0. */
  ckpt: CkptMode;
  zero: ZeroLevel[];
  offload: OffloadLevels;
  /** Points kept per Pareto frontier for the inter-stage step (Infinity keeps them all). */
  frontierSize: number;
  solver: InterStageSolver;
}

/** 0, step, 2*step, ..., 1 (step must divide 1 into whole steps, e.g. 1/8). */
export function ratioGrid(step: number): number[] {
  const n = Math.round(1 / step);
  if (!(step > 0 && step <= 1) || Math.abs(n * step - 1) > 1e-9) {
    throw new RangeError(`offload step must be 1/n for a whole n (e.g. 0.125), got ${step}`);
  }
  return Array.from({ length: n + 1 }, (_, i) => i / n);
}

export const NO_OFFLOAD_LEVELS: OffloadLevels = Object.freeze({ weights: [0], grads: [0], optim: [0], activations: [0] });

export function uniformOffloadLevels(step: number): OffloadLevels {
  const g = ratioGrid(step);
  return { weights: g, grads: g, optim: g, activations: g };
}

export const DEFAULT_FRONTIER_SIZE = 30;
export const DEFAULT_OFFLOAD_STEP = 1 / 8;

/** Everything: non-uniform stages, mixed meshes, any micro-batch, fine-grained checkpointing, ZeRO 0-3, offload on a 1/8 grid. */
export function mistSpace(overrides: Partial<SearchSpace> = {}): SearchSpace {
  return {
    name: 'mist',
    maxStages: Number.MAX_SAFE_INTEGER,
    uniformPartition: false,
    uniformMesh: false,
    microBatchPow2: false,
    maxTp: Number.MAX_SAFE_INTEGER,
    sequenceParallel: true,
    ckpt: 'fine',
    zero: [...ZERO_LEVELS],
    offload: uniformOffloadLevels(DEFAULT_OFFLOAD_STEP),
    frontierSize: DEFAULT_FRONTIER_SIZE,
    solver: 'dp',
    ...overrides,
  };
}

/**
 * Megatron-LM as a person tunes it: a TP x PP x DP grid with a uniform layer partition and the same
 * mesh for every stage, micro-batch over powers of two, full or no activation recomputation, the
 * distributed optimizer (ZeRO-1) or none, sequence parallelism with TP, no offloading.
 */
export function megatronSpace(overrides: Partial<SearchSpace> = {}): SearchSpace {
  return mistSpace({
    name: 'megatron',
    uniformPartition: true,
    uniformMesh: true,
    microBatchPow2: true,
    ckpt: 'all-or-none',
    zero: [0, 1],
    offload: NO_OFFLOAD_LEVELS,
    ...overrides,
  });
}

/**
 * DeepSpeed ZeRO as a person tunes it: one stage, pure data parallelism, ZeRO 1-3, optionally the
 * whole optimizer state offloaded to the host (ZeRO-Offload), full or no checkpointing, micro-batch
 * over powers of two.
 */
export function deepspeedSpace(overrides: Partial<SearchSpace> = {}): SearchSpace {
  return mistSpace({
    name: 'deepspeed',
    maxStages: 1,
    uniformPartition: true,
    uniformMesh: true,
    microBatchPow2: true,
    maxTp: 1,
    sequenceParallel: false,
    ckpt: 'all-or-none',
    zero: [1, 2, 3],
    offload: { weights: [0], grads: [0], optim: [0, 1], activations: [0] },
    ...overrides,
  });
}

export function spaceByName(name: SpaceName, overrides: Partial<SearchSpace> = {}): SearchSpace {
  switch (name) {
    case 'mist':
      return mistSpace(overrides);
    case 'megatron':
      return megatronSpace(overrides);
    case 'deepspeed':
      return deepspeedSpace(overrides);
    default:
      throw new RangeError(`unknown search space "${String(name)}"; allowed: mist, megatron, deepspeed`);
  }
}

/** Throws a RangeError naming the first inconsistent field. */
export function checkSearchSpace(s: SearchSpace): void {
  if (!(s.maxStages >= 1)) throw new RangeError(`space ${s.name}: maxStages must be >= 1`);
  if (!(s.maxTp >= 1)) throw new RangeError(`space ${s.name}: maxTp must be >= 1`);
  if (s.zero.length === 0) throw new RangeError(`space ${s.name}: zero needs at least one level`);
  if (!(s.frontierSize >= 1)) throw new RangeError(`space ${s.name}: frontierSize must be >= 1`);
  for (const [k, levels] of Object.entries(s.offload) as [keyof OffloadLevels, number[]][]) {
    if (levels.length === 0 || levels[0] !== 0) throw new RangeError(`space ${s.name}: offload.${k} levels must start at 0`);
    for (let i = 1; i < levels.length; i++) {
      if (!(levels[i] > levels[i - 1] && levels[i] <= 1)) {
        throw new RangeError(`space ${s.name}: offload.${k} levels must increase within [0, 1]`);
      }
    }
  }
}
