// The search knobs: one schema for every way a user turns them. `mist tune` flags, the job file's
// `tune` section and the Tuner service's TuneOptions.knobs_json are all read through this table, so
// a knob added here is reachable from all three, with the same names, checks and error messages.
//   JSON key (job file, knobs_json)   CLI flag
//   space                             --space NAME
//   target                            --target ENGINE|BACKEND
//   maxStages                         --max-stages N
//   ...                               (see KNOBS below)
import {
  BACKEND_NAMES, backendCapabilities, CROSS_ENTROPY_MODES, GRAD_ACCUM_DTYPES, backendViolations, ENGINE_NAMES, engineCapabilities, engineCompiles, engineCrossEntropies, engineCrossEntropy, engineElementwise, engineFlashAttentionKernel, engineGradAccumDtype, engineRunsCommOverlaps, engineSequenceParallelInput, engineTpBackwardOverlap, fp8Violation, isBackendName, isEngineName, type ModelSpec, SpecError,
  type SpecIssue, type TrainingSpec, valueAtField, ZERO_LEVELS, type ZeroLevel,
} from '@mist/core';
import { backendSpace } from './backend-space';
import {
  type CkptMode, type InterStageSolver, NO_OFFLOAD_LEVELS, type SearchSpace, SPACE_NAMES, spaceByName, type SpaceName,
  uniformOffloadLevels,
} from './search-space';

/** Every knob, as the JSON of a job file or of TuneOptions.knobs_json holds it (all optional). */
export interface SearchKnobs {
  /** The search space the main search covers (default mist). */
  space?: SpaceName;
  /** Search only what this engine can launch or this executor backend runs. */
  target?: string;
  maxStages?: number;
  maxTp?: number;
  /** Largest context-parallel degree (1 = off). */
  maxCp?: number;
  maxEp?: number;
  /** Largest model-chunk count per rank of interleaved 1F1B (1 = off). */
  maxVirtualStages?: number;
  uniformPartition?: boolean;
  uniformMesh?: boolean;
  sequenceParallel?: boolean;
  pow2MicroBatch?: boolean;
  ckpt?: CkptMode;
  /** false: no selective recompute of the attention core. */
  selectiveRecompute?: boolean;
  zero?: ZeroLevel[];
  /** Offload ratio grid step, 1/n. */
  offloadStep?: number;
  /** false: no offloading at all. */
  offload?: boolean;
  frontierSize?: number;
  solver?: InterStageSolver;
  /** Seconds the main search may take before it returns its best plan with the proven gap. */
  timeLimit?: number;
  /** fp8 linear layers (FP8_KNOB_VALUES): off, one recipe, or auto (fp8-choice.ts). */
  fp8?: Fp8Knob;
  /** How the loss reads the logits (TrainingSpec.crossEntropy); absent: the training spec's (or the target engine's). */
  crossEntropy?: TrainingSpec['crossEntropy'];
  /** The dtype gradients accumulate in (TrainingSpec.gradAccumDtype); absent: the training spec's (or the target engine's default). */
  gradAccumDtype?: TrainingSpec['gradAccumDtype'];
  /**
   * torch.compile on, for an engine that has it (core engineCompiles: torchtitan's compile.enable with
   * its model and loss): the element-wise ops fused and the loss compiled (TrainingSpec.crossEntropy
   * 'compiled'). Absent: off, as Mist's torchtitan export writes it by default.
   */
  compile?: boolean;
}

/**
 * off: no fp8 linear layers; delayed / current: fp8 with that Transformer Engine recipe (refused on
 * a GPU without fp8 tensor cores, naming it); auto: tune with and without fp8 (delayed scaling) where
 * the GPU and the target have it and keep the faster plan.
 */
export const FP8_KNOB_VALUES = ['off', 'delayed', 'current', 'auto'] as const;
export type Fp8Knob = (typeof FP8_KNOB_VALUES)[number];

type Kind =
  | { type: 'enum'; values: readonly string[] }
  | { type: 'int' }
  | { type: 'seconds' }
  | { type: 'step' }
  | { type: 'zero-list' }
  /** A switch the CLI only turns on (`--uniform-mesh`). */
  | { type: 'flag' }
  /** A switch the CLI only turns off (`--no-sp` sets the knob to false). */
  | { type: 'off-flag' };

export interface KnobSpec {
  key: keyof SearchKnobs;
  /** The `mist tune` flag, without the dashes. */
  flag: string;
  kind: Kind;
  /** Shown as the flag's value name in --help. */
  valueName?: string;
  description: string;
}

const TARGETS: readonly string[] = [...ENGINE_NAMES, ...BACKEND_NAMES];

export const SEARCH_KNOBS: readonly KnobSpec[] = [
  { key: 'space', flag: 'space', kind: { type: 'enum', values: SPACE_NAMES }, valueName: 'NAME',
    description: `search space of the main search: ${SPACE_NAMES.join(', ')} (an engine name searches only what that engine can run)` },
  { key: 'target', flag: 'target', kind: { type: 'enum', values: TARGETS }, valueName: 'ENGINE|BACKEND',
    description: `search only plans this engine can launch (${ENGINE_NAMES.join(', ')}; \`mist export --to ENGINE\` writes its ` +
      `configuration) or this executor backend runs (${BACKEND_NAMES.join(', ')}; fp32, as \`mist launch\` accepts)` },
  { key: 'maxStages', flag: 'max-stages', kind: { type: 'int' }, valueName: 'N', description: 'ablation: at most N pipeline stages (1 = no pipelining)' },
  { key: 'uniformPartition', flag: 'uniform-partition', kind: { type: 'flag' }, description: 'ablation: every stage gets layers / pp layers' },
  { key: 'uniformMesh', flag: 'uniform-mesh', kind: { type: 'flag' }, description: 'ablation: every stage uses the same device mesh' },
  { key: 'maxTp', flag: 'max-tp', kind: { type: 'int' }, valueName: 'N', description: 'ablation: tensor parallelism of at most N (1 = off)' },
  { key: 'maxCp', flag: 'max-cp', kind: { type: 'int' }, valueName: 'N', description: 'ablation: context parallelism of at most N (1 = off)' },
  { key: 'maxEp', flag: 'max-ep', kind: { type: 'int' }, valueName: 'N', description: 'ablation: expert parallelism of at most N (mixture-of-experts models; 1 = off)' },
  { key: 'maxVirtualStages', flag: 'max-virtual-stages', kind: { type: 'int' }, valueName: 'V',
    description: 'ablation: interleaved 1F1B with at most V model chunks per rank (1 = off)' },
  { key: 'sequenceParallel', flag: 'no-sp', kind: { type: 'off-flag' }, description: 'ablation: no sequence parallelism' },
  { key: 'pow2MicroBatch', flag: 'pow2-micro-batch', kind: { type: 'flag' }, description: 'ablation: micro-batch sizes over powers of two only' },
  { key: 'ckpt', flag: 'ckpt', kind: { type: 'enum', values: ['fine', 'all-or-none', 'none'] }, valueName: 'MODE',
    description: 'ablation: activation checkpointing fine | all-or-none | none' },
  { key: 'selectiveRecompute', flag: 'no-selective-recompute', kind: { type: 'off-flag' },
    description: 'ablation: no selective recompute of the attention core (searched only without flash attention)' },
  { key: 'zero', flag: 'zero', kind: { type: 'zero-list' }, valueName: 'LIST', description: 'ablation: ZeRO levels to try, e.g. 0,1' },
  { key: 'offloadStep', flag: 'offload-step', kind: { type: 'step' }, valueName: 'X', description: 'offload ratio grid step 1/n (default 0.125)' },
  { key: 'offload', flag: 'no-offload', kind: { type: 'off-flag' }, description: 'ablation: no offloading' },
  { key: 'frontierSize', flag: 'frontier-size', kind: { type: 'int' }, valueName: 'K', description: 'Pareto points kept per stage frontier (default 30)' },
  { key: 'solver', flag: 'solver', kind: { type: 'enum', values: ['dp', 'milp'] }, valueName: 'dp|milp',
    description: 'inter-stage solver: exact bottleneck DP (default, faster) or the HiGHS MILP' },
  { key: 'timeLimit', flag: 'time-limit', kind: { type: 'seconds' }, valueName: 'S',
    description: 'stop the main search after S seconds and return the best plan so far with its proven gap' },
  { key: 'fp8', flag: 'fp8', kind: { type: 'enum', values: FP8_KNOB_VALUES }, valueName: FP8_KNOB_VALUES.join('|'),
    description: 'fp8 linear layers (Transformer Engine): off (default), delayed or current scaling, or auto: tune with and ' +
      'without fp8 where the GPU has fp8 tensor cores and keep the faster plan' },
  { key: 'crossEntropy', flag: 'cross-entropy', kind: { type: 'enum', values: CROSS_ENTROPY_MODES }, valueName: 'MODE',
    description: 'how the loss reads the logits: fused (default; one kernel with an fp32 buffer, Megatron-LM\'s), fp32-logits (an fp32 ' +
      'copy in autograd, torchtitan\'s, which --target torchtitan implies), compute-dtype (the fp16 logits, Megatron-LM\'s --fp16-lm-cross-entropy) ' +
      'or compiled (the fp32-logits loss under torch.compile: the logits and their gradient only)' },
  { key: 'compile', flag: 'compile', kind: { type: 'flag' },
    description: 'with torchtitan (--target torchtitan): torch.compile on (its model and loss: fused element-wise kernels, the compiled loss; ' +
      'the same as --cross-entropy compiled); mist export --to torchtitan --compile writes compile.enable' },
  { key: 'gradAccumDtype', flag: 'grad-accum-dtype', kind: { type: 'enum', values: GRAD_ACCUM_DTYPES }, valueName: 'param|fp32',
    description: 'the dtype gradients accumulate in and are reduced in: param (the weights\', the default) or fp32 (fp32 main gradients, 2 more ' +
      'bytes per parameter: Megatron-LM\'s and NeMo\'s default with bf16, which --target megatron|nemo implies; param there is Megatron-LM\'s --grad-reduce-in-bf16)' },
];

const ALLOWED_KEYS = SEARCH_KNOBS.map((k) => k.key).join(', ');

/** What a knob accepts, in words (for error messages). */
function expected(kind: Kind): string {
  switch (kind.type) {
    case 'enum': return `one of ${kind.values.join(', ')}`;
    case 'int': return 'a positive integer';
    case 'seconds': return 'a positive number of seconds';
    case 'step': return '1/n for a whole n (e.g. 0.125)';
    case 'zero-list': return `a list of ZeRO levels from ${ZERO_LEVELS.join(', ')}`;
    default: return 'true or false';
  }
}

/** A command line's text as a number (a JSON value as it is). */
function numeric(value: unknown): unknown {
  return typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
}

/** The value of one knob, or an issue naming it. `text` values come from a command line. */
function readKnob(spec: KnobSpec, value: unknown, field: string): { ok: true; value: unknown } | { ok: false; issue: SpecIssue } {
  const bad = () => ({ ok: false as const, issue: { field, value, message: `expected ${expected(spec.kind)}` } });
  const k = spec.kind;
  switch (k.type) {
    case 'enum':
      return typeof value === 'string' && k.values.includes(value) ? { ok: true, value } : bad();
    case 'int': {
      const n = numeric(value);
      return typeof n === 'number' && Number.isInteger(n) && n >= 1 ? { ok: true, value: n } : bad();
    }
    case 'seconds': {
      const n = numeric(value);
      return typeof n === 'number' && Number.isFinite(n) && n > 0 ? { ok: true, value: n } : bad();
    }
    case 'step': {
      const n = numeric(value);
      if (typeof n !== 'number' || !(n > 0 && n <= 1) || Math.abs(Math.round(1 / n) * n - 1) > 1e-9) return bad();
      return { ok: true, value: n };
    }
    case 'zero-list': {
      const list = typeof value === 'string' ? value.split(',').map((z) => (z.trim() === '' ? NaN : Number(z))) : value;
      if (!Array.isArray(list) || list.length === 0 || list.some((z) => !(ZERO_LEVELS as readonly unknown[]).includes(z))) return bad();
      return { ok: true, value: [...new Set(list as ZeroLevel[])].sort() };
    }
    default:
      return typeof value === 'boolean' ? { ok: true, value } : bad();
  }
}

function check(issues: SpecIssue[], what: string): void {
  if (issues.length > 0) throw new SpecError(what, issues);
}

/**
 * Knobs from a JSON document (a job file's `tune` section, TuneOptions.knobs_json). Unknown keys and
 * bad values throw a SpecError naming `prefix.key` and what it accepts.
 */
export function parseSearchKnobs(doc: unknown, prefix = 'tune'): SearchKnobs {
  if (doc === undefined || doc === null) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new SpecError('search knobs', [{ field: prefix, value: doc, message: `expected an object with keys among ${ALLOWED_KEYS}` }]);
  }
  const out: Record<string, unknown> = {};
  const issues: SpecIssue[] = [];
  for (const [key, value] of Object.entries(doc)) {
    const spec = SEARCH_KNOBS.find((k) => k.key === key);
    if (!spec) {
      issues.push({ field: `${prefix}.${key}`, value, message: `unknown search knob; allowed: ${ALLOWED_KEYS}` });
      continue;
    }
    if (value === undefined) continue;
    const r = readKnob(spec, value, `${prefix}.${key}`);
    if (r.ok) out[key] = r.value;
    else issues.push(r.issue);
  }
  check(issues, 'search knobs');
  return checkCombination(out as SearchKnobs, prefix);
}

/**
 * Knobs from parsed command-line values keyed by flag (`max-tp: "4"`, `no-sp: true`); flags that are
 * absent are left out. Bad values throw a SpecError naming `--flag`.
 */
export function searchKnobsFromFlags(values: Readonly<Record<string, unknown>>): SearchKnobs {
  const out: Record<string, unknown> = {};
  const issues: SpecIssue[] = [];
  for (const spec of SEARCH_KNOBS) {
    const v = values[spec.flag];
    if (v === undefined || v === false) continue;
    if (spec.kind.type === 'flag' || spec.kind.type === 'off-flag') {
      out[spec.key] = spec.kind.type === 'flag';
      continue;
    }
    const r = readKnob(spec, v, `--${spec.flag}`);
    if (r.ok) out[spec.key] = r.value;
    else issues.push(r.issue);
  }
  check(issues, 'command line');
  return checkCombination(out as SearchKnobs, '--');
}

function checkCombination(k: SearchKnobs, prefix: string): SearchKnobs {
  const name = (key: keyof SearchKnobs): string => (prefix === '--' ? `--${SEARCH_KNOBS.find((s) => s.key === key)!.flag}` : `${prefix}.${key}`);
  if (k.target !== undefined && k.space !== undefined && k.space !== 'mist' && k.space !== k.target) {
    throw new SpecError('search knobs', [{ field: name('space'), value: k.space,
      message: `disagrees with ${name('target')} ${k.target}; give one of them` }]);
  }
  if (k.offload === false && k.offloadStep !== undefined) {
    throw new SpecError('search knobs', [{ field: name('offloadStep'), value: k.offloadStep, message: 'has no effect with offloading turned off' }]);
  }
  return k;
}

/** The knobs that restrict a space (everything but its choice and the time limit). */
function spaceOverrides(k: SearchKnobs): Partial<SearchSpace> {
  const o: Partial<SearchSpace> = {};
  if (k.maxStages !== undefined) o.maxStages = k.maxStages;
  if (k.maxTp !== undefined) o.maxTp = k.maxTp;
  if (k.maxCp !== undefined) o.maxCp = k.maxCp;
  if (k.maxEp !== undefined) o.maxEp = k.maxEp;
  if (k.maxVirtualStages !== undefined) o.maxVirtualStages = k.maxVirtualStages;
  if (k.uniformPartition) o.uniformPartition = true;
  if (k.uniformMesh) o.uniformMesh = true;
  if (k.sequenceParallel === false) o.sequenceParallel = false;
  if (k.pow2MicroBatch) o.microBatchPow2 = true;
  if (k.ckpt !== undefined) o.ckpt = k.ckpt;
  if (k.selectiveRecompute === false) o.selectiveRecompute = false;
  if (k.zero !== undefined) o.zero = [...k.zero];
  if (k.offloadStep !== undefined) o.offload = uniformOffloadLevels(k.offloadStep);
  if (k.offload === false) o.offload = NO_OFFLOAD_LEVELS;
  if (k.frontierSize !== undefined) o.frontierSize = k.frontierSize;
  if (k.solver !== undefined) o.solver = k.solver;
  if (k.fp8 === 'auto') o.fp8Choice = true;
  return o;
}

/**
 * The search space the knobs ask for: `target` (an engine's or a backend's space) or `space`
 * (default mist), narrowed by the ablation knobs. A backend's space depends on the model (its tp
 * limit follows the key/value heads) and, when given, on the training spec (the cpu backend runs
 * context parallelism with flash attention only).
 */
export function spaceFromKnobs(k: SearchKnobs, model: ModelSpec, training?: Pick<TrainingSpec, 'flashAttention'>): SearchSpace {
  const overrides = spaceOverrides(k);
  if (k.target !== undefined && isBackendName(k.target)) return backendSpace(k.target, model, overrides, training);
  const name = (k.target !== undefined && isEngineName(k.target) ? k.target : k.space ?? 'mist') as SpaceName;
  return spaceByName(name, overrides);
}

/** Knobs merged left to right: a later defined value wins. */
export function mergeSearchKnobs(...parts: SearchKnobs[]): SearchKnobs {
  const out: Record<string, unknown> = {};
  for (const p of parts) for (const [key, v] of Object.entries(p)) if (v !== undefined) out[key] = v;
  return out as SearchKnobs;
}

/**
 * The training spec a search for `knobs.target` costs, with the fp8 knob's recipe (off: none; auto:
 * the spec's, the search adds fp8): with a backend target the spec is checked
 * against the backend's table (an ALiBi model or no flash attention is refused with the feature
 * named) and takes the backend's dtype, so that the search costs what the backend runs (the cpu
 * backend: fp32). Other targets leave the spec as it is. `gpu` (the cluster's GPU name), when given,
 * sets the flash-attention kernel the engine runs on it (core engineFlashAttentionKernel: Megatron-LM
 * and NeMo run cuDNN's on Hopper).
 */
export function trainingForTarget(knobs: SearchKnobs, model: ModelSpec, training0: TrainingSpec, gpu?: string): TrainingSpec {
  // The fp8 knob, when it names a recipe (or off), is the training spec's fp8; auto leaves it to the search.
  let training: TrainingSpec = knobs.fp8 === undefined || knobs.fp8 === 'auto'
    ? training0
    : { ...training0, fp8: knobs.fp8 === 'off' ? 'none' : knobs.fp8 };
  const target = knobs.target;
  // The engine whose facts the spec takes (--target ENGINE, else --space ENGINE), and the flag naming it.
  const named = target ?? knobs.space;
  const engine = named !== undefined && isEngineName(named) ? named : null;
  const field = target !== undefined ? 'target' : 'space';
  // An engine's space: its table says which fp8 recipes it runs (a plan it could not launch is refused).
  if (engine) {
    const bad = fp8Violation(training.fp8 ?? 'none', engineCapabilities(engine), engine);
    if (bad) {
      throw new SpecError(`training for --${field} ${engine}`, [{ field: 'fp8', value: training.fp8, message: `${bad.feature} is not run by ${engine} (${bad.detail})` }]);
    }
  }
  // torch.compile: an option of an engine that has one (torchtitan); a compiled loss asked for by the
  // cross-entropy knob is the same option.
  const compiled = knobs.compile === true || (engine !== null && engineCompiles(engine) && knobs.crossEntropy === 'compiled');
  if (compiled && (engine === null || !engineCompiles(engine))) {
    throw new SpecError(`training for --${field} ${named ?? '(none)'}`, [{
      field: 'compile', value: true, message: `torch.compile is an option of ${ENGINE_NAMES.filter(engineCompiles).join(', ')} (allowed with --target or --space torchtitan)`,
    }]);
  }
  // The loss's reading of the logits: the knob's, and an engine whose loss always reads them one way
  // (torchtitan: fp32 logits, eagerly or compiled) is costed so; the knob may not ask for another.
  if (knobs.crossEntropy !== undefined) training = { ...training, crossEntropy: knobs.crossEntropy };
  const ce = engine ? engineCrossEntropy(engine, compiled) : null;
  if (ce !== null && knobs.crossEntropy !== undefined && knobs.crossEntropy !== ce) {
    throw new SpecError(`training for --${field} ${engine}`, [{
      field: 'crossEntropy', value: knobs.crossEntropy, message: `${engine}'s loss reads the logits as ${ce} (allowed: ${ce})`,
    }]);
  }
  if (ce !== null && training.crossEntropy !== ce) training = { ...training, crossEntropy: ce };
  // An engine that runs its loss more than one way (Megatron-LM: fused, or on the fp16 logits with
  // --fp16) refuses a mode it has none of.
  const runs = engine ? engineCrossEntropies(engine, training.computeDtype === 'fp16' ? 'fp16' : 'bf16') : null;
  if (runs !== null && knobs.crossEntropy !== undefined && !runs.includes(knobs.crossEntropy)) {
    throw new SpecError(`training for --${field} ${engine}`, [{
      field: 'crossEntropy', value: knobs.crossEntropy, message: `${engine} runs its loss as ${runs.join(' or ')} with ${training.computeDtype} (allowed: ${runs.join(', ')})`,
    }]);
  }
  // Likewise an engine that runs the element-wise ops as eager PyTorch kernels (torchtitan without torch.compile).
  const ew = engine ? engineElementwise(engine, compiled) : null;
  if (ew !== null && training.elementwise !== ew) training = { ...training, elementwise: ew };
  // And what its sequence-parallel linears keep of their gathered input (torchtitan: the gathered tensor).
  const spIn = engine ? engineSequenceParallelInput(engine) : null;
  if (spIn !== null && training.sequenceParallelInput !== spIn) training = { ...training, sequenceParallelInput: spIn };
  // And the flash-attention kernel it runs on the cluster's GPU (Transformer Engine: cuDNN's on Hopper).
  const kernel = engine && gpu !== undefined ? engineFlashAttentionKernel(engine, gpu) : null;
  if (kernel !== null && training.flashAttentionKernel !== kernel) training = { ...training, flashAttentionKernel: kernel };
  // And whether its column-parallel linears run their backward collectives beside their GEMMs (Megatron-LM, NeMo).
  const tpBwd = engine ? engineTpBackwardOverlap(engine) : null;
  if (tpBwd !== null && training.tpBackwardOverlap !== tpBwd) training = { ...training, tpBackwardOverlap: tpBwd };
  // And the dtype its gradients accumulate in: the knob's, else the engine's default (Megatron-LM, NeMo
  // with bf16: fp32 main gradients; --grad-reduce-in-bf16 is the knob's param).
  const gradDtype = knobs.gradAccumDtype ?? (engine ? engineGradAccumDtype(engine, training.paramDtype) : null);
  if (gradDtype !== null && training.gradAccumDtype !== gradDtype) training = { ...training, gradAccumDtype: gradDtype };
  // Megatron-Core's communication overlaps: costed only for an engine that runs them.
  if (engine && !engineRunsCommOverlaps(engine)) {
    const on = (['tpCommOverlap', 'paramGatherOverlap'] as const).filter((f) => training[f] === true);
    if (on.length > 0) {
      throw new SpecError(`training for --${field} ${engine}`, on.map((f) => ({
        field: f, value: true, message: `Megatron-Core's ${f === 'tpCommOverlap' ? '--tp-comm-overlap' : '--overlap-param-gather'} is costed only for --${field} megatron (mist export --to ${engine} does not set it)`,
      })));
    }
  }
  if (target === undefined || !isBackendName(target)) return training;
  const caps = backendCapabilities(target);
  // The backend's dtype and its runtime's gradient reduction (beside or after the last backward).
  const t: TrainingSpec = { ...training, paramDtype: caps.dtypes[0], computeDtype: caps.dtypes[0], gradReduceOverlap: caps.gradReduceOverlap, tpBackwardOverlap: caps.tpBackwardOverlap };
  const bad = backendViolations(caps, { model, training: t, plan: null });
  if (bad.length > 0) {
    throw new SpecError(`training for --target ${target}`, bad.map((v) => ({ field: v.field, value: valueAtField({ model, training: t }, v.field), message: `${v.feature} is not run by the ${target} backend (${v.detail})` })));
  }
  return t;
}
