// `mist import --from megatron -- <pretrain_gpt.py arguments>`: a Megatron-LM setup (core_v0.14.0 flags)
// as a model and a plan. Flags that only concern data, logging, checkpoints or the optimizer schedule are
// accepted and left out; every other flag Mist does not model is reported by name.
import {
  type ClusterSpec, engineGradAccumDtype, type Fp8Recipe, type ModelSpec, type Plan, type StageStrategy, parseModelSpec, parsePlan,
} from '@mist/core';
import { flagMap, parseFlags } from '../argv';
import { catalogMatch, positiveInt, rangesFromCounts, stageMesh } from '../common';
import { ImportError, type ImportedTraining, type ImportProblem, type ImportResult } from '../types';

export interface MegatronImportContext {
  cluster: ClusterSpec;
  /** GPUs of the run (torchrun's world size); default: the whole cluster. */
  gpus?: number;
  /** Name of the model when it is not in the catalog. */
  modelName?: string;
}

/** Flags read into the model or the plan. */
const MODELLED = new Set([
  '--num-layers', '--hidden-size', '--num-attention-heads', '--ffn-hidden-size', '--seq-length', '--max-position-embeddings',
  '--position-embedding-type', '--use-rotary-position-embeddings', '--normalization', '--group-query-attention',
  '--num-query-groups', '--swiglu', '--untie-embeddings-and-output-weights', '--disable-bias-linear', '--vocab-size',
  '--padded-vocab-size', '--make-vocab-size-divisible-by', '--tensor-model-parallel-size', '--pipeline-model-parallel-size',
  '--decoder-first-pipeline-num-layers', '--decoder-last-pipeline-num-layers', '--sequence-parallel', '--micro-batch-size',
  '--global-batch-size', '--recompute-granularity', '--recompute-method', '--recompute-num-layers', '--recompute-activations',
  '--recompute-modules',
  '--use-distributed-optimizer', '--attention-backend', '--use-flash-attn', '--context-parallel-size',
  '--num-layers-per-virtual-pipeline-stage', '--num-virtual-stages-per-pipeline-rank', '--tokenizer-type', '--bf16', '--fp16',
  '--fp8-format', '--fp8-recipe', '--fp8-amax-history-len', '--fp8-amax-compute-algo', '--attention-dropout', '--hidden-dropout',
  '--squared-relu', '--num-experts', '--moe-router-topk', '--moe-ffn-hidden-size', '--expert-model-parallel-size',
  '--expert-tensor-parallel-size', '--moe-token-dispatcher-type', '--moe-layer-freq',
  '--overlap-grad-reduce', '--overlap-param-gather', '--tp-comm-overlap', '--fp16-lm-cross-entropy',
  '--accumulate-allreduce-grads-in-fp32', '--grad-reduce-in-bf16', '--DDP-impl', '--fp8-param-gather',
]);

/** Flags with no effect on what Mist predicts (data, tokenizer files, schedule, logging, checkpoints, kernels). */
const IGNORED = new Set([
  '--data-path', '--split', '--train-data-path', '--valid-data-path', '--test-data-path', '--data-cache-path', '--mock-data',
  '--vocab-file', '--merge-file', '--tokenizer-model', '--train-iters', '--train-samples', '--exit-interval', '--lr', '--min-lr',
  '--lr-decay-style', '--lr-decay-iters', '--lr-decay-samples', '--lr-warmup-iters', '--lr-warmup-fraction',
  '--lr-warmup-samples', '--weight-decay', '--clip-grad', '--adam-beta1', '--adam-beta2', '--adam-eps', '--init-method-std',
  '--hidden-dropout', '--attention-dropout', '--log-interval', '--eval-interval', '--eval-iters', '--save-interval', '--save',
  '--load', '--tensorboard-dir', '--wandb-project', '--wandb-exp-name', '--seed', '--norm-epsilon', '--rotary-base',
  '--rotary-percent', '--transformer-impl', '--use-mcore-models', '--distributed-backend', '--log-throughput',
  '--timing-log-level', '--ckpt-format', '--attention-softmax-in-fp32',
  '--no-gradient-accumulation-fusion', '--no-masked-softmax-fusion',
  '--no-bias-gelu-fusion', '--no-bias-swiglu-fusion', '--no-bias-dropout-fusion', '--no-rope-fusion', '--cross-entropy-loss-fusion',
  '--log-params-norm', '--log-num-zeros-in-grad', '--no-load-optim', '--no-load-rng', '--finetune', '--num-workers',
  '--dataloader-type', '--eod-mask-loss', '--reset-position-ids', '--reset-attention-mask', '--loss-scale',
  '--initial-loss-scale', '--min-loss-scale', '--loss-scale-window', '--hysteresis',
  // Mixture of experts: the router's training losses and kernels do not change what Mist predicts.
  '--moe-aux-loss-coeff', '--moe-router-load-balancing-type', '--moe-z-loss-coeff', '--moe-grouped-gemm', '--moe-permute-fusion',
  '--moe-router-dtype', '--moe-router-pre-softmax',
]);

/** Flags Mist understands but cannot model; the reason is reported. */
const UNSUPPORTED: Record<string, string> = {
  '--optimizer-cpu-offload': 'optimizer offloading is not in the Megatron-LM table (the Mist paper baseline runs without it)',
  '--optimizer-offload-fraction': 'optimizer offloading is not in the Megatron-LM table',
  '--pipeline-model-parallel-layout': 'custom layouts are not read; use --decoder-first/last-pipeline-num-layers',
  '--moe-expert-capacity-factor': 'token dropping is not modelled (routing is assumed balanced and dropless)',
  '--moe-shared-expert-intermediate-size': 'shared experts are not modelled',
  '--apply-residual-connection-post-layernorm': 'post-norm residuals are not modelled',
  '--add-qkv-bias': 'a bias on the QKV projection only is not modelled (biases are all or none)',
};

function paddedVocab(vocab: number, divisibleBy: number, tp: number): number {
  // megatron/training/tokenizer/tokenizer.py _vocab_size_with_padding: round up to divisible_by * tp.
  const multiple = divisibleBy * tp;
  return Math.ceil(vocab / multiple) * multiple;
}

export function importMegatron(argv: readonly string[], ctx: MegatronImportContext): ImportResult {
  const { flags, stray } = parseFlags(argv);
  const problems: ImportProblem[] = stray.map((w) => ({ option: w, reason: 'not a --flag or its value' }));
  for (const f of flags) {
    if (f.flag in UNSUPPORTED) problems.push({ option: f.flag, reason: UNSUPPORTED[f.flag] });
    else if (!MODELLED.has(f.flag) && !IGNORED.has(f.flag)) problems.push({ option: f.flag, reason: 'unknown option' });
  }
  const m = flagMap(flags);
  const has = (f: string): boolean => m.has(f);
  const one = (f: string): string | undefined => m.get(f)?.[0];
  const int = (f: string, fallback?: number): number => {
    const v = one(f);
    if (v === undefined) {
      if (fallback !== undefined) return fallback;
      throw new ImportError(f, 'required');
    }
    return positiveInt(v, f);
  };

  const tp = int('--tensor-model-parallel-size', 1);
  const pp = int('--pipeline-model-parallel-size', 1);
  const cp = int('--context-parallel-size', 1);

  // Model.
  const layers = int('--num-layers');
  const hidden = int('--hidden-size');
  const heads = int('--num-attention-heads');
  const swiglu = has('--swiglu');
  const squaredRelu = has('--squared-relu');
  if (swiglu && squaredRelu) throw new ImportError('--squared-relu', 'given with --swiglu; the MLP has one activation (allowed: one of them)');
  const ffnHidden = one('--ffn-hidden-size') !== undefined ? int('--ffn-hidden-size') : swiglu ? undefined : 4 * hidden;
  if (ffnHidden === undefined) throw new ImportError('--ffn-hidden-size', 'required with --swiglu');
  const seqLen = int('--seq-length');
  const posType = one('--position-embedding-type') ?? (has('--use-rotary-position-embeddings') ? 'rope' : 'learned_absolute');
  if (posType !== 'rope' && posType !== 'learned_absolute') {
    throw new ImportError('--position-embedding-type', `got ${posType}; Mist models learned_absolute and rope`);
  }
  const norm = one('--normalization') ?? 'LayerNorm';
  if (norm !== 'LayerNorm' && norm !== 'RMSNorm') throw new ImportError('--normalization', `got ${norm}; allowed: LayerNorm, RMSNorm`);
  let vocab: number;
  const divisibleBy = int('--make-vocab-size-divisible-by', 128);
  if (one('--padded-vocab-size') !== undefined) vocab = int('--padded-vocab-size');
  else if (one('--vocab-size') !== undefined) vocab = paddedVocab(int('--vocab-size'), divisibleBy, tp);
  else if (one('--tokenizer-type') === 'GPT2BPETokenizer') vocab = paddedVocab(50257, divisibleBy, tp);
  else throw new ImportError('--vocab-size', 'required (Mist cannot read the tokenizer files; give the vocabulary size)');
  // Mixture of experts (arguments.py --num-experts; TransformerConfig moe_router_topk defaults to 2,
  // moe_ffn_hidden_size to --ffn-hidden-size).
  const experts = one('--num-experts') !== undefined ? int('--num-experts') : undefined;
  const moeOnly = ['--moe-router-topk', '--moe-ffn-hidden-size', '--expert-model-parallel-size', '--moe-token-dispatcher-type'].find(has);
  if (experts === undefined && moeOnly) throw new ImportError(moeOnly, 'needs --num-experts (a mixture-of-experts setting on a dense model)');
  if (experts !== undefined) {
    const dispatcher = one('--moe-token-dispatcher-type') ?? 'allgather';
    if (dispatcher !== 'alltoall') {
      problems.push({ option: '--moe-token-dispatcher-type', reason: `got ${dispatcher}; Mist models the alltoall dispatcher (its exchange is costed as an all-to-all)` });
    }
    const freq = one('--moe-layer-freq');
    if (freq !== undefined && freq !== '1') throw new ImportError('--moe-layer-freq', `got ${freq}; Mist models experts in every layer (allowed: 1)`);
    const etp = one('--expert-tensor-parallel-size');
    if (etp !== undefined && positiveInt(etp, '--expert-tensor-parallel-size') !== tp) {
      throw new ImportError('--expert-tensor-parallel-size', `got ${etp}; Mist models expert tensor parallelism equal to tp (${tp})`);
    }
  }
  const moeFfn = one('--moe-ffn-hidden-size') !== undefined ? int('--moe-ffn-hidden-size') : undefined;
  const moe = experts === undefined ? undefined
    : { experts, topK: int('--moe-router-topk', 2), ...(moeFfn !== undefined && moeFfn !== ffnHidden ? { ffnHidden: moeFfn } : {}) };
  const ep = int('--expert-model-parallel-size', 1);
  const llamaLike = norm === 'RMSNorm' && swiglu && posType === 'rope';
  const arch = {
    family: (moe && llamaLike ? 'mixtral' : squaredRelu ? 'nemotron' : llamaLike ? 'llama' : 'gpt') as ModelSpec['family'],
    layers, hidden, heads,
    kvHeads: has('--group-query-attention') ? int('--num-query-groups') : heads,
    ffnHidden, vocab,
    maxSeq: int('--max-position-embeddings', seqLen),
    norm: norm === 'RMSNorm' ? 'rmsnorm' as const : 'layernorm' as const,
    activation: swiglu ? 'swiglu' as const : squaredRelu ? 'squared-relu' as const : 'gelu' as const,
    positional: posType === 'rope' ? 'rope' as const : 'learned' as const,
    tiedEmbeddings: !has('--untie-embeddings-and-output-weights'),
    bias: !has('--disable-bias-linear'),
    parallelAttention: false,
    parallelAttentionTwoNorms: false,
    // megatron/training/arguments.py: --attention-dropout and --hidden-dropout both default to 0.1.
    dropout: Math.max(...['--attention-dropout', '--hidden-dropout'].map((f) => {
      const v = one(f), p = v === undefined ? 0.1 : Number(v);
      if (!(p >= 0 && p < 1)) throw new ImportError(f, `got ${JSON.stringify(v)}; expected a probability in [0, 1)`);
      return p;
    })),
    moe,
  };
  const known = catalogMatch(arch);
  const model = known ?? parseModelSpec({ name: ctx.modelName ?? 'imported-megatron', ...arch });

  // Layers per stage (megatron/core/transformer/transformer_block.py get_num_layers_to_build).
  const first = one('--decoder-first-pipeline-num-layers') !== undefined ? int('--decoder-first-pipeline-num-layers') : undefined;
  const last = one('--decoder-last-pipeline-num-layers') !== undefined ? int('--decoder-last-pipeline-num-layers') : undefined;
  const rest = layers - (first ?? 0) - (last ?? 0);
  const restStages = pp - (first !== undefined ? 1 : 0) - (last !== undefined ? 1 : 0);
  if (restStages < 0 || (restStages === 0 ? rest !== 0 : rest % restStages !== 0 || rest <= 0)) {
    throw new ImportError('--num-layers', `${layers} layers do not split over ${pp} stages with first ${first ?? '-'} and last ${last ?? '-'}`);
  }
  const middle = restStages > 0 ? rest / restStages : 0;
  const counts = Array.from({ length: pp }, (_, i) =>
    i === 0 && first !== undefined ? first : i === pp - 1 && pp > 1 && last !== undefined ? last : middle);

  // Interleaved 1F1B (arguments.py): v = layers per stage / --num-layers-per-virtual-pipeline-stage, or
  // --num-virtual-stages-per-pipeline-rank; v = 1 means the plain schedule.
  let virtualStages = 1;
  if (has('--num-layers-per-virtual-pipeline-stage')) {
    const perChunk = int('--num-layers-per-virtual-pipeline-stage');
    if (first !== undefined || last !== undefined || counts[0] % perChunk !== 0) {
      throw new ImportError('--num-layers-per-virtual-pipeline-stage', `got ${perChunk}; must divide the ${counts[0]} layers of every stage (uniform stages only)`);
    }
    virtualStages = counts[0] / perChunk;
  } else if (has('--num-virtual-stages-per-pipeline-rank')) {
    virtualStages = int('--num-virtual-stages-per-pipeline-rank');
  }

  // Data parallelism and batch.
  const world = ctx.gpus ?? ctx.cluster.nodes * ctx.cluster.gpusPerNode;
  if (world % (tp * pp * cp) !== 0) throw new ImportError('--tensor-model-parallel-size', `tp ${tp} x pp ${pp} x cp ${cp} must divide the ${world} GPUs`);
  const dp = world / (tp * pp * cp);
  const mbs = int('--micro-batch-size');
  const globalBatch = int('--global-batch-size', mbs * dp);
  if (globalBatch % (mbs * dp) !== 0) {
    throw new ImportError('--global-batch-size', `${globalBatch} is not a multiple of micro batch ${mbs} x dp ${dp}`);
  }

  // Recompute.
  const granularity = one('--recompute-granularity');
  let ckpt = (_count: number): number => 0;
  let selective = false;
  if (granularity === 'full') {
    const method = one('--recompute-method');
    if (method === 'block') {
      // Per model chunk: v chunks of count / v layers each recompute their first n.
      const n = int('--recompute-num-layers');
      ckpt = (count) => virtualStages * Math.min(n, count / virtualStages);
    } else if (method === 'uniform' || method === undefined) {
      // uniform: every layer is recomputed, in chunks of --recompute-num-layers.
      ckpt = (count) => count;
    } else {
      throw new ImportError('--recompute-method', `got ${method}; allowed: uniform, block`);
    }
  } else if (granularity === 'selective' || (granularity === undefined && has('--recompute-activations'))) {
    // arguments.py: --recompute-activations sets the selective granularity; --recompute-modules
    // defaults to core_attn, the attention core Mist's selectiveRecompute recomputes.
    selective = true;
    if (has('--recompute-method')) {
      throw new ImportError('--recompute-method', 'must be absent with --recompute-granularity selective (Megatron-LM asserts recompute_method is None)');
    }
    const modules = m.get('--recompute-modules') ?? ['core_attn'];
    const other = modules.filter((x) => x !== 'core_attn');
    if (other.length > 0) {
      problems.push({ option: '--recompute-modules', reason: `recomputing ${other.join(', ')} is not modelled (only core_attn, the attention core)` });
    }
  } else if (granularity !== undefined) {
    throw new ImportError('--recompute-granularity', `got ${granularity}; allowed: full, selective`);
  }

  const backend = one('--attention-backend');
  const flashAttention = has('--use-flash-attn') || backend === 'flash' || backend === 'fused'
    ? true
    : backend === 'unfused' || backend === 'local' ? false : undefined;

  const ranges = rangesFromCounts(counts);
  const mesh = stageMesh(dp * tp * cp, ctx.cluster, '--tensor-model-parallel-size');
  const stages: StageStrategy[] = ranges.map((layersRange, i) => ({
    layers: layersRange,
    mesh,
    microBatchSize: mbs,
    dp,
    tp,
    ...(cp > 1 ? { cp } : {}),
    ...(ep > 1 ? { ep } : {}),
    sequenceParallel: has('--sequence-parallel') && tp > 1,
    ckptLayers: ckpt(counts[i]),
    ...(selective ? { selectiveRecompute: true } : {}),
    zero: has('--use-distributed-optimizer') ? 1 : 0,
    offload: { weights: 0, grads: 0, optim: 0, activations: 0 },
  }));
  // fp8 linear layers: --fp8-format turns them on, --fp8-recipe (default delayed) picks the scaling;
  // tensorwise is current scaling. The amax history flags change only the scaling state's few bytes.
  let fp8: Fp8Recipe | undefined;
  if (has('--fp8-format')) {
    const recipe = one('--fp8-recipe') ?? 'delayed';
    if (recipe === 'delayed') fp8 = 'delayed';
    else if (recipe === 'tensorwise') fp8 = 'current';
    else problems.push({ option: '--fp8-recipe', reason: `${recipe} scaling is not modelled (delayed and tensorwise are); the plan has no fp8` });
  }
  // Megatron-Core's communication overlaps (the training spec's tpCommOverlap, paramGatherOverlap and
  // gradReduceOverlap). arguments.py asserts sequence parallelism with --tp-comm-overlap (and turns it
  // off at tp 1), and the distributed optimizer and --overlap-grad-reduce with --overlap-param-gather.
  // Without --overlap-grad-reduce (its default) the data-parallel gradient reduction runs after the
  // backward, exposed (--DDP-impl local, the legacy default, likewise; --DDP-impl torch overlaps).
  const training: ImportedTraining = {};
  // The loss on the fp16 logits (TrainingSpec.crossEntropy 'compute-dtype'); arguments.py asserts --fp16.
  if (has('--fp16-lm-cross-entropy')) {
    if (!has('--fp16')) throw new ImportError('--fp16-lm-cross-entropy', 'needs --fp16 (Megatron-LM asserts it: lm cross entropy in fp16 only support in fp16 mode)');
    training.crossEntropy = 'compute-dtype';
  }
  // The gradients' accumulation dtype (TrainingSpec.gradAccumDtype): Megatron-LM's default for the
  // weights' dtype (core's engineGradAccumDtype: fp32 with --bf16), unless --grad-reduce-in-bf16 or
  // --accumulate-allreduce-grads-in-fp32 says otherwise.
  const byDefault = has('--bf16') ? engineGradAccumDtype('megatron', 'bf16') : has('--fp16') ? engineGradAccumDtype('megatron', 'fp16') : null;
  const gradDtype = has('--grad-reduce-in-bf16') ? 'param' : has('--accumulate-allreduce-grads-in-fp32') ? 'fp32' : byDefault;
  if (gradDtype === 'fp32') training.gradAccumDtype = 'fp32';
  if (dp * cp > 1 && !has('--overlap-grad-reduce') && one('--DDP-impl') !== 'torch') training.gradReduceOverlap = false;
  if (has('--tp-comm-overlap')) {
    if (!(has('--sequence-parallel') && tp > 1)) {
      throw new ImportError('--tp-comm-overlap', 'needs --sequence-parallel with --tensor-model-parallel-size > 1 (Megatron-LM asserts sequence parallelism with it)');
    }
    training.tpCommOverlap = true;
  }
  // The fp8 weights kept and gathered as fp8 (TrainingSpec.fp8ParamGather); arguments.py asserts the
  // distributed optimizer (or FSDP, which Mist's import does not read) with it.
  if (has('--fp8-param-gather')) {
    if (!has('--use-distributed-optimizer')) throw new ImportError('--fp8-param-gather', 'needs --use-distributed-optimizer (Megatron-LM asserts it: only supported with distributed optimizer, torch fsdp2, megatron fsdp, or inference mode)');
    if (fp8 === undefined) problems.push({ option: '--fp8-param-gather', reason: 'without fp8 linear layers in the plan (--fp8-format with a modelled --fp8-recipe) it has nothing to gather' });
    else training.fp8ParamGather = true;
  }
  if (has('--overlap-param-gather')) {
    const missing = ['--use-distributed-optimizer', '--overlap-grad-reduce'].filter((f) => !has(f));
    if (missing.length > 0) throw new ImportError('--overlap-param-gather', `needs ${missing.join(' and ')} (Megatron-LM asserts it)`);
    training.paramGatherOverlap = true;
  }
  const plan: Plan = parsePlan({
    version: 1,
    model: model.name,
    cluster: ctx.cluster.name,
    seqLen,
    globalBatch,
    gradAccumSteps: globalBatch / (mbs * dp),
    ...(flashAttention !== undefined ? { flashAttention } : {}),
    ...(virtualStages > 1 ? { virtualStages } : {}),
    ...(fp8 !== undefined ? { fp8 } : {}),
    stages,
  }, { model, cluster: ctx.cluster });
  return { model, modelInCatalog: known !== undefined, plan, ...(Object.keys(training).length > 0 ? { training } : {}), problems };
}
