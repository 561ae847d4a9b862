// `mist tune`: the Mist search for the fastest plan that fits, beside the best Megatron-LM-style and
// DeepSpeed-style plans under the same cost model. Progress on stderr, a summary on stdout (or one
// JSON object with --json), the plan file with --out (accepted unchanged by `mist analyze`).
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  backendCapabilities, backendViolations, BACKEND_NAMES, builtinHardwareProfile, ENGINE_NAMES, isBackendName, type ModelSpec, type TrainingSpec, formatBytes, formatCount, formatSeconds, type HardwareProfile, isEngineName, loadCluster,
  checkProfileMachine, loadHardwareProfile, loadModel, parseTrainingSpec, type Plan, ZERO_LEVELS, type ZeroLevel,
} from '@mist/core';
import type { PlanEstimate } from '@mist/analyzer';
import {
  backendSpace, deepspeedSpace, defaultCacheDir, megatronSpace, NO_OFFLOAD_LEVELS, type SearchSpace, SPACE_NAMES, spaceByName, type SpaceName,
  type TuneResult, tuneWithBaselines, uniformOffloadLevels,
} from '@mist/tuner';
import { clusterMismatch, estimateBaselinePlan, type ImportedBaseline } from './tune-checks';
import { type Command, intOpt, JSON_OPTION, numberOpt, type ParsedValues, requireString, stringOpt, UsageError } from '../cli/command';
import { gapText, loadFromPlan, replanText, stopOnSignals, tuneProgressPrinter } from './tune-progress';
import { renderTable } from '../cli/table';

/** The main search space: --space or --target, plus the ablation flags. */
function spaceFromFlags(values: ParsedValues, model: ModelSpec): SearchSpace {
  const target = stringOpt(values, 'target');
  const targets = [...ENGINE_NAMES, ...BACKEND_NAMES];
  if (target !== undefined && !isEngineName(target) && !isBackendName(target)) throw new UsageError(`--target: got "${target}"; allowed: ${targets.join(', ')}`);
  const spaceFlag = stringOpt(values, 'space');
  if (target !== undefined && spaceFlag !== undefined && spaceFlag !== 'mist' && spaceFlag !== target) {
    throw new UsageError(`--space ${spaceFlag} and --target ${target} disagree; give one of them`);
  }
  const name = (target ?? spaceFlag ?? 'mist') as SpaceName;
  if (target !== undefined && isBackendName(target)) return backendSpace(target, model, overrides(values));
  if (!SPACE_NAMES.includes(name)) throw new UsageError(`--space: got "${name}"; allowed: ${SPACE_NAMES.join(', ')}`);
  return spaceByName(name, overrides(values));
}

/**
 * With `--target BACKEND` the training spec is checked against the backend's table (an ALiBi model or
 * --no-flash-attention is refused with the feature named) and takes the backend's dtype, so that the
 * search costs what the backend runs (the cpu backend: fp32).
 */
function trainingForTarget(values: ParsedValues, model: ModelSpec, training: TrainingSpec): TrainingSpec {
  const target = stringOpt(values, 'target');
  if (target === undefined || !isBackendName(target)) return training;
  const caps = backendCapabilities(target);
  const t: TrainingSpec = { ...training, paramDtype: caps.dtypes[0], computeDtype: caps.dtypes[0] };
  const bad = backendViolations(caps, { model, training: t, plan: null });
  if (bad.length > 0) throw new UsageError(`--target ${target}: ${bad.map((v) => `${v.field}: ${v.feature} (${v.detail})`).join('; ')}`);
  return t;
}

/** The ablation flags, as overrides of a space. */
function overrides(values: ParsedValues): Partial<SearchSpace> {
  const o: Partial<SearchSpace> = {};
  const maxStages = intOpt(values, 'max-stages');
  if (maxStages !== undefined) o.maxStages = maxStages;
  const maxTp = intOpt(values, 'max-tp');
  if (maxTp !== undefined) o.maxTp = maxTp;
  if (values['uniform-partition']) o.uniformPartition = true;
  if (values['uniform-mesh']) o.uniformMesh = true;
  if (values['no-sp']) o.sequenceParallel = false;
  if (values['pow2-micro-batch']) o.microBatchPow2 = true;
  const ckpt = stringOpt(values, 'ckpt');
  if (ckpt !== undefined) {
    if (ckpt !== 'fine' && ckpt !== 'all-or-none' && ckpt !== 'none') throw new UsageError(`--ckpt: got "${ckpt}"; allowed: fine, all-or-none, none`);
    o.ckpt = ckpt;
  }
  const zero = stringOpt(values, 'zero');
  if (zero !== undefined) {
    const levels = zero.split(',').map((z) => Number(z.trim()));
    if (levels.length === 0 || levels.some((z) => !(ZERO_LEVELS as readonly number[]).includes(z))) {
      throw new UsageError(`--zero: got "${zero}"; expected a comma-separated list of 0, 1, 2, 3`);
    }
    o.zero = [...new Set(levels)].sort() as ZeroLevel[];
  }
  const step = numberOpt(values, 'offload-step');
  if (step !== undefined) {
    try {
      o.offload = uniformOffloadLevels(step);
    } catch (err) {
      throw new UsageError(`--offload-step: ${(err as Error).message}`);
    }
  }
  if (values['no-offload']) o.offload = NO_OFFLOAD_LEVELS;
  const k = intOpt(values, 'frontier-size');
  if (k !== undefined) o.frontierSize = k;
  const solver = stringOpt(values, 'solver');
  if (solver !== undefined) {
    if (solver !== 'dp' && solver !== 'milp') throw new UsageError(`--solver: got "${solver}"; allowed: dp, milp`);
    o.solver = solver;
  }
  return o;
}

function offloadText(s: Plan['stages'][number]): string {
  const o = s.offload;
  if (o.weights + o.grads + o.optim + o.activations === 0) return '-';
  const f = (x: number): string => (x === 0 ? '0' : x === 1 ? '1' : x.toFixed(3).replace(/0+$/, ''));
  return `w${f(o.weights)} g${f(o.grads)} o${f(o.optim)} a${f(o.activations)}`;
}

function planTable(plan: Plan, est: PlanEstimate): string {
  return renderTable(plan.stages.map((s, i) => ({ s, e: est.stages[i], i })), [
    { header: 'stage', value: (r) => r.i },
    { header: 'layers', value: (r) => `${r.s.layers[0]}-${r.s.layers[1]}` },
    { header: 'mesh', value: (r) => `${r.s.mesh.nodes}x${r.s.mesh.gpusPerNode}` },
    { header: 'dp x tp', value: (r) => `${r.s.dp} x ${r.s.tp}${r.s.sequenceParallel ? ' sp' : ''}` },
    { header: 'b', value: (r) => r.s.microBatchSize },
    { header: 'ckpt', value: (r) => r.s.ckptLayers },
    { header: 'zero', value: (r) => r.s.zero },
    { header: 'offload', value: (r) => offloadText(r.s) },
    { header: 'steady', value: (r) => formatSeconds(r.e.steadyTimeS), align: 'right' },
    { header: 'first', value: (r) => formatSeconds(r.e.firstTimeS), align: 'right' },
    { header: 'last', value: (r) => formatSeconds(r.e.lastTimeS), align: 'right' },
    { header: 'peak memory', value: (r) => `${formatBytes(r.e.peakMemoryBytes)} / ${formatBytes(r.e.capacityBytes)}`, align: 'right' },
    { header: 'host memory', value: (r) => `${formatBytes(r.e.hostMemoryBytes)} / ${formatBytes(r.e.hostCapacityBytes)}`, align: 'right' },
  ]);
}

function resultJson(r: TuneResult): Record<string, unknown> {
  return {
    space: r.space,
    plan: r.plan,
    predicted: r.predicted
      ? {
        iterationTimeS: r.predicted.iterationTimeS, tokensPerS: r.predicted.tokensPerS, mfu: r.predicted.mfu,
        allFit: r.predicted.allFit, stagePeakMemoryBytes: r.predicted.stages.map((s) => s.peakMemoryBytes),
        stageHostMemoryBytes: r.predicted.stages.map((s) => s.hostMemoryBytes),
      }
      : { iterationTimeS: null },
    tuningTimeS: r.tuningTimeS,
    candidatesEvaluated: r.candidatesEvaluated,
    noFit: r.noFit,
  };
}

export const tuneCommand: Command = {
  name: 'tune',
  summary: 'find the fastest plan that fits (Mist search) and compare it with Megatron-LM- and DeepSpeed-style plans',
  usage: 'mist tune --model NAME|FILE --cluster SHORTHAND|FILE --global-batch N --seq N [--profile FILE] [--target megatron|nemo|deepspeed|torchtitan|cpu] [--baseline PLAN] [--json] [--out plan.json] [--time-limit S] [--progress] [--no-cache] [--from PLAN] [ablation flags]',
  examples: [
    'mist tune --model gpt3-1.3b --cluster 1x2-l4 --global-batch 32 --seq 2048',
    'mist tune --model gpt3-6.7b --cluster 1x8-l4 --global-batch 128 --seq 2048 --out plan.json',
    'mist tune --model llama2-7b --cluster 1x8-a100-40gb --global-batch 128 --seq 4096 --json',
    'mist tune --model gpt3-1.3b --cluster 1x4-l4 --global-batch 64 --seq 2048 --no-offload --ckpt all-or-none',
    'mist tune --model gpt3-6.7b --cluster 1x8-l4 --global-batch 128 --seq 2048 --target megatron --out plan.json',
    'mist tune --model gpt3-1.3b --cluster 1x2-l4 --global-batch 32 --seq 2048 --baseline examples/plans/gpt3-1.3b-1x2-l4.json',
  ],
  options: {
    model: { type: 'string', valueName: 'NAME|FILE', description: 'model: a catalog name (see `mist models`), a model file or a Hugging Face config.json' },
    cluster: { type: 'string', valueName: 'SHORTHAND|FILE', description: 'cluster, e.g. 1x8-l4 or 2x8-a100-40gb (default: the profile\'s cluster)' },
    'global-batch': { type: 'string', valueName: 'N', description: 'sequences per iteration (b * dp * G)' },
    seq: { type: 'string', valueName: 'N', description: 'sequence length' },
    profile: { type: 'string', valueName: 'FILE', description: 'hardware profile from `mist profile` (default: the built-in datasheet profile)' },
    force: { type: 'boolean', description: 'use a --profile measured on another kind of machine' },
    'no-flash-attention': { type: 'boolean', description: 'model attention without flash attention (scores materialised)' },
    space: { type: 'string', valueName: 'NAME', description: `search space of the main search: ${SPACE_NAMES.join(', ')} (an engine name searches only what that engine can run)` },
    target: { type: 'string', valueName: 'ENGINE|BACKEND', description: `search only plans this engine can launch (${ENGINE_NAMES.join(', ')}; \`mist export --to ENGINE\` writes its configuration) or this executor backend runs (${BACKEND_NAMES.join(', ')}; fp32, as \`mist launch\` accepts)` },
    baseline: { type: 'string', valueName: 'PLAN', description: 'also predict this plan (e.g. from `mist import`) and report the speedup over it' },
    out: { type: 'string', valueName: 'FILE', description: 'write the best plan to FILE (JSON, accepted by `mist analyze --plan`)' },
    'max-stages': { type: 'string', valueName: 'N', description: 'ablation: at most N pipeline stages (1 = no pipelining)' },
    'uniform-partition': { type: 'boolean', description: 'ablation: every stage gets layers / pp layers' },
    'uniform-mesh': { type: 'boolean', description: 'ablation: every stage uses the same device mesh' },
    'max-tp': { type: 'string', valueName: 'N', description: 'ablation: tensor parallelism of at most N (1 = off)' },
    'no-sp': { type: 'boolean', description: 'ablation: no sequence parallelism' },
    'pow2-micro-batch': { type: 'boolean', description: 'ablation: micro-batch sizes over powers of two only' },
    ckpt: { type: 'string', valueName: 'MODE', description: 'ablation: activation checkpointing fine | all-or-none | none' },
    zero: { type: 'string', valueName: 'LIST', description: 'ablation: ZeRO levels to try, e.g. 0,1' },
    'offload-step': { type: 'string', valueName: 'X', description: 'offload ratio grid step (default 0.125)' },
    'no-offload': { type: 'boolean', description: 'ablation: no offloading' },
    'frontier-size': { type: 'string', valueName: 'K', description: 'Pareto points kept per stage frontier (default 30)' },
    solver: { type: 'string', valueName: 'dp|milp', description: 'inter-stage solver: exact bottleneck DP (default, faster) or the HiGHS MILP' },
    'time-limit': { type: 'string', valueName: 'S', description: 'stop the main search after S seconds and print the best plan so far with its proven gap' },
    progress: { type: 'boolean', description: 'print progress (candidates/s, ETA) on stderr even when it is not a terminal' },
    'no-cache': { type: 'boolean', description: 'do not read or write the frontier cache ($MIST_CACHE_DIR/tune, default ~/.cache/mist/tune)' },
    from: { type: 'string', valueName: 'PLAN', description: 'an earlier plan: tune the new setting and explain what changes per stage and why' },
    ...JSON_OPTION,
  },
  async run(values, _positionals, io) {
    const model = loadModel(requireString(values, 'model'));
    const globalBatch = intOpt(values, 'global-batch');
    if (globalBatch === undefined) throw new UsageError('--global-batch is required');
    const seqLen = intOpt(values, 'seq');
    if (seqLen === undefined) throw new UsageError('--seq is required');
    const profileFile = stringOpt(values, 'profile');
    const clusterRef = stringOpt(values, 'cluster');
    let profile: HardwareProfile;
    if (profileFile) {
      profile = loadHardwareProfile(profileFile);
      checkProfileMachine(profile, { force: values.force === true });
    }
    else if (clusterRef) profile = builtinHardwareProfile(loadCluster(clusterRef));
    else throw new UsageError('--cluster (or --profile) is required');
    if (profileFile && clusterRef) {
      const why = clusterMismatch(profile.cluster, loadCluster(clusterRef));
      if (why) {
        throw new UsageError(`--cluster ${clusterRef} is not the cluster of --profile ${profileFile} (${why}); ` +
          'give one of them, or profile that cluster');
      }
    }
    const training = trainingForTarget(values, model, parseTrainingSpec({ globalBatch, seqLen, flashAttention: values['no-flash-attention'] !== true }));
    const space = spaceFromFlags(values, model);
    // The cluster's own name (a shorthand in the catalog's spelling, e.g. 1x8-L4 -> 1x8-l4), so a plan reads back.
    const clusterName = profile.cluster.name;
    // Check where the plan goes before searching, not after.
    const outFile = stringOpt(values, 'out');
    if (outFile !== undefined) {
      const dir = path.dirname(path.resolve(outFile));
      if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UsageError(`--out ${outFile}: the folder ${dir} does not exist`);
    }
    const baselineFile = stringOpt(values, 'baseline');
    const baseline: ImportedBaseline | null = baselineFile ? estimateBaselinePlan(baselineFile, { model, training, profile }) : null;

    const timeLimitS = numberOpt(values, 'time-limit');
    if (timeLimitS !== undefined && !(timeLimitS > 0)) throw new UsageError(`--time-limit: got ${timeLimitS}; expected a positive number of seconds`);
    const fromFile = stringOpt(values, 'from');
    const fromPlan = fromFile ? loadFromPlan(fromFile) : null;
    const onProgress = tuneProgressPrinter(io, io.isTTY || values.progress === true);
    const stop = stopOnSignals(io);
    let cmp: Awaited<ReturnType<typeof tuneWithBaselines>>;
    try {
      cmp = await tuneWithBaselines({ model, training, profile }, {
        space, megatron: megatronSpace(), deepspeed: deepspeedSpace(), clusterName, onProgress,
        timeLimitS, signal: stop.signal, cacheDir: values['no-cache'] ? undefined : defaultCacheDir(),
      });
    } finally {
      stop.dispose();
    }
    const signalExit = stop.exitCode();
    const main = cmp.best;
    if (main.plan && outFile) fs.writeFileSync(outFile, JSON.stringify(main.plan, null, 2) + '\n');
    const baselineSpeedup = baseline && main.predicted ? baseline.estimate.iterationTimeS / main.predicted.iterationTimeS : null;
    if (values.json) {
      io.stdout(JSON.stringify({
        ...resultJson(main),
        tuningTimeS: main.tuningTimeS,
        totalTimeS: cmp.tuningTimeS,
        baselines: { megatron: resultJson(cmp.megatron), deepspeed: resultJson(cmp.deepspeed) },
        speedup: cmp.speedup,
        stoppedBy: main.stoppedBy ?? null,
        gap: main.gap ?? null,
        notes: main.notes ?? [],
        ...(baseline ? {
          baseline: {
            file: baseline.file, plan: baseline.plan, fits: baseline.estimate.allFit,
            predicted: { iterationTimeS: baseline.estimate.iterationTimeS, tokensPerS: baseline.estimate.tokensPerS, mfu: baseline.estimate.mfu },
            speedup: baselineSpeedup,
          },
        } : {}),
      }, null, 2) + '\n');
      return signalExit ?? (main.plan ? 0 : 1);
    }
    let text = `${model.name} on ${clusterName} (${profile.source}), seq ${seqLen}, global batch ${globalBatch}` +
      `${training.flashAttention ? '' : ', no flash attention'}\n`;
    if (main.plan && main.predicted) {
      const p = main.predicted;
      text += `\nBest plan (${main.space} space): ${main.plan.stages.length} stage${main.plan.stages.length > 1 ? 's' : ''}, ` +
        `G=${main.plan.gradAccumSteps}, iteration ${formatSeconds(p.iterationTimeS)}, ${formatCount(p.tokensPerS)} tokens/s, ` +
        `MFU ${(p.mfu * 100).toFixed(1)}%\n`;
      text += planTable(main.plan, p);
    } else if (main.noFit && !main.noFit.closest) {
      text += `\nNo plan of the ${main.space} space exists for this model, batch and cluster.\n`;
    } else {
      text += `\nNo plan of the ${main.space} space fits.\n`;
    }
    const rows = [main, cmp.megatron, cmp.deepspeed].map((r, i) => ({ r, label: i === 0 ? `${r.space} (best)` : r.space }));
    text += '\nComparison (same cost model):\n' + renderTable(rows, [
      { header: 'space', value: (x) => x.label },
      { header: 'iteration', value: (x) => (x.r.predicted ? formatSeconds(x.r.predicted.iterationTimeS) : 'nothing fits'), align: 'right' },
      { header: 'tokens/s', value: (x) => (x.r.predicted ? formatCount(x.r.predicted.tokensPerS) : '-'), align: 'right' },
      { header: 'MFU', value: (x) => (x.r.predicted ? `${(x.r.predicted.mfu * 100).toFixed(1)}%` : '-'), align: 'right' },
      { header: 'stages', value: (x) => (x.r.plan ? x.r.plan.stages.length : '-'), align: 'right' },
      {
        header: 'speedup of best', align: 'right',
        value: (x) => (x.r === main ? '1.00x' : (() => {
          const s = x.r === cmp.megatron ? cmp.speedup.megatron : cmp.speedup.deepspeed;
          return s === null ? '-' : `${s.toFixed(2)}x`;
        })()),
      },
      { header: 'tuning', value: (x) => `${x.r.tuningTimeS.toFixed(2)} s`, align: 'right' },
      { header: 'candidates', value: (x) => formatCount(x.r.candidatesEvaluated), align: 'right' },
    ]);
    if (baseline) {
      const b = baseline.estimate;
      text += `\nYour plan (${baseline.file}): iteration ${formatSeconds(b.iterationTimeS)}, ${formatCount(b.tokensPerS)} tokens/s, ` +
        `MFU ${(b.mfu * 100).toFixed(1)}%${b.allFit ? '' : ', does NOT fit in memory'}` +
        (baselineSpeedup === null ? '\n' : `; speedup of the best plan over it ${baselineSpeedup.toFixed(2)}x\n`);
    }
    for (const note of main.notes ?? []) text += `\nnote: ${note}\n`;
    const stopped = gapText(main);
    if (stopped) text += `\n${stopped}\n`;
    if (fromPlan) text += replanText(fromPlan, main, { model, training, profile }, clusterName);
    io.stdout(text);
    if (signalExit !== null) return signalExit;
    if (!main.plan) {
      const nf = main.noFit;
      io.stderr(`mist tune: ${nf ? nf.message : 'no plan fits'}\n`);
      for (const h of nf?.hints ?? []) io.stderr(`  - try ${h}\n`);
      return 1;
    }
    if (outFile) io.stderr(`plan written to ${outFile}\n`);
    return 0;
  },
};
