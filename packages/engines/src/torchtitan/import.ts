// `mist import --from torchtitan train.toml`: a torchtitan v0.2.2 job config as a model and a plan.
import {
  type ClusterSpec, type ModelSpec, type Plan, type StageStrategy, type ZeroLevel, getModel, parsePlan,
} from '@mist/core';
import { rangesFromCounts, stageMesh } from '../common';
import { type TomlTable, type TomlValue, parseToml } from '../toml';
import { ImportError, type ImportProblem, type ImportResult } from '../types';
import { TORCHTITAN_FLAVORS } from './export';

export interface TorchtitanImportContext {
  cluster: ClusterSpec;
  /** GPUs of the run (torchrun's world size); default: the whole cluster. */
  gpus?: number;
  /** The model when the config's flavor is not a catalog model. */
  model?: ModelSpec;
}

/** Keys read into the plan, per section. */
const MODELLED: Record<string, Set<string>> = {
  model: new Set(['name', 'flavor', 'converters']),
  training: new Set(['local_batch_size', 'global_batch_size', 'seq_len', 'enable_cpu_offload', 'mixed_precision_param']),
  parallelism: new Set([
    'data_parallel_replicate_degree', 'data_parallel_shard_degree', 'fsdp_reshard_after_forward', 'tensor_parallel_degree',
    'pipeline_parallel_degree', 'pipeline_parallel_microbatch_size', 'module_fqns_per_model_part', 'pipeline_parallel_schedule',
    'disable_loss_parallel', 'enable_async_tensor_parallel',
    'context_parallel_degree', 'pipeline_parallel_layers_per_stage', 'pipeline_parallel_first_stage_less_layers',
    'pipeline_parallel_last_stage_less_layers',
  ]),
  activation_checkpoint: new Set(['mode', 'selective_ac_option']),
  compile: new Set(['enable', 'components', 'backend']),
};

/** Keys with no effect on what Mist predicts. */
const IGNORED: Record<string, Set<string> | 'all'> = {
  job: 'all', profiling: 'all', metrics: 'all', optimizer: 'all', lr_scheduler: 'all', checkpoint: 'all', comm: 'all',
  validation: 'all', debug: 'all', memory_estimation: 'all', fault_tolerance: 'all', experimental: 'all',
  model: new Set(['hf_assets_path', 'tokenizer_path', 'print_after_conversion']),
  training: new Set(['dataset', 'dataset_path', 'max_norm', 'steps', 'mixed_precision_reduce', 'gc_freq', 'gc_debug', 'dataloader']),
  parallelism: new Set(['pipeline_parallel_schedule_csv']),
  activation_checkpoint: new Set(['preserve_rng_state', 'determinism_check', 'debug', 'early_stop']),
};

const isTable = (v: TomlValue | TomlTable | undefined): v is TomlTable => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Keys of [quantize.linear.float8] read into the plan (job_config.py Float8Linear at v0.2.2). */
const FLOAT8_KEYS = new Set(['recipe_name', 'enable_fsdp_float8_all_gather', 'precompute_float8_dynamic_scale_for_fsdp', 'filter_fqns']);

/** What of [quantize] Mist cannot model: anything but torchao's Float8Linear (MX, grouped GEMMs, ...) and its unknown keys. */
function quantizeProblems(body: TomlTable): ImportProblem[] {
  const problems: ImportProblem[] = [];
  for (const [kind, v] of Object.entries(body)) {
    if (kind !== 'linear' || !isTable(v)) {
      problems.push({ option: `[quantize.${kind}]`, reason: 'not modelled (Mist models Float8Linear with tensorwise scaling, [quantize.linear.float8])' });
      continue;
    }
    for (const [name, t] of Object.entries(v)) {
      if (name !== 'float8' || !isTable(t)) {
        problems.push({ option: `[quantize.linear.${name}]`, reason: 'not modelled (Mist models Float8Linear with tensorwise scaling, [quantize.linear.float8])' });
        continue;
      }
      for (const key of Object.keys(t)) if (!FLOAT8_KEYS.has(key)) problems.push({ option: `quantize.linear.float8.${key}`, reason: 'unknown option' });
    }
  }
  return problems;
}

export function importTorchtitan(text: string, ctx: TorchtitanImportContext): ImportResult {
  const doc = parseToml(text);
  const problems: ImportProblem[] = [];
  for (const [section, body] of Object.entries(doc)) {
    const ignored = IGNORED[section];
    if (ignored === 'all') continue;
    if (!isTable(body)) {
      problems.push({ option: section, reason: 'unknown top-level key' });
      continue;
    }
    if (section === 'quantize') {
      problems.push(...quantizeProblems(body));
      continue;
    }
    if (!MODELLED[section] && !ignored) {
      problems.push({ option: `[${section}]`, reason: 'unknown section' });
      continue;
    }
    for (const key of Object.keys(body)) {
      if (MODELLED[section]?.has(key) || (ignored instanceof Set && ignored.has(key))) continue;
      problems.push({ option: `${section}.${key}`, reason: 'unknown option' });
    }
  }
  const sec = (name: string): TomlTable => (isTable(doc[name]) ? doc[name] : {});
  const get = (section: string, key: string): TomlValue | undefined => {
    const v = sec(section)[key];
    return isTable(v) ? undefined : v;
  };
  const int = (section: string, key: string, fallback: number): number => {
    const v = get(section, key) ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v)) throw new ImportError(`${section}.${key}`, `got ${JSON.stringify(v)}; expected an integer`);
    return v;
  };
  const str = (section: string, key: string, fallback: string): string => {
    const v = get(section, key) ?? fallback;
    if (typeof v !== 'string') throw new ImportError(`${section}.${key}`, `got ${JSON.stringify(v)}; expected a string`);
    return v;
  };

  // Model: a catalog llama3 flavor, or the one given.
  const name = str('model', 'name', 'llama3');
  const flavor = str('model', 'flavor', 'debugmodel');
  const fromCatalog = name === 'llama3' ? Object.entries(TORCHTITAN_FLAVORS).find(([, f]) => f === flavor)?.[0] : undefined;
  const model = ctx.model ?? (fromCatalog ? getModel(fromCatalog) : undefined);
  if (!model) throw new ImportError('model.flavor', `${name} ${flavor} is not a catalog model; give the model (--model NAME|FILE)`);
  if (str('training', 'mixed_precision_param', 'bfloat16') !== 'bfloat16') {
    problems.push({ option: 'training.mixed_precision_param', reason: 'the analyzer predicts bf16 mixed precision only' });
  }

  const tp = int('parallelism', 'tensor_parallel_degree', 1);
  const pp = int('parallelism', 'pipeline_parallel_degree', 1);
  const cp = int('parallelism', 'context_parallel_degree', 1);
  const world = ctx.gpus ?? ctx.cluster.nodes * ctx.cluster.gpusPerNode;
  const replicate = int('parallelism', 'data_parallel_replicate_degree', 1);
  let shard = int('parallelism', 'data_parallel_shard_degree', -1);
  if (shard === -1) shard = world / (replicate * tp * pp * cp);
  if (!Number.isInteger(shard) || shard < 1 || replicate * shard * tp * pp * cp !== world) {
    throw new ImportError('parallelism.data_parallel_shard_degree', `replicate ${replicate} x shard ${shard} x tp ${tp} x pp ${pp} x cp ${cp} must equal the ${world} GPUs`);
  }
  if (replicate > 1 && shard > 1) {
    throw new ImportError('parallelism.data_parallel_replicate_degree', 'HSDP (replicate and shard both > 1) is not a Mist ZeRO level');
  }
  const dp = replicate * shard;
  const reshard = str('parallelism', 'fsdp_reshard_after_forward', 'default');
  if (!['default', 'always', 'never'].includes(reshard)) {
    throw new ImportError('parallelism.fsdp_reshard_after_forward', `got ${reshard}; allowed: default, always, never`);
  }
  // parallelize.py: "default" reshards after forward unless pipelining is on.
  // FSDP shards over dp_shard * cp (parallelize.py's dp_shard_cp mesh), as Mist's ZeRO over dp * cp.
  const zero: ZeroLevel = shard * cp > 1 && replicate === 1 ? (reshard === 'always' || (reshard === 'default' && pp === 1) ? 3 : 2) : 0;

  const local = int('training', 'local_batch_size', 8);
  const globalBatch = int('training', 'global_batch_size', -1) > 0 ? int('training', 'global_batch_size', -1) : local * dp;
  const mbs = pp > 1 ? int('parallelism', 'pipeline_parallel_microbatch_size', 1) : local;
  if (globalBatch % (mbs * dp) !== 0) throw new ImportError('training.global_batch_size', `${globalBatch} is not a multiple of micro-batch ${mbs} x dp ${dp}`);

  // Layers per stage: explicit FQN lists, or torchtitan's defaults (not read: give module_fqns_per_model_part).
  let counts: number[];
  if (pp === 1) counts = [model.layers];
  else {
    const parts = get('parallelism', 'module_fqns_per_model_part');
    if (!Array.isArray(parts) || parts.length !== pp) {
      throw new ImportError('parallelism.module_fqns_per_model_part', `needed with pipeline_parallel_degree ${pp}: one list of module names per stage`);
    }
    counts = parts.map((p, i) => {
      if (!Array.isArray(p)) throw new ImportError('parallelism.module_fqns_per_model_part', `stage ${i} is not a list`);
      return p.filter((f) => typeof f === 'string' && /^layers\.\d+$/.test(f)).length;
    });
  }
  const mode = str('activation_checkpoint', 'mode', 'selective');
  // selective with the per-op policy ("op") is the plan's opRecompute; every n-th layer (a number; the
  // default "2" in v0.2.2's job_config.py) and memory_budget are not modelled.
  const option = mode === 'selective' ? String(get('activation_checkpoint', 'selective_ac_option') ?? '2') : '';
  const opRecompute = mode === 'selective' && option === 'op';
  if (mode === 'selective' && !opRecompute) {
    problems.push({ option: 'activation_checkpoint.selective_ac_option', reason: `"${option}" (every n-th layer) is not modelled (Mist models "op" and whole layers: mode "full" or "none")` });
  } else if (mode === 'memory_budget') {
    problems.push({ option: 'activation_checkpoint.mode', reason: `"${mode}" is not modelled (Mist models "full", "none" and "selective" with selective_ac_option "op")` });
  } else if (mode !== 'full' && mode !== 'none' && mode !== 'selective') {
    throw new ImportError('activation_checkpoint.mode', `got ${mode}; allowed: full, none, selective, memory_budget`);
  }
  // With TP, Mist predicts torchtitan's defaults: the loss under loss_parallel over vocabulary-sharded
  // logits (the analyzer's headTransientBytes) and TP collectives waited for (no micro-pipelining).
  if (tp > 1 && get('parallelism', 'disable_loss_parallel') === true) {
    problems.push({ option: 'parallelism.disable_loss_parallel', reason: 'a loss over replicated (all-gathered) logits is not modelled (Mist predicts loss_parallel over vocabulary-sharded logits)' });
  }
  if (tp > 1 && get('parallelism', 'enable_async_tensor_parallel') === true) {
    problems.push({ option: 'parallelism.enable_async_tensor_parallel', reason: 'async TP (micro-pipelined collectives) is not modelled (Mist predicts TP collectives waited for)' });
  }
  const compiled = compileOf(get, problems);
  const offload = get('training', 'enable_cpu_offload') === true ? 1 : 0;
  const mesh = stageMesh(dp * tp * cp, ctx.cluster, 'parallelism');
  const stages: StageStrategy[] = rangesFromCounts(counts).map((layers, i) => ({
    layers, mesh, microBatchSize: mbs, dp, tp, ...(cp > 1 ? { cp } : {}), sequenceParallel: tp > 1, ckptLayers: mode === 'full' ? counts[i] : 0,
    ...(opRecompute ? { opRecompute: true } : {}), zero,
    offload: { weights: offload, grads: offload, optim: offload, activations: 0 },
  }));
  const { fp8, fp8ParamGather } = float8Of(doc, zero, problems);
  const plan: Plan = parsePlan({
    version: 1, model: model.name, cluster: ctx.cluster.name, seqLen: int('training', 'seq_len', 2048), globalBatch,
    gradAccumSteps: globalBatch / (mbs * dp), stages, ...(fp8 ? { fp8 } : {}),
  }, { model, cluster: ctx.cluster });
  const training = { ...(fp8ParamGather ? { fp8ParamGather } : {}), ...(compiled ? { crossEntropy: 'compiled' as const } : {}) };
  return {
    model, modelInCatalog: fromCatalog !== undefined && ctx.model === undefined, plan, problems,
    ...(Object.keys(training).length > 0 ? { training } : {}),
  };
}

/**
 * torchao's Float8Linear as torchtitan v0.2.2 applies it (components/quantization/float8.py): on when
 * model.converters lists "quantize.linear.float8"; without a recipe_name (or "tensorwise") it is
 * tensorwise dynamic scaling, the plan's fp8 'current'; enable_fsdp_float8_all_gather gathers the
 * weights as fp8 where FSDP shards them (the training spec's fp8ParamGather); torchtitan asserts no
 * recipe_name with it. The output layer must be filtered (filter_fqns "output"): Mist keeps the LM head
 * in bf16.
 */
function float8Of(doc: TomlTable, zero: ZeroLevel, problems: ImportProblem[]): { fp8?: 'current'; fp8ParamGather?: true } {
  const model = isTable(doc.model) ? doc.model : {};
  const converters = model.converters ?? [];
  if (!Array.isArray(converters) || converters.some((c) => typeof c !== 'string')) {
    throw new ImportError('model.converters', `got ${JSON.stringify(converters)}; expected a list of converter names`);
  }
  for (const c of converters) {
    if (c !== 'quantize.linear.float8') problems.push({ option: 'model.converters', reason: `"${String(c)}" is not modelled (Mist models "quantize.linear.float8")` });
  }
  if (!converters.includes('quantize.linear.float8')) return {};
  const q = isTable(doc.quantize) ? doc.quantize : {};
  const linear = isTable(q.linear) ? q.linear : {};
  const f8 = isTable(linear.float8) ? linear.float8 : {};
  const recipe = f8.recipe_name;
  if (recipe !== undefined && recipe !== 'tensorwise') {
    problems.push({ option: 'quantize.linear.float8.recipe_name', reason: `"${String(recipe)}" scaling is not modelled (tensorwise is); the plan has no fp8` });
    return {};
  }
  const filtered = Array.isArray(f8.filter_fqns) && f8.filter_fqns.includes('output');
  if (!filtered) problems.push({ option: 'quantize.linear.float8.filter_fqns', reason: 'the output layer in fp8 is not modelled (Mist keeps the LM head in bf16: add "output")' });
  if (f8.enable_fsdp_float8_all_gather !== true) return { fp8: 'current' };
  if (recipe !== undefined) {
    throw new ImportError('quantize.linear.float8.enable_fsdp_float8_all_gather', 'not with recipe_name (torchtitan asserts: "using enable_fsdp_float8_all_gather together with recipe_name is not supported")');
  }
  // torchtitan turns it on only where FSDP shards (parallel_dims.dp_shard_enabled): ZeRO 2-3 here.
  return zero >= 2 ? { fp8: 'current', fp8ParamGather: true } : { fp8: 'current' };
}

/**
 * torch.compile as torchtitan v0.2.2 applies it (config/job_config.py Compile: enable, components
 * default ["model", "loss"], backend "inductor"): with both components Mist predicts it (fused
 * element-wise kernels and the compiled loss: the training spec's crossEntropy 'compiled', `mist
 * analyze --target torchtitan --compile`); one component alone or another backend is named as not
 * modelled.
 */
function compileOf(get: (section: string, key: string) => TomlValue | undefined, problems: ImportProblem[]): boolean {
  if (get('compile', 'enable') !== true) return false;
  const components = get('compile', 'components') ?? ['model', 'loss'];
  const backend = get('compile', 'backend') ?? 'inductor';
  if (backend !== 'inductor') {
    problems.push({ option: 'compile.backend', reason: `"${String(backend)}" is not modelled (Mist models Inductor's fused kernels)` });
    return false;
  }
  if (!Array.isArray(components) || !components.includes('model') || !components.includes('loss')) {
    problems.push({ option: 'compile.components', reason: `${JSON.stringify(components)} is not modelled (Mist models torch.compile of the model and the loss together)` });
    return false;
  }
  return true;
}
