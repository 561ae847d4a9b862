// What each training engine can express of a Mist plan. One table per engine; the exporters
// (@mist/engines), `mist tune --target` and the tuner's Megatron-LM / DeepSpeed baselines all read
// these tables, so a plan is "expressible" in exactly one sense across the code base.
//
// Facts checked against the engines' sources (tags named in each table's `engineVersion`):
// - Megatron-LM core_v0.14.0, megatron/training/arguments.py (flags quoted below).
// - DeepSpeed v0.19.5/0.19.6 (master of 2026-08), deepspeed/runtime/zero/config.py, zero/offload_config.py,
//   runtime/pipe/engine.py, runtime/pipe/module.py, runtime/config.py (get_pipeline_config).
// - torchtitan v0.2.2, torchtitan/config/job_config.py and torchtitan/models/llama3/infra/parallelize.py.
// - NeMo 2 wraps Megatron-Core (MegatronStrategy passes tensor/pipeline/sequence parallel sizes,
//   recompute and the distributed optimizer straight to Megatron-Core), so its table is Megatron's.
import { type ModelSpec } from './model';
import { type Plan, type StageStrategy, type ZeroLevel, stageCp, stageEp, stageLayerCount } from './plan';
import { type Dtype, type FlashAttentionKernel, type Fp8Recipe, type TrainingSpec } from './training';

export const ENGINE_NAMES = ['megatron', 'nemo', 'deepspeed', 'torchtitan'] as const;
export type EngineName = (typeof ENGINE_NAMES)[number];

/** none: the ratio must be 0; full: 0 or 1; ratio: any value in [0, 1]. */
export type OffloadCapability = 'none' | 'full' | 'ratio';

/**
 * all-or-none: either every layer of every stage is checkpointed or none is (one global switch).
 * uniform-count: one count N for the whole model; each stage recomputes min(N, its layers)
 *   (Megatron `--recompute-method block --recompute-num-layers N`: the first N layers of every stage).
 * per-stage: any ckptLayers per stage.
 */
export type CkptCapability = 'all-or-none' | 'uniform-count' | 'per-stage';

export const OFFLOAD_KINDS = ['weights', 'grads', 'optim', 'activations'] as const;
export type OffloadKind = (typeof OFFLOAD_KINDS)[number];

export interface EngineCapabilities {
  engine: EngineName;
  /** The engine version the table (and the exporter) was written for, e.g. 'Megatron-LM core_v0.14.0'. */
  engineVersion: string;
  /** Where the facts come from (docs page / source file). */
  sources: string[];
  /** May pp > 1. */
  pipeline: boolean;
  /**
   * How layers may be split over stages. uniform: every stage has layers/pp layers;
   * uniform-except-first-last: the middle stages have the same count, first and last may differ; any: anything.
   */
  partition: 'uniform' | 'uniform-except-first-last' | 'any';
  /** false: every stage has the same mesh, dp, tp, sequenceParallel, microBatchSize, zero and offload. */
  perStageStrategy: boolean;
  tensorParallel: boolean;
  /** May sequenceParallel be true (it needs tp > 1 in every engine). */
  sequenceParallel: boolean;
  /** With tp > 1 the engine always shards the sequence dimension of norms/dropout (sequenceParallel must be true). */
  sequenceParallelForcedWithTp: boolean;
  /** ZeRO levels allowed with pp = 1. */
  zero: readonly ZeroLevel[];
  /** ZeRO levels allowed with pp > 1. */
  zeroWithPipeline: readonly ZeroLevel[];
  /** ZeRO levels allowed in a stage with tp > 1. */
  zeroWithTensorParallel: readonly ZeroLevel[];
  /**
   * true: the engine shards nothing when dp = 1 (no data-parallel wrapper is applied), so the ZeRO level of
   * a dp = 1 stage means nothing and is not checked; the exporter writes the engine's no-sharding setting.
   */
  zeroIgnoredWithoutDataParallel: boolean;
  ckpt: CkptCapability;
  offload: { weights: OffloadCapability; grads: OffloadCapability; optim: OffloadCapability; activations: OffloadCapability };
  /** ZeRO level an offload kind needs (DeepSpeed: parameter offload needs ZeRO-3), if any. */
  offloadMinZero: Partial<Record<OffloadKind, ZeroLevel>>;
  /** ZeRO level a partial (strictly between 0 and 1) offload of a kind needs, if higher than offloadMinZero. */
  partialOffloadMinZero: Partial<Record<OffloadKind, ZeroLevel>>;
  /** Pairs of offload kinds the engine moves together: their ratios must be equal. */
  offloadTied: readonly (readonly [OffloadKind, OffloadKind])[];
  /** fp8 linear-layer recipes the engine runs (Plan.fp8 other than 'none'); empty: no fp8. */
  fp8: readonly Exclude<Fp8Recipe, 'none'>[];
  /** May Plan.virtualStages be above 1 (several model chunks per rank, Megatron-LM's interleaved 1F1B). */
  interleaved: boolean;
  /** May a stage's cp be above 1 (context parallelism: the sequence split over cp ranks, ring attention). */
  contextParallel: boolean;
  /** Runs mixture-of-experts models (ModelSpec.moe: router, top-k experts per token). */
  mixtureOfExperts: boolean;
  /** May a stage's ep be above 1 (expert parallelism: the experts split over ep of the data-parallel ranks, all-to-all token exchange). */
  expertParallel: boolean;
  /**
   * Selective recompute of the attention core (StageStrategy.selectiveRecompute; Korthikanti et al.
   * 2022, Sec. 5). none: not run; whole-model: one choice for every stage, and not together with
   * whole-layer recompute (Megatron-LM's one --recompute-granularity, selective or full);
   * per-stage: any stage, beside its ckptLayers.
   */
  selectiveRecompute: 'none' | 'whole-model' | 'per-stage';
  /**
   * torchtitan's per-op selective checkpointing (StageStrategy.opRecompute, core's opCheckpointSet).
   * none: not run; whole-model: every stage or none, and not together with whole-layer recompute
   * (torchtitan's one activation_checkpoint.mode for all blocks).
   */
  opRecompute: 'none' | 'whole-model';
}

/**
 * The losses an engine runs as Mist exports it (TrainingSpec.crossEntropy) with compute dtype
 * `dtype`: Megatron-LM's fused vocab-parallel cross entropy over an fp32 copy of the logits by
 * default ('fused'), over the fp16 logits themselves with --fp16-lm-cross-entropy ('compute-dtype',
 * fp16 only: megatron/training/arguments.py asserts --fp16); torchtitan's `F.cross_entropy(pred
 * .flatten(0, 1).float(), labels.flatten(0, 1))` over an fp32 copy in autograd ('fp32-logits',
 * torchtitan/components/loss.py, also with TP's loss_parallel), or that loss compiled with
 * torch.compile ('compiled': compile.enable with v0.2.2's default components ["model", "loss"]);
 * NeMo and DeepSpeed: the fused form.
 */
export function engineCrossEntropies(engine: EngineName, dtype: Dtype): readonly TrainingSpec['crossEntropy'][] {
  if (engine === 'torchtitan') return ['fp32-logits', 'compiled'];
  return engine === 'megatron' && dtype === 'fp16' ? ['fused', 'compute-dtype'] : ['fused'];
}

/**
 * How an engine's loss reads the logits when it fixes that whatever the model code or flags, or null:
 * torchtitan's loss always reads an fp32 copy, eagerly or, with torch.compile (`compiled`), compiled
 * (engineCrossEntropies).
 */
export function engineCrossEntropy(engine: EngineName, compiled = false): TrainingSpec['crossEntropy'] | null {
  return engine === 'torchtitan' ? (compiled ? 'compiled' : 'fp32-logits') : null;
}

/**
 * How an engine runs the layer's norms, RoPE and SwiGLU when it fixes that (TrainingSpec.elementwise),
 * or null where it depends on the model code or a flag: torchtitan's llama3 model writes them as
 * PyTorch ops (models/llama3/model/model.py apply_rotary_emb, FeedForward; models/norms.py
 * RMSNorm), which run eagerly without torch.compile and fused by Inductor with it (`compiled`:
 * compile.enable, which Mist's torchtitan export writes when the prediction compiled).
 */
export function engineElementwise(engine: EngineName, compiled = false): 'fused' | 'eager' | null {
  return engine === 'torchtitan' ? (compiled ? 'fused' : 'eager') : null;
}

/** The engines with a torch.compile option Mist models (TrainingSpec.crossEntropy 'compiled' and fused element-wise ops). */
export function engineCompiles(engine: EngineName): boolean {
  return engine === 'torchtitan';
}

/**
 * The catalog's GPUs of compute capability 9.0 (Hopper: H100 SXM and PCIe, H800, H200), where
 * Transformer Engine's attention selects cuDNN's fused attention over flash-attn (attention.py, since
 * 32db39288 of Dec 2023: "Select FusedAttention on sm90 and FlashAttention on others for performance").
 */
export const SM90_GPUS: readonly string[] = ['h100-sxm', 'h100-pcie', 'h800', 'h200'];

/**
 * The flash-attention kernel an engine runs on a GPU (TrainingSpec.flashAttentionKernel) when Mist
 * knows it, else null: Megatron-LM and NeMo run Transformer Engine's DotProductAttention
 * (--transformer-impl transformer_engine, which Mist's exports write), cuDNN's kernel on Hopper
 * (SM90_GPUS) and flash-attn v2 on the others; torchtitan runs PyTorch SDPA's flash backend
 * (FlashAttention-2).
 */
export function engineFlashAttentionKernel(engine: EngineName, gpu: string): FlashAttentionKernel | null {
  if (engine === 'megatron' || engine === 'nemo') return SM90_GPUS.includes(gpu) ? 'cudnn' : 'flash2';
  return engine === 'torchtitan' ? 'flash2' : null;
}

/**
 * Whether an engine runs a TP region's backward collectives asynchronously beside the backward GEMMs
 * of its column-parallel linears (TrainingSpec.tpBackwardOverlap), or null where Mist has no fact:
 * Megatron-LM and NeMo (Megatron-Core's LinearWithGradAccumulationAndAsyncCommunication and Transformer
 * Engine's linears, always on: megatron/core/tensor_parallel/layers.py) do; torchtitan's DTensor
 * tensor parallelism runs them in the autograd graph's order, each waited for before the next
 * kernel (no async TP in Mist's torchtitan export): it does not.
 */
export function engineTpBackwardOverlap(engine: EngineName): boolean | null {
  if (engine === 'megatron' || engine === 'nemo') return true;
  return engine === 'torchtitan' ? false : null;
}

/**
 * What an engine's sequence-parallel column-parallel linears keep of their all-gathered input
 * (TrainingSpec.sequenceParallelInput): torchtitan's tensor parallelism is PyTorch's DTensor one
 * (torchtitan/models/llama3/infra/parallelize.py apply_tp: PrepareModuleInput with
 * desired_input_layouts Replicate() before attention and feed_forward, ColwiseParallel wq/wk/wv/w1/w3,
 * and the output layer's ColwiseParallel from Shard(1)), whose matmuls save the replicated input:
 * 'gathered'. Megatron-LM and NeMo (Megatron-Core) save the shard: 'sharded'. DeepSpeed has no
 * sequence parallelism of this kind: null.
 */
export function engineSequenceParallelInput(engine: EngineName): TrainingSpec['sequenceParallelInput'] | null {
  if (engine === 'torchtitan') return 'gathered';
  return engine === 'megatron' || engine === 'nemo' ? 'sharded' : null;
}

/**
 * The gradient accumulation dtype an engine uses at a parameter dtype (TrainingSpec.gradAccumDtype), or
 * null where it is the parameters': Megatron-LM and NeMo accumulate and reduce bf16 models' gradients
 * in fp32 by default (training.ts gradAccumDtype).
 */
export function engineGradAccumDtype(engine: EngineName, paramDtype: Dtype): TrainingSpec['gradAccumDtype'] | null {
  return (engine === 'megatron' || engine === 'nemo') && paramDtype === 'bf16' ? 'fp32' : null;
}

/**
 * Whether an engine can run a ZeRO level's end-of-step gradient reduction beside the last backward
 * (TrainingSpec.gradReduceOverlap true), as its export sets it up: Megatron-LM's --overlap-grad-reduce,
 * NeMo's recipes, DeepSpeed's overlap_comm with ZeRO-1, torchtitan's DDP and FSDP. DeepSpeed's ZeRO-0
 * all-reduces after the backward whatever its config (runtime/engine.py allreduce_gradients): false.
 */
export function engineOverlapsGradReduce(engine: EngineName, zero: number): boolean {
  return !(engine === 'deepspeed' && zero === 0);
}

/**
 * Whether an engine runs Megatron-Core's communication overlaps as the training spec's
 * tpCommOverlap / paramGatherOverlap cost them (`--tp-comm-overlap`, `--overlap-param-gather`: only
 * the megatron export writes them, engines' megatron/args.ts megatronOverlapArgs).
 */
export function engineRunsCommOverlaps(engine: EngineName): boolean {
  return engine === 'megatron';
}

/**
 * The plan-shape part of a capability table (everything but who it describes): shared by the engine
 * tables here and the executor backend tables (backend-capabilities.ts), so one checker serves both.
 */
export type PlanRules = Omit<EngineCapabilities, 'engine' | 'engineVersion' | 'sources'>;

export interface CapabilityViolation {
  /** Human name of the feature the engine lacks, e.g. 'per-stage strategies'. */
  feature: string;
  /** The plan field that uses it, e.g. 'stages[1].tp'. */
  field: string;
  detail: string;
}

const MEGATRON_SOURCES = [
  'https://github.com/NVIDIA/Megatron-LM/blob/core_v0.14.0/megatron/training/arguments.py',
  'https://github.com/NVIDIA/Megatron-LM/blob/core_v0.14.0/megatron/core/transformer/transformer_block.py',
];

// Megatron-LM: one tp/pp/dp/micro-batch/sequence-parallel/recompute setting for the whole model.
// - Layers: even split; `--decoder-first-pipeline-num-layers` / `--decoder-last-pipeline-num-layers` set the
//   first/last stage's count. (core_v0.14.0 also has `--pipeline-model-parallel-layout`, which allows any
//   split; the table leaves it out so that the tuner's Megatron-LM baseline stays the one of the Mist paper
//   and because the layout string is newer than the first/last flags most launch scripts use.)
// - `--use-distributed-optimizer` shards optimizer states over dp (gradient buffers stay whole): ZeRO-1,
//   with or without pipelining.
// - `--recompute-granularity full --recompute-method block --recompute-num-layers N` recomputes the first N
//   layers of every pipeline stage: one count for all stages.
// - Offload: core_v0.13.0+ has `--optimizer-cpu-offload` / `--optimizer-offload-fraction` (a ratio of the
//   optimizer states). The table says 'none' on purpose: the Megatron-LM baseline of the Mist paper runs
//   without offloading, and `mist tune --target megatron` must compare with that baseline.
// - fp8: `--fp8-format hybrid --fp8-recipe delayed` (Transformer Engine's DelayedScaling) or
//   `--fp8-recipe tensorwise` (Float8CurrentScaling), with `--transformer-impl transformer_engine`.
// - Interleaved 1F1B: `--num-layers-per-virtual-pipeline-stage` (uniform chunks; arguments.py asserts the
//   layers per stage divide by it) runs forward_backward_pipelining_with_interleaving, which wants the
//   micro-batch count a multiple of pp (microbatch_group_size_per_vp_stage = pp); p2p overlap is on by
//   default (`--no-overlap-p2p-communication` turns it off), so pp = 2 is allowed.
// - Context parallelism: `--context-parallel-size` (arguments.py asserts seq-length a multiple of
//   2 * context-parallel-size), ring attention in Transformer Engine's DotProductAttention; ranks
//   ordered tp-cp-ep-dp-pp (megatron/core/parallel_state.py). NeMo's MegatronStrategy passes its
//   context_parallel_size to the same code.
// - Selective recompute: `--recompute-granularity selective` (arguments.py; --recompute-modules
//   defaults to core_attn, the attention core) is one choice for the model, and validate_args
//   asserts recompute_method is None with it: selective and full (block) recompute exclude each other.
//   NeMo passes recompute_granularity to the same code.
// - Mixture of experts: `--num-experts` (arguments.py), `--moe-router-topk` and `--moe-ffn-hidden-size`
//   (TransformerConfig moe_router_topk / moe_ffn_hidden_size, megatron/core/transformer/transformer_config.py,
//   as flags through ArgumentGroupFactory), `--expert-model-parallel-size` (ModelParallelConfig
//   expert_model_parallel_size, megatron/core/model_parallel_config.py; arguments.py asserts num_experts a
//   multiple of it); the expert grid tp-ep-dp over the same ranks (parallel_state.py). NeMo 2's GPTConfig
//   takes num_moe_experts / moe_router_topk and MegatronStrategy expert_model_parallel_size, the same code.
const MEGATRON_BASE: PlanRules = {
  pipeline: true,
  partition: 'uniform-except-first-last',
  perStageStrategy: false,
  tensorParallel: true,
  sequenceParallel: true,
  sequenceParallelForcedWithTp: false,
  zero: [0, 1],
  zeroWithPipeline: [0, 1],
  zeroWithTensorParallel: [0, 1],
  zeroIgnoredWithoutDataParallel: false,
  ckpt: 'uniform-count',
  offload: { weights: 'none', grads: 'none', optim: 'none', activations: 'none' },
  offloadMinZero: {},
  partialOffloadMinZero: {},
  offloadTied: [],
  fp8: ['delayed', 'current'],
  interleaved: true,
  contextParallel: true,
  mixtureOfExperts: true,
  expertParallel: true,
  selectiveRecompute: 'whole-model',
  opRecompute: 'none',
};

const TABLES: Record<EngineName, EngineCapabilities> = {
  megatron: {
    engine: 'megatron',
    engineVersion: 'Megatron-LM core_v0.14.0',
    sources: MEGATRON_SOURCES,
    ...MEGATRON_BASE,
  },
  nemo: {
    engine: 'nemo',
    // NeMo 2 recipes (nemo.collections.llm.recipes) configure nemo.lightning.MegatronStrategy, whose
    // parallelism and recompute settings are Megatron-Core's own.
    engineVersion: 'NeMo 2.5 (nemo.collections.llm, Megatron-Core core_v0.14.0)',
    sources: [
      'https://github.com/NVIDIA/NeMo/blob/v2.5.0rc0/nemo/lightning/pytorch/strategies/megatron_strategy.py',
      'https://github.com/NVIDIA/NeMo/tree/v2.5.0rc0/nemo/collections/llm/recipes',
      ...MEGATRON_SOURCES,
    ],
    ...MEGATRON_BASE,
  },
  // DeepSpeed: ZeRO 0-3 over data parallelism; no tensor parallelism of its own (its AutoTP training
  // support rewrites Hugging Face modules and is not described here); PipelineModule pipelining.
  // - runtime/pipe/engine.py asserts `zero_optimization_stage() < ZeroStageEnum.gradients`: ZeRO 0/1 with pp.
  // - PipelineModule partition_method 'uniform' / 'type:<layer class>' balance the layer count
  //   (runtime/pipe/module.py _partition_layers); an explicit split is not a built-in method.
  // - zero_optimization.offload_optimizer (device "cpu") works from ZeRO-1 on and moves the fp32 gradient
  //   partitions with the optimizer states (ZeRO-Offload), hence grads and optim are tied.
  //   Its `ratio` key (zero/offload_config.py: "Percentage of offloaded optimizer states to CPU Adam. Only
  //   valid with ZeRO Stage 3.") gives a partial offload with ZeRO-3 only.
  // - zero_optimization.offload_param: full parameter offload, ZeRO-3 only.
  // - Activation checkpointing is one switch for the model's layers (deepspeed.checkpointing), and
  //   activation_checkpointing.cpu_checkpointing only moves checkpointed inputs, which Mist's activation
  //   offload does not model, so activations stay 'none'.
  // - fp8: ds_config.json has no fp8 GEMM setting (runtime/config.py reads fp16 / bf16 sections only).
  deepspeed: {
    engine: 'deepspeed',
    engineVersion: 'DeepSpeed 0.19.6',
    sources: [
      'https://github.com/deepspeedai/DeepSpeed/blob/v0.19.5/deepspeed/runtime/zero/config.py',
      'https://github.com/deepspeedai/DeepSpeed/blob/v0.19.5/deepspeed/runtime/zero/offload_config.py',
      'https://github.com/deepspeedai/DeepSpeed/blob/v0.19.5/deepspeed/runtime/pipe/engine.py',
      'https://github.com/deepspeedai/DeepSpeed/blob/v0.19.5/deepspeed/runtime/pipe/module.py',
      'https://www.deepspeed.ai/docs/config-json/',
    ],
    pipeline: true,
    partition: 'uniform',
    perStageStrategy: false,
    tensorParallel: false,
    sequenceParallel: false,
    sequenceParallelForcedWithTp: false,
    zero: [0, 1, 2, 3],
    zeroWithPipeline: [0, 1],
    zeroWithTensorParallel: [],
    zeroIgnoredWithoutDataParallel: false,
    ckpt: 'all-or-none',
    offload: { weights: 'full', grads: 'ratio', optim: 'ratio', activations: 'none' },
    offloadMinZero: { weights: 3, grads: 1, optim: 1 },
    partialOffloadMinZero: { grads: 3, optim: 3 },
    offloadTied: [['grads', 'optim']],
    fp8: [],
    // runtime/pipe/schedule.py's TrainSchedule runs one stage per rank: no interleaving.
    interleaved: false,
    // ds_config.json has no context-parallel setting (Ulysses sequence parallelism is a separate
    // API, deepspeed.sequence, that splits heads, not a K/V ring): no cp.
    contextParallel: false,
    // DeepSpeed-MoE (deepspeed.moe.layer.MoE, its ep_size) is built into the model's code, not set in
    // ds_config.json, which the exporter writes: no mixture of experts here.
    mixtureOfExperts: false,
    expertParallel: false,
    // activation_checkpointing in ds_config.json checkpoints whole layers (checkpointable layers of
    // the pipeline module, or torch checkpointing around a layer): no attention-core recompute.
    selectiveRecompute: 'none',
    opRecompute: 'none',
  },
  // torchtitan: FSDP2 (`fully_shard`) over data_parallel_shard_degree, with reshard_after_forward
  // (fsdp_reshard_after_forward "always" = ZeRO-3, "never" = ZeRO-2), or DDP (data_parallel_replicate_degree)
  // = ZeRO-0, which parallelize.py refuses with any other parallelism ("DDP has not supported > 1D
  // parallelism"). Its TP plan always wraps the norms in SequenceParallel(), so sp is forced with tp > 1.
  // PP splits are arbitrary via parallelism.module_fqns_per_model_part. Activation checkpoint mode "full"
  // or "none" for the whole model. training.enable_cpu_offload applies FSDP's CPUOffloadPolicy: parameters,
  // gradients and optimizer states together, and only under FSDP.
  // fp8: `model.converters = ["quantize.linear.float8"]` swaps nn.Linear for torchao's Float8Linear,
  // whose scales are computed from each tensor just in time (quantize.linear.float8.recipe_name
  // "tensorwise" is the per-tensor current scaling); torchao has no delayed scaling, so only 'current'.
  torchtitan: {
    engine: 'torchtitan',
    engineVersion: 'torchtitan v0.2.2',
    sources: [
      'https://github.com/pytorch/torchtitan/blob/v0.2.2/torchtitan/config/job_config.py',
      'https://github.com/pytorch/torchtitan/blob/v0.2.2/torchtitan/models/llama3/infra/parallelize.py',
    ],
    pipeline: true,
    partition: 'any',
    perStageStrategy: false,
    tensorParallel: true,
    sequenceParallel: true,
    sequenceParallelForcedWithTp: true,
    zero: [0, 2, 3],
    zeroWithPipeline: [2, 3],
    zeroWithTensorParallel: [2, 3],
    zeroIgnoredWithoutDataParallel: true,
    ckpt: 'all-or-none',
    offload: { weights: 'full', grads: 'full', optim: 'full', activations: 'none' },
    offloadMinZero: { weights: 2, grads: 2, optim: 2 },
    partialOffloadMinZero: {},
    offloadTied: [['weights', 'grads'], ['grads', 'optim']],
    fp8: ['current'],
    // torchtitan has an Interleaved1F1B pipeline schedule, but its stage-to-layer split is its own
    // (pipeline_parallel_layers_per_stage), which the exporter does not write: left out.
    interleaved: false,
    // parallelism.context_parallel_degree (job_config.py): PyTorch's context_parallel() ring
    // attention over the cp mesh dimension (parallelize.py), gradients reduced over dp_shard * cp.
    contextParallel: true,
    // The exporter writes torchtitan's llama3 model, a dense one (its MoE models are other model
    // families with their own configs): no mixture of experts here.
    mixtureOfExperts: false,
    expertParallel: false,
    // activation_checkpoint.mode 'selective' is per-op SAC (it saves matmul outputs by a policy) or
    // every n-th layer, not Korthikanti et al.'s attention-core recompute: left out.
    selectiveRecompute: 'none',
    // selective_ac_option "op" (parallelize.py _save_list / _custom_policy): opRecompute, one
    // activation_checkpoint.mode for every block.
    opRecompute: 'whole-model',
  },
};

export function isEngineName(s: string): s is EngineName {
  return (ENGINE_NAMES as readonly string[]).includes(s);
}

/** The capability table of an engine; throws a RangeError naming the allowed values. */
export function engineCapabilities(engine: EngineName): EngineCapabilities {
  if (!isEngineName(engine)) {
    throw new RangeError(`engine: got ${JSON.stringify(engine)}; allowed: ${ENGINE_NAMES.join(', ')}`);
  }
  return TABLES[engine];
}

/** The fields that must agree across stages when an engine has one strategy for the whole model. */
const UNIFORM_FIELDS = ['mesh', 'dp', 'tp', 'sequenceParallel', 'microBatchSize', 'zero', 'offload'] as const;

function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function isAllowedRatio(cap: OffloadCapability, r: number): boolean {
  if (cap === 'none') return r === 0;
  if (cap === 'full') return r === 0 || r === 1;
  return r >= 0 && r <= 1;
}

const OFFLOAD_WORDS: Record<OffloadCapability, string> = {
  none: 'no offloading (0 only)',
  full: 'all or nothing (0 or 1)',
  ratio: 'any ratio in [0, 1]',
};

/** Layer counts the partition rule allows, or a reason why the given counts break it. */
function partitionViolation(counts: number[], rule: EngineCapabilities['partition']): string | undefined {
  if (rule === 'any' || counts.length === 1) return undefined;
  const total = counts.reduce((a, b) => a + b, 0);
  if (rule === 'uniform') {
    if (counts.every((c) => c === counts[0])) return undefined;
    return `every stage must have ${total % counts.length === 0 ? total / counts.length : `the same number of`} layers; got ${counts.join(', ')}`;
  }
  const middle = counts.slice(1, -1);
  if (middle.every((c) => c === middle[0])) return undefined;
  return `the middle stages must have the same number of layers (only the first and last may differ); got ${counts.join(', ')}`;
}

function stageViolations(s: StageStrategy, i: number, pp: number, caps: PlanRules, who: string): CapabilityViolation[] {
  const out: CapabilityViolation[] = [];
  const at = `stages[${i}]`;
  const add = (feature: string, field: string, detail: string): void => {
    out.push({ feature, field: `${at}.${field}`, detail });
  };
  if (s.tp > 1 && !caps.tensorParallel) add('tensor parallelism', 'tp', `got ${s.tp}; ${who} has no tensor parallelism (tp must be 1)`);
  const cp = stageCp(s);
  if (cp > 1 && !caps.contextParallel) add('context parallelism', 'cp', `got ${cp}; ${who} has no context parallelism (cp must be 1)`);
  const ep = stageEp(s);
  if (ep > 1 && !caps.expertParallel) add('expert parallelism', 'ep', `got ${ep}; ${who} has no expert parallelism (ep must be 1)`);
  if (s.sequenceParallel) {
    if (!caps.sequenceParallel) add('sequence parallelism', 'sequenceParallel', `${who} has no sequence parallelism`);
    else if (s.tp === 1) add('sequence parallelism without tensor parallelism', 'sequenceParallel', 'sequence parallelism needs tp > 1');
  } else if (s.tp > 1 && caps.sequenceParallelForcedWithTp && caps.tensorParallel) {
    add('tensor parallelism without sequence parallelism', 'sequenceParallel', `${who} always shards the sequence with tp > 1 (sequenceParallel must be true)`);
  }
  const zeroChecked = !(caps.zeroIgnoredWithoutDataParallel && s.dp === 1);
  if (zeroChecked) {
    const allowed = pp > 1 ? caps.zeroWithPipeline : caps.zero;
    if (!allowed.includes(s.zero)) {
      add(pp > 1 ? `ZeRO-${s.zero} with pipelining` : `ZeRO-${s.zero}`, 'zero',
        `got ${s.zero}; allowed${pp > 1 ? ' with pp > 1' : ''}: ${allowed.join(', ') || 'none'}`);
    } else if (s.tp > 1 && caps.tensorParallel && !caps.zeroWithTensorParallel.includes(s.zero)) {
      add(`ZeRO-${s.zero} with tensor parallelism`, 'zero',
        `got ${s.zero}; allowed with tp > 1: ${caps.zeroWithTensorParallel.join(', ') || 'none'}`);
    }
  }
  for (const kind of OFFLOAD_KINDS) {
    const r = s.offload[kind];
    const cap = caps.offload[kind];
    if (!isAllowedRatio(cap, r)) {
      add(cap === 'none' ? `${kind} offloading` : `partial ${kind} offloading`, `offload.${kind}`,
        `got ${r}; ${who} allows ${OFFLOAD_WORDS[cap]}`);
      continue;
    }
    if (r === 0) continue;
    const minZero = caps.offloadMinZero[kind];
    if (minZero !== undefined && s.zero < minZero) {
      add(`${kind} offloading below ZeRO-${minZero}`, `offload.${kind}`, `got ${r} with zero ${s.zero}; ${who} offloads ${kind} only with ZeRO >= ${minZero}`);
    }
    const partialMin = caps.partialOffloadMinZero[kind];
    if (r < 1 && partialMin !== undefined && s.zero < partialMin) {
      add(`partial ${kind} offloading below ZeRO-${partialMin}`, `offload.${kind}`, `got ${r} with zero ${s.zero}; ${who} offloads part of ${kind} only with ZeRO >= ${partialMin}`);
    }
  }
  for (const [a, b] of caps.offloadTied) {
    if (s.offload[a] !== s.offload[b]) {
      add(`separate ${a} and ${b} offloading`, `offload.${b}`, `got ${a} ${s.offload[a]} and ${b} ${s.offload[b]}; ${who} offloads ${a} and ${b} together (equal ratios)`);
    }
  }
  return out;
}

function ckptViolations(plan: Plan, caps: PlanRules, who: string): CapabilityViolation[] {
  const counts = plan.stages.map(stageLayerCount);
  const ck = plan.stages.map((s) => s.ckptLayers);
  if (caps.ckpt === 'per-stage') return [];
  if (caps.ckpt === 'all-or-none') {
    const all = ck.every((c, i) => c === counts[i]);
    const none = ck.every((c) => c === 0);
    if (all || none) return [];
    const i = ck.findIndex((c, j) => c !== 0 && c !== counts[j]);
    const at = i >= 0 ? i : ck.findIndex((c) => c === 0);
    return [{
      feature: i >= 0 ? 'checkpointing part of a stage' : 'checkpointing some stages only',
      field: `stages[${at}].ckptLayers`,
      detail: `got ${ck.join(', ')} of ${counts.join(', ')} layers; ${who} checkpoints every layer or none`,
    }];
  }
  const n = Math.max(...ck);
  const v = plan.virtualStages ?? 1;
  if (v > 1 && n % v !== 0) {
    return [{
      feature: 'a checkpoint count that is not the same in every model chunk',
      field: 'stages[0].ckptLayers',
      detail: `got ${n} with virtualStages ${v}; ${who} recomputes the same number N of layers in every chunk (a multiple of ${v} per stage)`,
    }];
  }
  const bad = ck.findIndex((c, i) => c !== Math.min(n, counts[i]));
  if (bad < 0) return [];
  return [{
    feature: 'a different checkpoint count per stage',
    field: `stages[${bad}].ckptLayers`,
    detail: `got ${ck.join(', ')} of ${counts.join(', ')} layers; ${who} recomputes the same number N of layers in every stage (min(N, stage layers))`,
  }];
}

function selectiveViolations(plan: Plan, caps: PlanRules, who: string): CapabilityViolation[] {
  const sel = plan.stages.map((s) => s.selectiveRecompute ?? false);
  const on = sel.indexOf(true);
  if (on < 0 || caps.selectiveRecompute === 'per-stage') return [];
  const field = (i: number): string => `stages[${i}].selectiveRecompute`;
  if (caps.selectiveRecompute === 'none') {
    return [{ feature: 'selective recompute', field: field(on), detail: `got true; ${who} recomputes whole layers or nothing (selectiveRecompute must be false)` }];
  }
  const out: CapabilityViolation[] = [];
  const off = sel.indexOf(false);
  if (off >= 0) {
    out.push({ feature: 'selective recompute in some stages only', field: field(off), detail: `got ${sel.join(', ')}; ${who} recomputes selectively in every stage or in none` });
  }
  const ck = plan.stages.findIndex((s) => s.ckptLayers > 0);
  if (ck >= 0) {
    out.push({
      feature: 'selective and whole-layer recompute together', field: `stages[${ck}].ckptLayers`,
      detail: `got ${plan.stages[ck].ckptLayers} with selectiveRecompute; ${who} has one recompute granularity (full or selective): ckptLayers must be 0`,
    });
  }
  return out;
}

function opRecomputeViolations(plan: Plan, caps: PlanRules, who: string): CapabilityViolation[] {
  const on = plan.stages.map((s) => s.opRecompute ?? false);
  const first = on.indexOf(true);
  if (first < 0) return [];
  const field = (i: number): string => `stages[${i}].opRecompute`;
  if (caps.opRecompute === 'none') {
    return [{ feature: 'per-op selective recompute', field: field(first), detail: `got true; ${who} does not run torchtitan's per-op selective checkpointing (opRecompute must be false)` }];
  }
  const out: CapabilityViolation[] = [];
  const off = on.indexOf(false);
  if (off >= 0) {
    out.push({ feature: 'per-op selective recompute in some stages only', field: field(off), detail: `got ${on.join(', ')}; ${who} checkpoints every block the same way (one activation_checkpoint.mode)` });
  }
  const ck = plan.stages.findIndex((s) => s.ckptLayers > 0);
  if (ck >= 0) {
    out.push({
      feature: 'per-op and whole-layer recompute together', field: `stages[${ck}].ckptLayers`,
      detail: `got ${plan.stages[ck].ckptLayers} with opRecompute; ${who} has one activation checkpointing mode (full or selective): ckptLayers must be 0`,
    });
  }
  return out;
}

/** Everything in a plan the engine cannot express; empty when the plan is expressible. */
export function planCapabilityViolations(plan: Plan, caps: EngineCapabilities): CapabilityViolation[] {
  return planRuleViolations(plan, caps, caps.engine);
}

/** Everything in a plan that breaks `caps`; `who` names the engine or backend in the details. */
export function planRuleViolations(plan: Plan, caps: PlanRules, who: string): CapabilityViolation[] {
  const out: CapabilityViolation[] = [];
  const pp = plan.stages.length;
  if (pp > 1 && !caps.pipeline) {
    out.push({ feature: 'pipeline parallelism', field: 'stages', detail: `got ${pp} stages; ${who} runs one stage` });
  }
  if (!caps.perStageStrategy) {
    const first = plan.stages[0];
    plan.stages.forEach((s, i) => {
      if (i === 0) return;
      for (const f of UNIFORM_FIELDS) {
        if (!sameValue(s[f], first[f])) {
          out.push({
            feature: 'per-stage strategies',
            field: `stages[${i}].${f}`,
            detail: `got ${JSON.stringify(s[f])}, stage 0 has ${JSON.stringify(first[f])}; ${who} runs one strategy for all stages`,
          });
        }
      }
    });
  }
  const partition = partitionViolation(plan.stages.map(stageLayerCount), caps.partition);
  if (partition) {
    out.push({
      feature: caps.partition === 'uniform' ? 'uneven layer partitions' : 'uneven middle stages',
      field: 'stages[].layers',
      detail: `${partition} (${who})`,
    });
  }
  plan.stages.forEach((s, i) => out.push(...stageViolations(s, i, pp, caps, who)));
  out.push(...ckptViolations(plan, caps, who));
  out.push(...selectiveViolations(plan, caps, who));
  out.push(...opRecomputeViolations(plan, caps, who));
  const v = plan.virtualStages ?? 1;
  if (v > 1 && !caps.interleaved) {
    out.push({ feature: 'interleaved 1F1B (virtual pipeline stages)', field: 'virtualStages', detail: `got ${v}; ${who} runs one model chunk per rank (virtualStages must be 1)` });
  }
  const fp8 = fp8Violation(plan.fp8 ?? 'none', caps, who);
  if (fp8) out.push({ ...fp8, field: 'fp8' });
  return out;
}

/** What of a model's architecture `caps` does not run (the mixture of experts); empty when it runs it. */
export function modelRuleViolations(model: ModelSpec, caps: Pick<PlanRules, 'mixtureOfExperts'>, who: string): CapabilityViolation[] {
  if (!model.moe || caps.mixtureOfExperts) return [];
  return [{
    feature: 'mixture of experts', field: 'model.moe',
    detail: `${model.name} has ${model.moe.experts} experts (top ${model.moe.topK}); ${who} runs dense MLPs only`,
  }];
}

/** fp8 linear layers with `recipe` where `caps` does not run them (field to be set by the caller), or null. */
export function fp8Violation(recipe: Fp8Recipe, caps: Pick<PlanRules, 'fp8'>, who: string): Omit<CapabilityViolation, 'field'> | null {
  if (recipe === 'none' || caps.fp8.includes(recipe)) return null;
  return {
    feature: `fp8 linear layers (${recipe} scaling)`,
    detail: `got ${recipe}; ${who} runs ${caps.fp8.length === 0 ? 'no fp8 linear layers' : `fp8 with ${caps.fp8.join(', ')} scaling only`}`,
  };
}
