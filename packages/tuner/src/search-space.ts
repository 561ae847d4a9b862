// The search space of the tuner and its presets. Every dimension is a switch so that an ablation is
// one flag: the Mist space turns everything on; an engine space (megatron, nemo, deepspeed,
// torchtitan) is exactly what that engine can run, as core's capability table says (the Mist
// paper's baselines, EuroSys'25 Sec. 7, are the megatron and deepspeed spaces).
import { ENGINE_NAMES, type EngineName, type ZeroLevel, ZERO_LEVELS } from '@mist/core';

export type CkptMode = 'fine' | 'all-or-none' | 'none';
export type InterStageSolver = 'dp' | 'milp';
export type SpaceName = 'mist' | EngineName;
export const SPACE_NAMES: readonly SpaceName[] = ['mist', ...ENGINE_NAMES];

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
  /**
   * Largest context-parallel degree (Megatron-Core's --context-parallel-size: the sequence split over
   * cp ranks, ring attention); absent or 1 turns CP off.
   */
  maxCp?: number;
  /**
   * Largest expert-parallel degree (mixture-of-experts models; Megatron-Core's
   * --expert-model-parallel-size: the experts split over ep of a stage's dp * cp ranks); absent or 1
   * turns EP off. Dense models have ep 1 whatever it says.
   */
  maxEp?: number;
  /**
   * Largest model-chunk count per rank of interleaved 1F1B plans (Megatron-LM's virtual pipeline
   * stages; interleaved-search.ts); 1 turns interleaving off. In the Mist space (absent: off) an
   * interleaved plan has equal layers and one mesh per rank and no offloading; an engine space
   * (absent: no limit) allows what its engine runs, up to this count.
   */
  maxVirtualStages?: number;
  /** Try Megatron sequence parallelism when tp > 1. */
  sequenceParallel: boolean;
  /** fine: ckptLayers 0..layers of the stage; all-or-none: 0 or all; none: 0. */
  ckpt: CkptMode;
  /**
   * Try selective recompute of the attention core per stage (Korthikanti et al. 2022, Sec. 5) when
   * the training spec has no flash attention (with flash it changes nothing, so it is not searched).
   */
  selectiveRecompute: boolean;
  zero: ZeroLevel[];
  offload: OffloadLevels;
  /** Points kept per Pareto frontier for the inter-stage step (Infinity keeps them all). */
  frontierSize: number;
  solver: InterStageSolver;
  /**
   * Search only what this engine can run (core's engineCapabilities), within the switches above: one
   * strategy for all stages, the engine's partitions, ZeRO levels, offload kinds and recompute.
   */
  engine?: EngineName;
  /**
   * Also tune with fp8 linear layers where the GPU (and the engine) has them, and keep the faster
   * plan (fp8-choice.ts; the fp8 choice is global, so the two searches are exact). Absent: no.
   */
  fp8Choice?: boolean;
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

/**
 * Everything: non-uniform stages, mixed meshes, any micro-batch, fine-grained checkpointing,
 * selective recompute (without flash attention), ZeRO 0-3, offload on a 1/8 grid.
 */
export function mistSpace(overrides: Partial<SearchSpace> = {}): SearchSpace {
  return {
    name: 'mist',
    maxStages: Number.MAX_SAFE_INTEGER,
    uniformPartition: false,
    uniformMesh: false,
    microBatchPow2: false,
    maxTp: Number.MAX_SAFE_INTEGER,
    maxCp: Number.MAX_SAFE_INTEGER,
    maxEp: Number.MAX_SAFE_INTEGER,
    maxVirtualStages: Number.MAX_SAFE_INTEGER,
    sequenceParallel: true,
    ckpt: 'fine',
    selectiveRecompute: true,
    zero: [...ZERO_LEVELS],
    offload: uniformOffloadLevels(DEFAULT_OFFLOAD_STEP),
    frontierSize: DEFAULT_FRONTIER_SIZE,
    solver: 'dp',
    ...overrides,
  };
}

/** What an engine can run (its capability table in core), with no further restriction. */
export function engineSpace(engine: EngineName, overrides: Partial<SearchSpace> = {}): SearchSpace {
  return mistSpace({ name: engine, engine, ...overrides });
}

/**
 * Megatron-LM (the Mist paper's baseline): one tp, pp, dp, micro-batch, sequence-parallel and
 * recompute setting for the whole model, even layers (the first and last stage may differ), the
 * distributed optimizer (ZeRO-1) or none, no offloading.
 */
export function megatronSpace(overrides: Partial<SearchSpace> = {}): SearchSpace {
  return engineSpace('megatron', overrides);
}

/**
 * DeepSpeed (the Mist paper's other baseline): ZeRO 0-3 over data parallelism, pipelining only with
 * ZeRO 0/1, optimizer offload (partial with ZeRO-3) and parameter offload with ZeRO-3, activation
 * checkpointing on or off for the whole model, no tensor parallelism.
 */
export function deepspeedSpace(overrides: Partial<SearchSpace> = {}): SearchSpace {
  return engineSpace('deepspeed', overrides);
}

export function spaceByName(name: SpaceName, overrides: Partial<SearchSpace> = {}): SearchSpace {
  if (name === 'mist') return mistSpace(overrides);
  if ((ENGINE_NAMES as readonly string[]).includes(name)) return engineSpace(name, overrides);
  throw new RangeError(`unknown search space "${String(name)}"; allowed: ${SPACE_NAMES.join(', ')}`);
}

/** Throws a RangeError naming the first inconsistent field. */
export function checkSearchSpace(s: SearchSpace): void {
  if (!(s.maxStages >= 1)) throw new RangeError(`space ${s.name}: maxStages must be >= 1`);
  if (!(s.maxTp >= 1)) throw new RangeError(`space ${s.name}: maxTp must be >= 1`);
  if (s.maxCp !== undefined && !(s.maxCp >= 1)) throw new RangeError(`space ${s.name}: maxCp must be >= 1`);
  if (s.maxEp !== undefined && !(s.maxEp >= 1)) throw new RangeError(`space ${s.name}: maxEp must be >= 1`);
  if (s.maxVirtualStages !== undefined && !(s.maxVirtualStages >= 1)) throw new RangeError(`space ${s.name}: maxVirtualStages must be >= 1`);
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
