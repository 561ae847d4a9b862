// `mist import --from deepspeed ds_config.json [launcher args]`: a DeepSpeed 0.19.6 config as a plan for a
// given model (DeepSpeed's config names no model).
import { type ClusterSpec, engineOverlapsGradReduce, type ModelSpec, type Plan, type StageStrategy, type ZeroLevel, parsePlan } from '@mist/core';
import { flagMap, parseFlags } from '../argv';
import { positiveInt, rangesFromCounts, stageMesh } from '../common';
import { ImportError, type ImportedTraining, type ImportProblem, type ImportResult } from '../types';
import { deepspeedRunsFp32Grads } from './export';

export interface DeepspeedImportContext {
  cluster: ClusterSpec;
  model: ModelSpec;
  modelInCatalog: boolean;
  /** Sequence length of the run (DeepSpeed's config has none). */
  seqLen: number;
  /** GPUs of the run; default: --num_nodes x --num_gpus from the launcher args, else the whole cluster. */
  gpus?: number;
}

const TOP_MODELLED = new Set([
  'train_batch_size', 'train_micro_batch_size_per_gpu', 'gradient_accumulation_steps', 'bf16', 'fp16', 'zero_optimization',
  'pipeline', 'activation_checkpointing', 'data_types',
]);
/** DeepSpeed's spellings of fp32 (runtime/config.py DtypeEnum). */
const FP32_NAMES = new Set(['fp32', 'float32', 'float', 'torch.float32']);
const TOP_IGNORED = new Set([
  'optimizer', 'scheduler', 'gradient_clipping', 'steps_per_print', 'wall_clock_breakdown', 'tensorboard', 'wandb',
  'csv_monitor', 'comms_logger', 'flops_profiler', 'prescale_gradients', 'gradient_predivide_factor', 'seed',
  'dump_state', 'zero_allow_untested_optimizer', 'checkpoint', 'communication_data_type',
]);
const ZERO_MODELLED = new Set(['stage', 'offload_param', 'offload_optimizer', 'overlap_comm']);
const ZERO_IGNORED = new Set([
  'contiguous_gradients', 'reduce_scatter', 'reduce_bucket_size', 'allgather_partitions', 'allgather_bucket_size',
  'round_robin_gradients', 'sub_group_size', 'stage3_prefetch_bucket_size', 'prefetch_bucket_size',
  'stage3_param_persistence_threshold', 'param_persistence_threshold', 'stage3_max_live_parameters', 'max_live_parameters',
  'stage3_max_reuse_distance', 'max_reuse_distance', 'stage3_gather_16bit_weights_on_model_save',
  'gather_16bit_weights_on_model_save', 'elastic_checkpoint', 'ignore_unused_parameters', 'use_multi_rank_bucket_allreduce',
]);
const OFFLOAD_KEYS = new Set(['device', 'pin_memory', 'ratio', 'buffer_count', 'buffer_size', 'fast_init', 'nvme_path', 'max_in_cpu']);
const LAUNCHER_FLAGS = new Set(['--num_nodes', '--num_gpus', '--master_addr', '--master_port', '--hostfile', '--include', '--exclude', '--deepspeed', '--deepspeed_config']);

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function offloadRatio(v: unknown, where: string, problems: ImportProblem[], ratioKey: boolean): number {
  if (v === undefined || v === null) return 0;
  if (!isObj(v)) throw new ImportError(where, 'expected an object');
  for (const k of Object.keys(v)) {
    if (!OFFLOAD_KEYS.has(k) || (!ratioKey && k === 'ratio')) problems.push({ option: `${where}.${k}`, reason: 'unknown option' });
  }
  const device = v.device ?? 'none';
  if (device === 'none') return 0;
  if (device === 'nvme') problems.push({ option: `${where}.device`, reason: 'NVMe offload is modelled as CPU offload (host memory is checked, NVMe bandwidth is not)' });
  else if (device !== 'cpu') throw new ImportError(`${where}.device`, `got ${JSON.stringify(device)}; allowed: none, cpu, nvme`);
  const r = ratioKey && typeof v.ratio === 'number' ? v.ratio : 1;
  if (r < 0 || r > 1) throw new ImportError(`${where}.ratio`, `got ${r}; expected a number in [0, 1]`);
  return r;
}

export function importDeepspeed(configText: string, launcherArgs: readonly string[], ctx: DeepspeedImportContext): ImportResult {
  let cfg: unknown;
  try {
    cfg = JSON.parse(configText);
  } catch (e) {
    throw new ImportError('ds_config.json', `not JSON: ${(e as Error).message}`);
  }
  if (!isObj(cfg)) throw new ImportError('ds_config.json', 'expected a JSON object');
  const problems: ImportProblem[] = [];
  for (const k of Object.keys(cfg)) {
    if (!TOP_MODELLED.has(k) && !TOP_IGNORED.has(k)) problems.push({ option: k, reason: 'unknown option' });
  }
  const { flags, stray } = parseFlags(launcherArgs);
  for (const f of flags) if (!LAUNCHER_FLAGS.has(f.flag)) problems.push({ option: f.flag, reason: 'unknown launcher option' });
  for (const w of stray) problems.push({ option: w, reason: 'not a --flag or its value' });
  const fm = flagMap(flags);
  const launcherGpus = fm.has('--num_nodes') || fm.has('--num_gpus')
    ? positiveInt(fm.get('--num_nodes')?.[0] ?? '1', '--num_nodes') * positiveInt(fm.get('--num_gpus')?.[0] ?? String(ctx.cluster.gpusPerNode), '--num_gpus')
    : undefined;
  const world = ctx.gpus ?? launcherGpus ?? ctx.cluster.nodes * ctx.cluster.gpusPerNode;

  const num = (k: string): number | undefined => {
    const v = cfg[k];
    if (v === undefined || v === 'auto') return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new ImportError(k, `got ${JSON.stringify(v)}; expected a positive integer`);
    return v;
  };
  const pipe = isObj(cfg.pipeline) ? cfg.pipeline : {};
  const pp = typeof pipe.stages === 'number' ? pipe.stages : 1;
  if (!Number.isInteger(pp) || pp < 1 || world % pp !== 0) throw new ImportError('pipeline.stages', `got ${JSON.stringify(pipe.stages)}; must divide the ${world} GPUs`);
  if (pipe.partition !== undefined && pipe.partition !== 'uniform' && pp > 1) {
    problems.push({ option: 'pipeline.partition', reason: `"${String(pipe.partition)}" is read as an even split of the layers` });
  }
  const dp = world / pp;
  // DeepSpeed's rule: train_batch_size = micro batch x gradient accumulation x dp (runtime/config.py).
  const tb = num('train_batch_size');
  const mb = num('train_micro_batch_size_per_gpu');
  const ga = num('gradient_accumulation_steps');
  const mbs = mb ?? (tb !== undefined && ga !== undefined ? tb / (ga * dp) : undefined);
  if (mbs === undefined || !Number.isInteger(mbs)) throw new ImportError('train_micro_batch_size_per_gpu', 'required (or train_batch_size and gradient_accumulation_steps)');
  const G = ga ?? (tb !== undefined ? tb / (mbs * dp) : 1);
  if (!Number.isInteger(G)) throw new ImportError('train_batch_size', `${String(tb)} is not a multiple of micro batch ${mbs} x dp ${dp}`);
  const globalBatch = tb ?? mbs * G * dp;
  if (globalBatch !== mbs * G * dp) throw new ImportError('train_batch_size', `${globalBatch} != micro batch ${mbs} x accumulation ${G} x dp ${dp}`);

  const z = isObj(cfg.zero_optimization) ? cfg.zero_optimization : {};
  for (const k of Object.keys(z)) {
    if (!ZERO_MODELLED.has(k) && !ZERO_IGNORED.has(k)) problems.push({ option: `zero_optimization.${k}`, reason: 'unknown option' });
  }
  const stage = z.stage ?? 0;
  if (stage !== 0 && stage !== 1 && stage !== 2 && stage !== 3) throw new ImportError('zero_optimization.stage', `got ${JSON.stringify(stage)}; allowed: 0, 1, 2, 3`);
  const weights = offloadRatio(z.offload_param, 'zero_optimization.offload_param', problems, false);
  const optim = offloadRatio(z.offload_optimizer, 'zero_optimization.offload_optimizer', problems, true);
  const ckptOn = isObj(cfg.activation_checkpointing) || (typeof pipe.activation_checkpoint_interval === 'number' && pipe.activation_checkpoint_interval > 0);
  if (isObj(cfg.activation_checkpointing) && cfg.activation_checkpointing.cpu_checkpointing === true) {
    problems.push({ option: 'activation_checkpointing.cpu_checkpointing', reason: 'offloading checkpointed inputs is not modelled' });
  }
  const L = ctx.model.layers;
  if (L % pp !== 0) throw new ImportError('pipeline.stages', `${L} layers do not split evenly over ${pp} stages`);
  const counts = Array.from({ length: pp }, () => L / pp);
  const mesh = stageMesh(dp, ctx.cluster, 'pipeline.stages');
  const stages: StageStrategy[] = rangesFromCounts(counts).map((layers, i) => ({
    layers, mesh, microBatchSize: mbs, dp, tp: 1, sequenceParallel: false, ckptLayers: ckptOn ? counts[i] : 0,
    zero: stage as ZeroLevel, offload: { weights, grads: optim, optim, activations: 0 },
  }));
  const plan: Plan = parsePlan({
    version: 1, model: ctx.model.name, cluster: ctx.cluster.name, seqLen: ctx.seqLen, globalBatch, gradAccumSteps: G, stages,
  }, { model: ctx.model, cluster: ctx.cluster });
  // data_types.grad_accum_dtype (TrainingSpec.gradAccumDtype; the model's dtype by default), where
  // DeepSpeed runs it (export.ts deepspeedRunsFp32Grads). Its param_dtype / buffer_dtype do not change
  // what Mist predicts.
  const dataTypes = isObj(cfg.data_types) ? cfg.data_types : {};
  const gradDtype = dataTypes.grad_accum_dtype;
  const bf16 = isObj(cfg.bf16) && cfg.bf16.enabled === true;
  const training: ImportedTraining = {};
  if (typeof gradDtype === 'string' && FP32_NAMES.has(gradDtype) && (bf16 || (isObj(cfg.fp16) && cfg.fp16.enabled === true))) {
    if (deepspeedRunsFp32Grads(bf16, stage, { weights, optim })) training.gradAccumDtype = 'fp32';
    else problems.push({ option: 'data_types.grad_accum_dtype', reason: 'fp32 beside lower-precision weights runs with bf16, ZeRO-1 and no CPU offload only; read as the weights\' dtype' });
  }
  // The end-of-step gradient reduction (TrainingSpec.gradReduceOverlap): ZeRO-0 all-reduces after the
  // backward whatever the config (core's engineOverlapsGradReduce); ZeRO-1 reduces in the backward's
  // hooks, beside it only with overlap_comm (default false below ZeRO-3: runtime/zero/config.py).
  // ZeRO-2/3 reduce every micro-batch, which the field does not cover.
  const reducedAfter = !engineOverlapsGradReduce('deepspeed', stage) || (stage === 1 && z.overlap_comm !== true);
  if (dp > 1 && reducedAfter) training.gradReduceOverlap = false;
  return { model: ctx.model, modelInCatalog: ctx.modelInCatalog, plan, problems, ...(Object.keys(training).length > 0 ? { training } : {}) };
}
