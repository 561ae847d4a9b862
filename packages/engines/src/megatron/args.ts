// The pretrain_gpt.py argument list of a plan (Megatron-LM core_v0.14.0, megatron/training/arguments.py).
// Each entry is one flag with its values; data and tokenizer arguments are kept apart because the user
// replaces them (the defaults, --mock-data and NullTokenizer, run a synthetic benchmark as written).
import { engineGradAccumDtype, FP8_AMAX_HISTORY_LEN, type Fp8Recipe, type ModelSpec, type Plan, planVirtualStages, stageCp, stageEp, type TrainingSpec } from '@mist/core';
import { layerCounts, uniformStrategy } from '../common';
import { type CommOverlaps, type Fp8Format, type TrainDtype } from '../types';

export type ArgLine = [flag: string, ...values: string[]];

export interface MegatronArgs {
  model: ArgLine[];
  parallelism: ArgLine[];
  precision: ArgLine[];
  /** Placeholders the user edits (data and tokenizer). */
  data: ArgLine[];
}

export function megatronModelArgs(model: ModelSpec, seqLen: number): ArgLine[] {
  const a: ArgLine[] = [
    ['--num-layers', String(model.layers)],
    ['--hidden-size', String(model.hidden)],
    ['--num-attention-heads', String(model.heads)],
    ['--ffn-hidden-size', String(model.ffnHidden)],
    ['--seq-length', String(seqLen)],
    ['--max-position-embeddings', String(model.maxSeq)],
    ['--position-embedding-type', model.positional === 'rope' ? 'rope' : 'learned_absolute'],
    ['--normalization', model.norm === 'rmsnorm' ? 'RMSNorm' : 'LayerNorm'],
  ];
  if (model.kvHeads !== model.heads) a.push(['--group-query-attention'], ['--num-query-groups', String(model.kvHeads)]);
  if (model.activation === 'swiglu') a.push(['--swiglu']);
  // Squared ReLU (megatron/core/activations.py squared_relu; arguments.py --squared-relu).
  if (model.activation === 'squared-relu') a.push(['--squared-relu']);
  if (model.moe) {
    // Mixture of experts in every layer (--moe-layer-freq 1, the default), tokens exchanged by
    // all-to-all (TransformerConfig moe_token_dispatcher_type; its default is allgather), dropless
    // (no --moe-expert-capacity-factor): the analyzer's dispatch, balanced routing aside.
    a.push(['--num-experts', String(model.moe.experts)], ['--moe-router-topk', String(model.moe.topK)]);
    if (model.moe.ffnHidden !== undefined) a.push(['--moe-ffn-hidden-size', String(model.moe.ffnHidden)]);
    a.push(['--moe-token-dispatcher-type', 'alltoall']);
  }
  if (!model.tiedEmbeddings) a.push(['--untie-embeddings-and-output-weights']);
  if (!model.bias) a.push(['--disable-bias-linear']);
  // Megatron-LM defaults both to 0.1; a model without dropout must say 0.
  a.push(['--attention-dropout', String(model.dropout)], ['--hidden-dropout', String(model.dropout)]);
  // The catalog's vocabularies are already padded (e.g. GPT-3's 50304); divisible-by 1 keeps them as they are.
  a.push(['--vocab-size', String(model.vocab)], ['--make-vocab-size-divisible-by', '1']);
  return a;
}

/** Parallelism, batch and recompute arguments; the plan must be expressible (see assertExpressible). */
export function megatronParallelArgs(plan: Plan): ArgLine[] {
  const s = uniformStrategy(plan);
  const pp = plan.stages.length;
  const a: ArgLine[] = [
    ['--tensor-model-parallel-size', String(s.tp)],
    ['--pipeline-model-parallel-size', String(pp)],
  ];
  // Context parallelism (arguments.py: seq-length a multiple of 2 * context-parallel-size).
  const cp = stageCp(s);
  if (cp > 1) a.push(['--context-parallel-size', String(cp)]);
  // Expert parallelism (ModelParallelConfig expert_model_parallel_size; expert tensor parallelism
  // defaults to tp, as the analyzer assumes).
  const ep = stageEp(s);
  if (ep > 1) a.push(['--expert-model-parallel-size', String(ep)]);
  const counts = layerCounts(plan);
  if (pp > 1) {
    // Middle stages share one count; the first and last are given only when they differ from it.
    // With pp = 2 there is no middle stage: the first stage's count is given, the last gets the rest.
    const middle = counts[1];
    if (counts[0] !== middle) a.push(['--decoder-first-pipeline-num-layers', String(counts[0])]);
    if (pp > 2 && counts[pp - 1] !== middle) a.push(['--decoder-last-pipeline-num-layers', String(counts[pp - 1])]);
  }
  // Interleaved 1F1B: v chunks of counts[0] / v layers per rank (the plan rules keep the stages uniform).
  const v = planVirtualStages(plan);
  if (v > 1) a.push(['--num-layers-per-virtual-pipeline-stage', String(counts[0] / v)]);
  if (s.sequenceParallel) a.push(['--sequence-parallel']);
  a.push(['--micro-batch-size', String(s.microBatchSize)], ['--global-batch-size', String(plan.globalBatch)]);
  // --recompute-num-layers counts the layers of each model chunk (transformer_block.py's block method).
  const n = Math.max(...plan.stages.map((x) => x.ckptLayers)) / v;
  if (n > 0) {
    a.push(['--recompute-granularity', 'full'], ['--recompute-method', 'block'], ['--recompute-num-layers', String(n)]);
  } else if (plan.stages.some((x) => x.selectiveRecompute === true)) {
    // Selective recompute of the attention core (--recompute-modules defaults to core_attn); the
    // capability table keeps it one choice for the model and apart from full recompute.
    a.push(['--recompute-granularity', 'selective']);
  }
  if (s.zero === 1) a.push(['--use-distributed-optimizer']);
  if (plan.flashAttention !== undefined) a.push(['--attention-backend', plan.flashAttention ? 'flash' : 'unfused']);
  return a;
}

/**
 * Precision flags: the dtype, and fp8 linear layers when the export asks for an fp8 format or the plan
 * assumes an fp8 recipe (Plan.fp8). The plan's recipe maps to core_v0.14.0's `--fp8-recipe`: delayed
 * (with Transformer Engine's DelayedScaling defaults, amax history 1024 and its max, which the analyzer
 * assumes; Megatron-LM's own defaults are 1 and most_recent) or tensorwise (current scaling); the
 * format defaults to hybrid (E4M3 forward, E5M2 gradients).
 */
export function megatronPrecisionArgs(dtype: TrainDtype, fp8: Fp8Format | undefined, recipe: Fp8Recipe = 'none'): ArgLine[] {
  const a: ArgLine[] = [[dtype === 'bf16' ? '--bf16' : '--fp16']];
  const format = fp8 ?? (recipe === 'none' ? undefined : 'hybrid');
  if (format) a.push(['--fp8-format', format]);
  if (recipe === 'delayed') {
    a.push(['--fp8-recipe', 'delayed'], ['--fp8-amax-history-len', String(FP8_AMAX_HISTORY_LEN)], ['--fp8-amax-compute-algo', 'max']);
  }
  if (recipe === 'current') a.push(['--fp8-recipe', 'tensorwise']);
  if (format) a.push(['--transformer-impl', 'transformer_engine']);
  return a;
}

/**
 * Megatron-Core's communication overlaps the prediction assumed (ExportInput.overlaps), each where
 * Megatron-LM accepts it and it changes what the analyzer predicts (megatron/training/arguments.py):
 * `--overlap-grad-reduce` (the gradient reduction beside the last backward: TrainingSpec.gradReduceOverlap,
 * true unless the prediction said otherwise; Megatron-LM's default is off) with data parallelism
 * and with the two others; `--tp-comm-overlap` with sequence parallelism and tp > 1 (it asserts
 * sequence parallelism, which it turns off at tp 1); `--overlap-param-gather` with the distributed
 * optimizer (ZeRO-1), which it asserts together with `--overlap-grad-reduce`.
 */
export function megatronOverlapArgs(plan: Plan, overlaps: CommOverlaps = {}): ArgLine[] {
  const s = uniformStrategy(plan);
  const tp = overlaps.tpCommOverlap === true && s.sequenceParallel && s.tp > 1;
  const gather = overlaps.paramGatherOverlap === true && s.zero === 1;
  const dataParallel = s.dp * (s.cp ?? 1) > 1;
  const a: ArgLine[] = [];
  if (overlaps.gradReduceOverlap !== false && (dataParallel || tp || gather)) a.push(['--overlap-grad-reduce']);
  if (gather) a.push(['--overlap-param-gather']);
  if (tp) a.push(['--tp-comm-overlap']);
  return a;
}

export function megatronDataArgs(): ArgLine[] {
  return [['--mock-data'], ['--tokenizer-type', 'NullTokenizer']];
}

export function megatronArgs(
  plan: Plan, model: ModelSpec, dtype: TrainDtype, fp8?: Fp8Format, overlaps?: CommOverlaps, crossEntropy?: TrainingSpec['crossEntropy'],
  gradAccumDtype?: TrainingSpec['gradAccumDtype'], fp8ParamGather?: boolean,
): MegatronArgs {
  return {
    model: megatronModelArgs(model, plan.seqLen),
    parallelism: [...megatronParallelArgs(plan), ...megatronOverlapArgs(plan, overlaps)],
    // The loss on the fp16 logits (TrainingSpec.crossEntropy 'compute-dtype'; fp16 only, types.ts lossViolations).
    // The fp8 weights kept and gathered as fp8 (TrainingSpec.fp8ParamGather; types.ts fp8ParamGatherViolations).
    precision: [...megatronPrecisionArgs(dtype, fp8, plan.fp8), ...(fp8ParamGather === true ? [['--fp8-param-gather'] as ArgLine] : []),
      ...(crossEntropy === 'compute-dtype' ? [['--fp16-lm-cross-entropy'] as ArgLine] : []), ...megatronGradArgs(dtype, gradAccumDtype)],
    data: megatronDataArgs(),
  };
}

/**
 * The gradients' dtype where it differs from Megatron-LM's default for the weights' dtype (core's
 * engineGradAccumDtype; arguments.py: fp32 main gradients with --bf16 unless --grad-reduce-in-bf16,
 * with --fp16 the fp16 gradients unless --accumulate-allreduce-grads-in-fp32); nothing when undefined.
 */
export function megatronGradArgs(dtype: TrainDtype, gradAccumDtype?: TrainingSpec['gradAccumDtype']): ArgLine[] {
  if (gradAccumDtype === undefined || gradAccumDtype === (engineGradAccumDtype('megatron', dtype) ?? 'param')) return [];
  return [[gradAccumDtype === 'param' ? '--grad-reduce-in-bf16' : '--accumulate-allreduce-grads-in-fp32']];
}

/** All arguments in order, as argv words. */
export function flattenArgs(args: MegatronArgs): string[] {
  return [...args.model, ...args.parallelism, ...args.precision, ...args.data].flat();
}
