// What each executor backend runs of a plan, a model and a training spec. One table per backend; the
// coordinator refuses a job at submit with the feature named when its backend's table says no
// (instead of failing in the worker or training something else), and `mist tune --target cpu`
// searches only what the table allows (@mist/tuner backend-space.ts). The plan part has the same
// shape as the engine tables (engine-capabilities.ts) and is checked by the same function.
//
// Facts of the `cpu` table, each checked in packages/executor/src (the only executor backend today:
// worker/run-worker.ts refuses any other with "not implemented: backend ..."):
// - dtypes: every tensor is a Float32Array and the worker never reads WorkerAssignment.training, so
//   weights, gradients and compute are fp32 whatever the training spec says.
// - replicated KV heads: model/dims.ts throws "not implemented" when tp does not divide kvHeads.
// - positions: model/layer.ts throws "not implemented: ALiBi positions"; learned and RoPE run.
// - dropout: model.dropout > 0 runs with a counter-based generator (model/dropout.ts, native
//   kernels/dropout.cc): the embedding and the residual branches keep 1-byte masks, the fused
//   attention draws its mask again in backward; every split draws one process's masks.
// - attention: one fused kernel that keeps the log-sum-exp, not the score matrix (model/layer.ts
//   `k.attention(attn, lse, ...)`), i.e. the memory of flash attention; flashAttention: false is not run.
// - sequence parallelism: model/block-runner.ts keeps b*s/t tokens per rank in the norm, dropout and
//   residual regions, all-gathering at a TP region's entry and reduce-scattering at its exit
//   (Korthikanti et al. 2022, Sec. 4.2.2), so the activations are sharded as the analyzer assumes.
// - pipeline: 1F1B over any partition with a different mesh, dp, tp per stage (topology/boundary.ts).
// - ZeRO 0-3 and offload ratios of weights, grads, optimizer states and activations with any ZeRO
//   level (runtime/unit-memory.ts, runtime/optimizer.ts, memory/activations.ts); per-stage ckptLayers
//   (model/stage.ts).
// - fp8: no fp8 type or kernel anywhere (Float32Array tensors only): no fp8 linear layers.
// - context parallelism: the attention kernel (native kernels/attention.cc) attends a rank's queries
//   to its own keys only and topology/ has no CP group or K/V ring: a stage's cp must be 1.
// - data: the synthetic stream, the shipped corpus, or a token file (train/token-file.ts).
import type { ModelSpec } from './model';
import type { Plan } from './plan';
import type { Dtype, TrainingSpec } from './training';
import { type CapabilityViolation, fp8Violation, type PlanRules, planRuleViolations } from './engine-capabilities';

export const BACKEND_NAMES = ['cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export interface BackendCapabilities {
  backend: BackendName;
  /** Where the facts come from (source files of the executor). */
  sources: string[];
  /** What the backend runs of a plan's shape (same rules and checker as the engine tables). */
  plan: PlanRules;
  /** Dtypes the backend computes and stores in (TrainingSpec.paramDtype and computeDtype). */
  dtypes: readonly Dtype[];
  /** May tp be a multiple of the key/value head count (each KV head replicated over tp / kvHeads ranks, Megatron-style). */
  replicatedKvHeads: boolean;
  /** ModelSpec.positional values the backend runs. */
  positional: readonly ModelSpec['positional'][];
  /** Dropout in training (ModelSpec.dropout > 0; a backend without it would train a different model). */
  dropout: boolean;
  /** TrainingSpec.flashAttention values the backend runs (true: scores are not kept for backward). */
  flashAttention: readonly boolean[];
  /** Sequence parallelism shards the activations over the TP group (false: collectives only, no memory saved). */
  sequenceParallelShardsActivations: boolean;
}

const CPU: BackendCapabilities = {
  backend: 'cpu',
  sources: [
    'packages/executor/src/model/dims.ts', 'packages/executor/src/model/layer.ts', 'packages/executor/src/model/block-runner.ts',
    'packages/executor/src/model/dropout.ts', 'packages/executor/src/runtime/tp-hooks.ts',
    'packages/executor/src/runtime/unit-memory.ts', 'packages/executor/src/topology/boundary.ts', 'packages/executor/src/worker/run-worker.ts',
  ],
  plan: {
    pipeline: true,
    partition: 'any',
    perStageStrategy: true,
    tensorParallel: true,
    sequenceParallel: true,
    sequenceParallelForcedWithTp: false,
    zero: [0, 1, 2, 3],
    zeroWithPipeline: [0, 1, 2, 3],
    zeroWithTensorParallel: [0, 1, 2, 3],
    zeroIgnoredWithoutDataParallel: false,
    ckpt: 'per-stage',
    offload: { weights: 'ratio', grads: 'ratio', optim: 'ratio', activations: 'ratio' },
    offloadMinZero: {},
    partialOffloadMinZero: {},
    offloadTied: [],
    fp8: [],
    // Interleaved 1F1B: v model chunks per rank on core's interleavedSchedule (runtime/rank-runtime.ts,
    // runtime/interleaved.test.ts: losses of one process, checkpoints across plans).
    interleaved: true,
    contextParallel: false,
    // Accepted per stage: the executor runs the fused (flash-style) attention only, which keeps no
    // s x s tensor, so the selective set is empty and the switch changes nothing (block/selective.ts).
    selectiveRecompute: 'per-stage',
  },
  dtypes: ['fp32'],
  replicatedKvHeads: false,
  positional: ['learned', 'rope'],
  dropout: true,
  flashAttention: [true],
  sequenceParallelShardsActivations: true,
};

const TABLES: Record<BackendName, BackendCapabilities> = { cpu: CPU };

export function isBackendName(s: string): s is BackendName {
  return (BACKEND_NAMES as readonly string[]).includes(s);
}

/** The capability table of an executor backend; throws a RangeError naming the allowed values. */
export function backendCapabilities(backend: BackendName): BackendCapabilities {
  if (!isBackendName(backend)) {
    throw new RangeError(`backend: got ${JSON.stringify(backend)}; allowed: ${BACKEND_NAMES.join(', ')}`);
  }
  return TABLES[backend];
}

/** The largest tp the backend runs for a model when its KV heads cannot be replicated (tp must divide kvHeads). */
export function backendMaxTp(caps: BackendCapabilities, model: ModelSpec): number {
  return caps.replicatedKvHeads ? model.heads : model.kvHeads;
}

/**
 * Everything in a job the backend cannot run as asked; empty when it runs it. `plan` null: a job to
 * be tuned (only the model and training spec are checked; the tuner's space does the rest).
 */
export function backendViolations(
  caps: BackendCapabilities, job: { model: ModelSpec; training: TrainingSpec; plan: Plan | null },
): CapabilityViolation[] {
  const who = `the ${caps.backend} backend`;
  const out: CapabilityViolation[] = [];
  const { model, training, plan } = job;
  for (const f of ['paramDtype', 'computeDtype'] as const) {
    if (!caps.dtypes.includes(training[f])) {
      out.push({ feature: `${training[f]} training`, field: `training.${f}`, detail: `got ${training[f]}; ${who} runs ${caps.dtypes.join(', ')} only` });
    }
  }
  if (!caps.flashAttention.includes(training.flashAttention)) {
    out.push({
      feature: training.flashAttention ? 'flash attention' : 'attention that keeps its score matrix',
      field: 'training.flashAttention',
      detail: `got ${training.flashAttention}; ${who} runs flashAttention ${caps.flashAttention.join(', ')} only`,
    });
  }
  if (plan?.flashAttention !== undefined && !caps.flashAttention.includes(plan.flashAttention)) {
    out.push({ feature: 'attention that keeps its score matrix', field: 'plan.flashAttention', detail: `got ${plan.flashAttention}; ${who} runs flashAttention ${caps.flashAttention.join(', ')} only` });
  }
  const fp8 = fp8Violation(training.fp8 ?? 'none', caps.plan, who);
  if (fp8) out.push({ ...fp8, field: 'training.fp8' });
  if (model.dropout > 0 && !caps.dropout) {
    out.push({ feature: 'dropout', field: 'model.dropout', detail: `got ${model.dropout}; ${who} trains without dropout only (0)` });
  }
  if (!caps.positional.includes(model.positional)) {
    out.push({ feature: `${model.positional === 'alibi' ? 'ALiBi' : model.positional} positions`, field: 'model.positional', detail: `got ${model.positional}; ${who} runs ${caps.positional.join(', ')}` });
  }
  if (!plan) return out;
  for (const v of planRuleViolations(plan, caps.plan, who)) out.push({ ...v, field: `plan.${v.field}` });
  plan.stages.forEach((s, i) => {
    if (!caps.replicatedKvHeads && model.kvHeads % s.tp !== 0) {
      out.push({
        feature: 'replicated key/value heads (tp above the key/value head count)',
        field: `plan.stages[${i}].tp`,
        detail: `got ${s.tp}; ${model.name} has ${model.kvHeads} key/value heads and ${who} needs tp to divide them`,
      });
    }
  });
  return out;
}

/** One line per violation: `field: feature (detail)`. */
export function formatViolations(vs: readonly CapabilityViolation[]): string {
  return vs.map((v) => `${v.field}: ${v.feature} (${v.detail})`).join('; ');
}
