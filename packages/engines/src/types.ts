// The shapes every engine exporter and importer shares.
import {
  type CapabilityViolation, type ClusterSpec, engineCrossEntropies, type EngineName, FP32_GRAD_ACCUM_FEATURE, type ModelSpec, type Plan,
  engineCapabilities, modelRuleViolations, planCapabilityViolations, type TrainingSpec,
} from '@mist/core';

export type TrainDtype = 'bf16' | 'fp16';
export type Fp8Format = 'e4m3' | 'hybrid';

export interface LaunchOptions {
  masterAddr: string;
  masterPort: number;
}

export interface ExportInput {
  plan: Plan;
  model: ModelSpec;
  cluster: ClusterSpec;
  dtype: TrainDtype;
  /** FP8 GEMMs (Transformer Engine / torchao float8); undefined: none. */
  fp8?: Fp8Format;
  /** Megatron-Core's communication overlaps the prediction assumed (the training spec's fields); undefined: none. */
  overlaps?: CommOverlaps;
  /**
   * How the prediction's loss read the logits (TrainingSpec.crossEntropy); undefined: the engine's own
   * loss. Megatron-LM writes 'compute-dtype' as --fp16-lm-cross-entropy; an engine that cannot run
   * the asked one refuses the export, naming it (lossViolations).
   */
  crossEntropy?: TrainingSpec['crossEntropy'];
  /**
   * The dtype the prediction's gradients accumulated in (TrainingSpec.gradAccumDtype); undefined: the
   * engine's default. Megatron-LM and NeMo write what differs from their default for the dtype,
   * DeepSpeed its data_types.grad_accum_dtype (bf16 with ZeRO-1 only); torchtitan refuses fp32
   * (gradAccumViolations).
   */
  gradAccumDtype?: TrainingSpec['gradAccumDtype'];
  /**
   * The fp8 layers' weights kept and all-gathered as fp8 (TrainingSpec.fp8ParamGather); undefined:
   * false. Megatron-LM writes --fp8-param-gather, NeMo fp8_param_gather, torchtitan torchao's
   * enable_fsdp_float8_all_gather; where the engine cannot run it the export is refused
   * (fp8ParamGatherViolations).
   */
  fp8ParamGather?: boolean;
  launch: LaunchOptions;
}

/**
 * The training spec's communication overlaps (TrainingSpec.tpCommOverlap, paramGatherOverlap and
 * gradReduceOverlap: Megatron-Core's --tp-comm-overlap, --overlap-param-gather and
 * --overlap-grad-reduce), which a plan has no field for. gradReduceOverlap undefined: true.
 */
export type CommOverlaps = Partial<Pick<TrainingSpec, 'tpCommOverlap' | 'paramGatherOverlap' | 'gradReduceOverlap'>>;

/**
 * What an import learned of the training spec beside the plan (the overlaps, gradReduceOverlap false
 * for a reduction after the backward, the loss's reading of the logits, the gradients' dtype).
 */
export type ImportedTraining = CommOverlaps & Partial<Pick<TrainingSpec, 'crossEntropy' | 'gradAccumDtype' | 'fp8ParamGather'>>;

/** The export's loss against what the engine runs (core's engineCrossEntropies), naming training.crossEntropy. */
export function lossViolations(engine: EngineName, crossEntropy: TrainingSpec['crossEntropy'] | undefined, dtype: TrainDtype): CapabilityViolation[] {
  if (crossEntropy === undefined) return [];
  const runs = engineCrossEntropies(engine, dtype);
  if (runs.includes(crossEntropy)) return [];
  const why = engine === 'megatron' && crossEntropy === 'compute-dtype'
    ? 'Megatron-LM runs --fp16-lm-cross-entropy with --fp16 only (arguments.py asserts it): export with --dtype fp16'
    : `${engine} runs crossEntropy ${runs.join(', ')}`;
  return [{ feature: 'the loss\'s reading of the logits', field: 'training.crossEntropy', detail: `got ${crossEntropy}; ${why}` }];
}

/**
 * The export's gradient dtype against what the engine can accumulate in, naming training.gradAccumDtype:
 * torchtitan's FSDP reduces in its mixed-precision policy's dtype and keeps the sharded gradients
 * beside the fp32 parameters, with no unsharded fp32 gradient buffer to express. (DeepSpeed's own rule,
 * which depends on the plan, is its exporter's.)
 */
export function gradAccumViolations(engine: EngineName, gradAccumDtype: TrainingSpec['gradAccumDtype'] | undefined): CapabilityViolation[] {
  if (gradAccumDtype !== 'fp32' || engine !== 'torchtitan') return [];
  return [{
    feature: FP32_GRAD_ACCUM_FEATURE, field: 'training.gradAccumDtype',
    detail: 'got fp32; torchtitan keeps no unsharded fp32 gradient buffer (allowed: param)',
  }];
}

/**
 * The fp8 weight gather (TrainingSpec.fp8ParamGather) where the engine cannot run it, naming the field:
 * it needs fp8 linear layers (the plan's recipe or the export's format); Megatron-LM and NeMo need the
 * distributed optimizer (arguments.py: "--fp8-param-gather only supported with distributed optimizer,
 * torch fsdp2, megatron fsdp, or inference mode": every stage ZeRO >= 1 in Mist's export); torchtitan
 * needs FSDP sharding (components/quantization/float8.py turns it on only with dp_shard, ZeRO 2-3)
 * and tensorwise scaling (it asserts no recipe_name with it: the plan's 'current'); DeepSpeed has none.
 */
export function fp8ParamGatherViolations(engine: EngineName, input: Pick<ExportInput, 'plan' | 'fp8' | 'fp8ParamGather'>): CapabilityViolation[] {
  if (input.fp8ParamGather !== true) return [];
  const refuse = (detail: string): CapabilityViolation[] => [{ feature: 'fp8 weights gathered as fp8', field: 'training.fp8ParamGather', detail: `got true; ${detail} (allowed: false)` }];
  const recipe = input.plan.fp8 ?? 'none';
  if (recipe === 'none' && input.fp8 === undefined) return refuse('the plan has no fp8 linear layers');
  const zeros = input.plan.stages.map((s) => s.zero);
  if (engine === 'deepspeed') return refuse('DeepSpeed gathers the weights in their compute dtype');
  if (engine === 'torchtitan') {
    if (recipe !== 'current') return refuse('torchtitan gathers fp8 weights with tensorwise scaling only (the plan\'s fp8 current)');
    if (zeros.some((z) => z < 2)) return refuse('torchtitan gathers fp8 weights only where FSDP shards them (ZeRO 2-3)');
    return [];
  }
  if (zeros.some((z) => z < 1)) return refuse(`${engine === 'nemo' ? 'NeMo' : 'Megatron-LM'} needs the distributed optimizer with it (every stage ZeRO >= 1)`);
  return [];
}

/**
 * The gradient reduction the prediction assumed (TrainingSpec.gradReduceOverlap) where the engine
 * cannot run it so: torchtitan's FSDP and DDP always reduce during the backward; Megatron-LM asserts
 * --overlap-grad-reduce with --overlap-param-gather (megatron/training/arguments.py).
 */
export function gradReduceViolations(engine: EngineName, overlaps: CommOverlaps | undefined): CapabilityViolation[] {
  if (overlaps?.gradReduceOverlap !== false) return [];
  if (engine === 'torchtitan') {
    return [{
      feature: 'the gradient reduction after the backward', field: 'training.gradReduceOverlap',
      detail: 'got false; torchtitan\'s FSDP and DDP reduce gradients during the backward (allowed: true)',
    }];
  }
  if (engine === 'megatron' && overlaps.paramGatherOverlap === true) {
    return [{
      feature: '--overlap-param-gather without --overlap-grad-reduce', field: 'training.gradReduceOverlap',
      detail: 'got false with paramGatherOverlap; Megatron-LM asserts --overlap-grad-reduce with --overlap-param-gather (allowed: true)',
    }];
  }
  return [];
}

export interface ExportFile {
  /** Path relative to the output directory. */
  path: string;
  content: string;
  executable: boolean;
}

/** An option of the user's setup that the importer does not understand or Mist cannot model. */
export interface ImportProblem {
  option: string;
  reason: string;
}

export interface ImportResult {
  model: ModelSpec;
  /** True when the model is one of the built-in catalog's (then plan.model is its catalog name). */
  modelInCatalog: boolean;
  plan: Plan;
  /** Training spec options the setup runs with that a plan has no field for (absent: none). */
  training?: ImportedTraining;
  problems: ImportProblem[];
}

/** Thrown when a plan (or its model) uses features the engine cannot express. */
export class InexpressiblePlanError extends Error {
  constructor(readonly engine: EngineName, readonly violations: CapabilityViolation[]) {
    super(
      `the plan cannot be expressed in ${engine}:\n` +
        violations.map((v) => `  - ${v.feature} (${v.field}): ${v.detail}`).join('\n') +
        '\nUse --nearest to map it to the closest plan the engine can run.',
    );
    this.name = 'InexpressiblePlanError';
  }
}

/** Thrown by an importer for a setup it cannot turn into a plan (a missing or contradictory option). */
export class ImportError extends Error {
  constructor(readonly option: string, message: string) {
    super(`${option}: ${message}`);
    this.name = 'ImportError';
  }
}

/** Model features an engine's model code has no option for (the capability table covers the plan only). */
export function modelViolations(model: ModelSpec, engine: EngineName): CapabilityViolation[] {
  const out: CapabilityViolation[] = [];
  const add = (feature: string, field: string, detail: string): void => {
    out.push({ feature, field: `model.${field}`, detail });
  };
  if (engine === 'megatron' || engine === 'nemo') {
    // Megatron-Core GPTModel (core_v0.14.0): --position-embedding-type learned_absolute|rope|mrope|relative|none,
    // and no option for Falcon's parallel attention+MLP block.
    if (model.positional === 'alibi') add('ALiBi positions', 'positional', `${engine} has learned_absolute or rope positions`);
    if (model.parallelAttention) add('parallel attention blocks', 'parallelAttention', `${engine}'s GPT layer runs attention then MLP`);
  }
  // Mixture of experts: the engine tables say who runs it (DeepSpeed's and torchtitan's exports have none).
  out.push(...modelRuleViolations(model, engineCapabilities(engine), engine));
  if (engine === 'torchtitan') {
    // torchtitan v0.2.2's dense decoder is torchtitan/models/llama3 (RMSNorm, SwiGLU, RoPE, untied, no biases).
    const llama = model.norm === 'rmsnorm' && model.activation === 'swiglu' && model.positional === 'rope' &&
      !model.tiedEmbeddings && !model.bias && !model.parallelAttention;
    if (!llama) add('a non-Llama architecture', 'family', `torchtitan's llama3 model has RMSNorm, SwiGLU, RoPE, untied embeddings and no biases; ${model.name} is ${model.family}`);
  }
  return out;
}

/** Throws InexpressiblePlanError naming every feature the engine cannot express. */
export function assertExpressible(engine: EngineName, plan: Plan, model: ModelSpec): void {
  const v = [...modelViolations(model, engine), ...planCapabilityViolations(plan, engineCapabilities(engine))];
  if (v.length > 0) throw new InexpressiblePlanError(engine, v);
}
