// What each executor backend runs of a plan, a model and a training spec. One table per backend; the
// coordinator refuses a job at submit with the feature named when its backend's table says no
// (instead of failing in the worker or training something else), and `mist tune --target cpu`
// searches only what the table allows (@mist/tuner backend-space.ts). The plan part has the same
// shape as the engine tables (engine-capabilities.ts) and is checked by the same function.
//
// Facts of the `cpu` table, each checked in packages/executor/src (the only executor backend today:
// worker/run-worker.ts refuses any other with "not implemented: backend ..."):
// - dtypes: every tensor is a Float32Array and the worker reads nothing of WorkerAssignment.training
//   but flashAttention (worker/run-worker.ts), so weights, gradients and compute are fp32 whatever
//   the training spec says.
// - replicated KV heads: model/dims.ts throws "not implemented" when tp does not divide kvHeads.
// - positions: model/layer.ts throws "not implemented: ALiBi positions"; learned and RoPE run.
// - dropout: model.dropout > 0 runs with a counter-based generator (model/dropout.ts, native
//   kernels/dropout.cc): the embedding and the residual branches keep 1-byte masks, the fused
//   attention draws its mask again in backward; every split draws one process's masks.
// - attention: flashAttention true runs one fused kernel that keeps the log-sum-exp, not the score
//   matrix (model/block-runner.ts `k.attention(attn, lse, ...)`), i.e. the memory of flash attention;
//   false runs the unfused core of core's block description (scores, causal softmax, dropout of the
//   probabilities, values: native kernels/unfused_attention.cc), keeping the s x s probabilities,
//   and selective recompute drops them and recomputes them in backward (model/block-runner.ts).
//   Context parallelism runs with the fused attention only (the ring merges the blocks by their
//   log-sum-exp; Megatron-Core's context parallelism likewise needs Transformer Engine's fused
//   attention).
// - sequence parallelism: model/block-runner.ts keeps b*s/t tokens per rank in the norm, dropout and
//   residual regions, all-gathering at a TP region's entry and reduce-scattering at its exit
//   (Korthikanti et al. 2022, Sec. 4.2.2), so the activations are sharded as the analyzer assumes.
// - pipeline: 1F1B over any partition with a different mesh, dp, tp per stage (topology/boundary.ts).
// - ZeRO 0-3 and offload ratios of weights, grads, optimizer states and activations with any ZeRO
//   level (runtime/unit-memory.ts, runtime/optimizer.ts, memory/activations.ts); per-stage ckptLayers
//   (model/stage.ts).
// - fp8: no fp8 type or kernel anywhere (Float32Array tensors only): no fp8 linear layers.
// - context parallelism: a stage's cp ranks each hold chunks r and 2cp-1-r of every sequence
//   (model/context-parallel.ts: global positions for learned positions, RoPE, the causal mask and
//   the dropout draws), attention is a K/V ring over the stage's CP group with the log-sum-exp merge
//   (model/ring-attention.ts, native kernels/ring_attention.cc), gradients and ZeRO shards span
//   dp * cp (runtime/rank-runtime.ts, topology/ranks.ts); runtime/equivalence.test.ts checks the
//   losses of one process. Neighbouring pipeline stages may have different cp (runtime/routes.ts
//   sends each receiver the positions it holds from the sender cp ranks that hold them).
// - data: the synthetic stream, the shipped corpus, or a token file (train/token-file.ts).
// - mixture of experts: model/moe.ts runs the router's top-k gate (softmax over the top-k logits,
//   Megatron-Core's default), the dispatch and combine (all-to-all over the stage's expert-parallel
//   group built from grouped send/recv: runtime/all-to-all.ts), the experts' MLPs on however many
//   rows each receives (dropless, no capacity factor), the weighted sum and all their backward, with
//   tp (expert tensor parallelism, with or without sequence parallelism). Any ep dividing dp * cp
//   and the experts (core's rule); the experts' units shard and sync over the expert-data-parallel
//   group at every ZeRO level and offload (runtime/unit-memory.ts, topology/expert-groups.ts);
//   runtime/moe-equivalence.test.ts checks the losses of one process. The executor routes what the
//   tokens choose; the analyzer assumes balanced routing.
// - communication overlap: every TP collective is awaited where the layer reaches it
//   (runtime/tp-hooks.ts `timer.wait(tp.allGather(...))`), and the ZeRO-1/2 all-gather of the updated
//   shards ends the optimizer step (runtime/unit-memory.ts optimizerStep), so neither
//   TrainingSpec.tpCommOverlap nor paramGatherOverlap (Megatron-Core's --tp-comm-overlap and
//   --overlap-param-gather) is run: a job asking for them would train at another speed than predicted.
import { headDim, type ModelSpec } from './model';
import { type Plan, stageCp } from './plan';
import { type Dtype, FP32_GRAD_ACCUM_FEATURE, type TrainingSpec } from './training';
import { type CapabilityViolation, fp8Violation, modelRuleViolations, type PlanRules, planRuleViolations } from './engine-capabilities';

export const BACKEND_NAMES = ['cpu', 'cuda'] as const;
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
  /** May a stage with cp > 1 run the unfused attention (flashAttention false). */
  contextParallelUnfused: boolean;
  /** Head sizes the fused (flash) attention kernel takes; absent: any. */
  flashHeadDims?: readonly number[];
  /** TP collectives pipelined with their GEMMs (TrainingSpec.tpCommOverlap true). */
  tpCommOverlap: boolean;
  /** The ZeRO-1/2 post-step parameter all-gather overlapped with the next forward (TrainingSpec.paramGatherOverlap true). */
  paramGatherOverlap: boolean;
  /**
   * How its runtime reduces ZeRO-0/1 gradients (TrainingSpec.gradReduceOverlap): true beside the last
   * backward, false after it. A prediction for the backend (`--target cpu|cuda`) takes this; a job's
   * spec is not refused for another value (the runtime's choice, not the model's).
   */
  gradReduceOverlap: boolean;
  /**
   * Whether its runtime runs a TP region's backward collectives beside the column-parallel linears'
   * backward GEMMs (TrainingSpec.tpBackwardOverlap); a prediction for the backend takes this, as
   * gradReduceOverlap.
   */
  tpBackwardOverlap: boolean;
  /** How its loss reads the logits (TrainingSpec.crossEntropy). */
  crossEntropy: readonly TrainingSpec['crossEntropy'][];
  /** How it runs the layer's element-wise ops (TrainingSpec.elementwise). */
  elementwise: readonly TrainingSpec['elementwise'][];
  /** What its sequence-parallel linears keep of their gathered input (TrainingSpec.sequenceParallelInput). */
  sequenceParallelInput: readonly TrainingSpec['sequenceParallelInput'][];
  /** The dtypes its gradients accumulate in (TrainingSpec.gradAccumDtype). */
  gradAccumDtype: readonly TrainingSpec['gradAccumDtype'][];
}

const CPU: BackendCapabilities = {
  backend: 'cpu',
  sources: [
    'packages/executor/src/model/dims.ts', 'packages/executor/src/model/layer.ts', 'packages/executor/src/model/block-runner.ts',
    'packages/executor/src/model/dropout.ts', 'packages/executor/src/runtime/tp-hooks.ts',
    'packages/executor/src/runtime/unit-memory.ts', 'packages/executor/src/topology/boundary.ts', 'packages/executor/src/worker/run-worker.ts',
    'packages/executor/src/model/context-parallel.ts', 'packages/executor/src/model/ring-attention.ts', 'packages/executor/src/runtime/routes.ts',
    'packages/executor/src/model/moe.ts', 'packages/executor/src/runtime/all-to-all.ts', 'packages/executor/src/topology/expert-groups.ts',
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
    // Ring attention per stage, any cp per stage (see above).
    contextParallel: true,
    // Mixture of experts and expert parallelism per stage, with every ZeRO level (see above).
    mixtureOfExperts: true,
    expertParallel: true,
    // Per stage: with the unfused attention the layer drops core's selective set (the s x s
    // probabilities) and recomputes it in backward; with the fused attention the set is empty and the
    // switch changes nothing (block/selective.ts).
    selectiveRecompute: 'per-stage',
    // torchtitan's per-op policy is not run by this executor (its layers keep all or recompute all).
    opRecompute: 'none',
  },
  dtypes: ['fp32'],
  replicatedKvHeads: false,
  positional: ['learned', 'rope'],
  dropout: true,
  flashAttention: [true, false],
  sequenceParallelShardsActivations: true,
  contextParallelUnfused: false,
  tpCommOverlap: false,
  paramGatherOverlap: false,
  // RankRuntime's overlapComm is off on the CPU device: the communicator's thread would take cores
  // from the kernels (runtime/rank-runtime.ts), so the flat gradients are all-reduced after the backward.
  gradReduceOverlap: false,
  // The TP hooks wait for each collective before the next kernel (runtime/tp-hooks.ts), on every device.
  tpBackwardOverlap: false,
  // The vocab-parallel cross-entropy kernel reads the compute-dtype logits (kernels/cross_entropy).
  crossEntropy: ['fused'],
  // One kernel per norm, RoPE and activation (kernels/), fused.
  elementwise: ['fused'],
  // The block runner saves a gathered tensor's shard and gathers it again in backward (model/block-runner.ts).
  sequenceParallelInput: ['sharded'],
  // Gradients in the parameters' dtype beside fp32 master weights and moments (runtime/optimizer.ts).
  gradAccumDtype: ['param'],
};

// The `cuda` backend: the same executor (model and runtime code are generic over the device:
// packages/executor/src/device) on the native addon's CUDA ops (packages/native/src/cuda), one GPU
// per worker, NCCL collectives (worker/run-worker.ts backend 'nccl'). It differs from `cpu` where the
// code says so:
// - dtypes: bf16 or fp16 (activations, compute copies and gradients in that dtype, fp32 master weights
//   and moments: train/optimizer.ts, runtime/optimizer.ts; fp16 with dynamic loss scaling,
//   train/loss-scaler.ts, in the single-process trainer and the runtime) or fp32.
// - mixture of experts: refused off the CPU device (model/block-runner.ts, runtime/rank-runtime.ts:
//   the routing's host bookkeeping and the all-to-all run on host arrays).
// - the fused attention kernel takes head sizes 16, 32, 64 and 128 (cuda/ops/attention_launch.h);
//   the unfused core takes any.
const CUDA: BackendCapabilities = {
  ...CPU,
  backend: 'cuda',
  sources: [
    ...CPU.sources.filter((f) => !/moe|all-to-all|expert-groups/.test(f)),
    'packages/executor/src/device/cuda-device.ts', 'packages/executor/src/runtime/optimizer.ts', 'packages/native/src/cuda/ops/attention_launch.h',
  ],
  plan: { ...CPU.plan, mixtureOfExperts: false, expertParallel: false },
  dtypes: ['bf16', 'fp32', 'fp16'],
  flashHeadDims: [16, 32, 64, 128],
  // On a GPU NCCL runs on its own stream and RankRuntime's overlapComm is on: each unit's gradients
  // are reduced beside the last backward (runtime/unit-memory.ts).
  gradReduceOverlap: true,
};

const TABLES: Record<BackendName, BackendCapabilities> = { cpu: CPU, cuda: CUDA };

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
 * The training spec's choices a backend table lists (what its kernels run), each refused by
 * backendViolations when the spec asks for another: the field, its default, and the words of the refusal.
 */
const TRAINING_CHOICES = [
  { field: 'crossEntropy', fallback: 'fused', feature: 'the loss\'s reading of the logits', verb: 'runs crossEntropy' },
  { field: 'elementwise', fallback: 'fused', feature: 'element-wise ops (norms, RoPE, SwiGLU, masking, dropout-add) as separate eager kernels', verb: 'runs elementwise' },
  { field: 'sequenceParallelInput', fallback: 'sharded', feature: 'the all-gathered input kept for backward by sequence-parallel linears', verb: 'keeps' },
  { field: 'gradAccumDtype', fallback: 'param', feature: FP32_GRAD_ACCUM_FEATURE, verb: 'accumulates them in' },
] as const;

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
  if (training.tpCommOverlap === true && !caps.tpCommOverlap) {
    out.push({
      feature: 'TP communication overlapped with the GEMMs (Megatron-Core --tp-comm-overlap)', field: 'training.tpCommOverlap',
      detail: `got true; ${who} runs its TP collectives exposed (tpCommOverlap false only)`,
    });
  }
  if (training.paramGatherOverlap === true && !caps.paramGatherOverlap) {
    out.push({
      feature: 'the parameter all-gather overlapped with the next forward (Megatron-Core --overlap-param-gather)', field: 'training.paramGatherOverlap',
      detail: `got true; ${who} ends the optimizer step with the ZeRO-1/2 all-gather (paramGatherOverlap false only)`,
    });
  }
  for (const c of TRAINING_CHOICES) {
    const got = training[c.field] ?? c.fallback;
    const allowed: readonly string[] = caps[c.field];
    if (!allowed.includes(got)) {
      out.push({ feature: c.feature, field: `training.${c.field}`, detail: `got ${got}; ${who} ${c.verb} ${allowed.join(', ')} only` });
    }
  }
  const fp8 = fp8Violation(training.fp8 ?? 'none', caps.plan, who);
  if (fp8) out.push({ ...fp8, field: 'training.fp8' });
  if (model.dropout > 0 && !caps.dropout) {
    out.push({ feature: 'dropout', field: 'model.dropout', detail: `got ${model.dropout}; ${who} trains without dropout only (0)` });
  }
  const d = headDim(model);
  if (caps.flashHeadDims && training.flashAttention && !caps.flashHeadDims.includes(d)) {
    out.push({
      feature: `flash attention with head size ${d}`, field: 'training.flashAttention',
      detail: `${model.name} has head size ${d}; ${who}'s fused attention takes ${caps.flashHeadDims.join(', ')} (flashAttention false runs the unfused core)`,
    });
  }
  if (!caps.positional.includes(model.positional)) {
    out.push({ feature: `${model.positional === 'alibi' ? 'ALiBi' : model.positional} positions`, field: 'model.positional', detail: `got ${model.positional}; ${who} runs ${caps.positional.join(', ')}` });
  }
  out.push(...modelRuleViolations(model, caps.plan, who));
  if (!plan) return out;
  for (const v of planRuleViolations(plan, caps.plan, who)) out.push({ ...v, field: `plan.${v.field}` });
  const flash = plan.flashAttention ?? training.flashAttention;
  plan.stages.forEach((s, i) => {
    if (!flash && !caps.contextParallelUnfused && stageCp(s) > 1) {
      out.push({
        feature: 'context parallelism with the unfused attention (flashAttention false)',
        field: `plan.stages[${i}].cp`,
        detail: `got ${stageCp(s)}; ${who} runs context parallelism with flashAttention true only (cp must be 1 with flashAttention false)`,
      });
    }
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
