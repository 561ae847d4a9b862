// `mist tune`: the Mist search for the fastest plan that fits, beside the best Megatron-LM-style and
// DeepSpeed-style plans under the same cost model. Progress on stderr, a summary on stdout (or one
// JSON object with --json), the plan file with --out (accepted unchanged by `mist analyze`).
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  formatBytes, formatCount, formatSeconds, type HardwareProfile, loadCluster, checkProfileMachine, loadHardwareProfile, loadModel,
  parseTrainingSpec, type Plan,
} from '@mist/core';
import { clusterProfile, DATASHEET_OPTION, profileForCluster } from '../cli/cluster-profile';
import type { PlanEstimate } from '@mist/analyzer';
import {
  deepspeedSpace, defaultCacheDir, megatronSpace, SEARCH_KNOBS, type SearchKnobs, searchKnobsFromFlags, spaceFromKnobs, trainingForTarget,
  type TuneResult, tuneWithBaselines, type DimensionGain, dimensionGains, type DimensionUse, newDimensionsUsed,
} from '@mist/tuner';
import { clusterMismatch, estimateBaselinePlan, type ImportedBaseline } from './tune-checks';
import {
  type Command, enumOpt, gradReduceOverlapOpt, intOpt, JSON_OPTION, knobOption, NO_GRAD_REDUCE_OVERLAP_OPTION, type OptionSpec, requireString, stringOpt, UsageError,
} from '../cli/command';
import { gapText, loadFromPlan, replanText, stopOnSignals, tuneProgressPrinter } from './tune-progress';
import { renderTable } from '../cli/table';
import { reportTarget, TUNE_REPORT_OPTION, writeTuneReport } from './tune-report';
import { recomputeText, trainingFactsText } from '../cli/stage-text';

/** The knobs' flags (@mist/tuner SEARCH_KNOBS), as `mist tune` options: the job file and the Tuner service take the same knobs. */
const KNOB_OPTIONS: Record<string, OptionSpec> = Object.assign({}, ...SEARCH_KNOBS.map((k) => knobOption(k.key)));

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
    { header: 'dp x tp', value: (r) => `${r.s.dp} x ${r.s.tp}${(r.s.cp ?? 1) > 1 ? ` cp ${r.s.cp}` : ''}${(r.s.ep ?? 1) > 1 ? ` ep ${r.s.ep}` : ''}${r.s.sequenceParallel ? ' sp' : ''}` },
    { header: 'b', value: (r) => r.s.microBatchSize },
    { header: 'ckpt', value: (r) => recomputeText(r.s) },
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
    // Stage groups searched (or read from the cache); the others were proven useless by bounds.
    ...(r.groupsSearched !== undefined ? { groupsSearched: r.groupsSearched } : {}),
    noFit: r.noFit,
    ...(r.cache ? { cache: r.cache } : {}),
    ...(r.fp8 ? { fp8: r.fp8 } : {}),
  };
}

/** What the tune read from the tune cache (frontiers, bounds, earlier plans), or '' when nothing. */
function cacheText(r: TuneResult): string {
  const c = r.cache;
  if (!c || (c.hits === 0 && c.boundsHits === 0 && !c.carriedPlan)) return '';
  const parts: string[] = [];
  if (c.carriedPlan) parts.push('started from an earlier plan carried over to this batch');
  if (c.boundsHits > 0) parts.push(`${formatCount(c.boundsHits)} stage-group bounds`);
  if (c.gBoundsHits > 0) parts.push(`the bounds of ${c.gBoundsHits} G values (from an earlier tune's at a smaller G)`);
  if (c.hits > 0) parts.push(`${formatCount(c.hits)} stage-group frontiers`);
  return `cache: read from the tune cache: ${parts.join(', ')} (--no-cache tunes from scratch; the plan is the same either way)`;
}

/** The report line of the fp8 choice (`--fp8 auto`): whether the best plan uses fp8 and its gain over the best plan without it. */
function fp8Text(r: TuneResult): string {
  const f = r.fp8;
  if (!f) return '';
  if (f.skipped) return `fp8: not searched (${f.skipped})\n`;
  if (f.used === 'none') {
    const other = f.tried.find((x) => x.recipe !== 'none');
    return `fp8: the best plan does not use fp8 linear layers${other ? ` (the best with ${other.recipe} scaling: ${other.iterationTimeS === null ? 'nothing fits' : formatSeconds(other.iterationTimeS)})` : ''}\n`;
  }
  return `fp8: the best plan uses fp8 linear layers (${f.used} scaling)` +
    (f.gainOverNone === null ? ', no plan without fp8 fits\n' : `, ${f.gainOverNone.toFixed(2)}x faster than the best plan without fp8\n`);
}

/** Report lines of the newer dimensions the best plan uses, with each one's gain when it was measured. */
function dimensionsText(uses: DimensionUse[], gains: DimensionGain[] | null): string {
  if (uses.length === 0) return '';
  const names: Record<DimensionUse['dimension'], string> = {
    'context-parallel': 'context parallelism', interleaved: 'interleaved 1F1B', 'selective-recompute': 'selective recompute',
    'expert-parallel': 'expert parallelism',
  };
  let text = '';
  for (const u of uses) {
    const g = gains?.find((x) => x.dimension === u.dimension);
    const gain = !g ? '' : g.gain === null ? ': no plan fits without it' : `: ${g.gain.toFixed(3)}x faster than the best plan without it (${formatSeconds(g.withoutS!)})`;
    text += `uses ${names[u.dimension]} (${u.detail})${gain}\n`;
  }
  return text;
}

export const tuneCommand: Command = {
  name: 'tune',
  summary: 'find the fastest plan that fits (Mist search) and compare it with Megatron-LM- and DeepSpeed-style plans',
  usage: 'mist tune --model NAME|FILE --cluster SHORTHAND|FILE --global-batch N --seq N [--profile FILE] [--datasheet] [--dtype fp16|bf16] [--target megatron|nemo|deepspeed|torchtitan|cpu] [--tp-comm-overlap] [--overlap-param-gather] [--no-overlap-grad-reduce] [--baseline PLAN] [--json] [--out plan.json] [--time-limit S] [--progress] [--no-cache] [--no-gains] [--from PLAN] [ablation flags]',
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
    profile: { type: 'string', valueName: 'FILE', description: 'hardware profile from `mist profile` (default: the GPU\'s kept measured profile, mist profile --device cuda --save, else the built-in datasheet profile)' },
    force: { type: 'boolean', description: 'use a --profile measured on another kind of machine' },
    'no-flash-attention': { type: 'boolean', description: 'model attention without flash attention (scores materialised)' },
    dtype: {
      type: 'string', valueName: 'fp16|bf16',
      description: 'the weights\' and activations\' dtype (default fp16; the same bytes and peak either way, but --target megatron|nemo with bf16 keeps fp32 main gradients)',
    },
    'tp-comm-overlap': {
      type: 'boolean',
      description: 'cost the sequence-parallel TP collectives pipelined with their GEMMs (Megatron-Core --tp-comm-overlap; the cpu/cuda backends and engines other than megatron refuse it)',
    },
    'overlap-param-gather': {
      type: 'boolean',
      description: 'cost the ZeRO-1/2 parameter all-gather beside the next first forward (Megatron-Core --overlap-param-gather)',
    },
    ...NO_GRAD_REDUCE_OVERLAP_OPTION,
    ...DATASHEET_OPTION,
    baseline: { type: 'string', valueName: 'PLAN', description: 'also predict this plan (e.g. from `mist import`) and report the speedup over it' },
    out: { type: 'string', valueName: 'FILE', description: 'write the best plan to FILE (JSON, accepted by `mist analyze --plan`)' },
    ...TUNE_REPORT_OPTION,
    progress: { type: 'boolean', description: 'print progress (candidates/s, ETA) on stderr even when it is not a terminal' },
    'no-cache': { type: 'boolean', description: 'do not read or write the tune cache of frontiers, bounds and earlier plans ($MIST_CACHE_DIR/tune, default ~/.cache/mist/tune)' },
    from: { type: 'string', valueName: 'PLAN', description: 'an earlier plan: tune the new setting and explain what changes per stage and why' },
    'no-gains': {
      type: 'boolean',
      description: 'do not re-tune without each newer dimension the best plan uses (context parallelism, interleaving, selective recompute, expert parallelism) to report its gain',
    },
    ...KNOB_OPTIONS,
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
    const dtype = enumOpt(values, 'dtype', ['fp16', 'bf16'] as const, 'fp16');
    let profile: HardwareProfile;
    if (profileFile) {
      profile = loadHardwareProfile(profileFile);
      checkProfileMachine(profile, { force: values.force === true });
    }
    else if (clusterRef) {
      profile = clusterProfile(loadCluster(clusterRef), dtype, { datasheet: values.datasheet === true, target: stringOpt(values, 'target') }, io.stderr);
    }
    else throw new UsageError('--cluster (or --profile) is required');
    if (profileFile && clusterRef) {
      // A profile of the same GPU describes every host of that kind: it is carried to the cluster's shape.
      const given = loadCluster(clusterRef);
      profile = profileForCluster(profile, given, profileFile, io.stderr);
      const why = clusterMismatch(profile.cluster, given);
      if (why) throw new UsageError(`--cluster ${clusterRef} is not the cluster of --profile ${profileFile} (${why}); give one of them, or profile that GPU`);
    }
    const knobs = searchKnobsFromFlags(values);
    const training = trainingForTarget(knobs, model, parseTrainingSpec({
      globalBatch, seqLen, paramDtype: dtype, computeDtype: dtype, flashAttention: values['no-flash-attention'] !== true,
      tpCommOverlap: values['tp-comm-overlap'] === true, paramGatherOverlap: values['overlap-param-gather'] === true, ...gradReduceOverlapOpt(values),
    }), profile.cluster.gpu.name);
    const space = spaceFromKnobs(knobs, model, training);
    // The cluster's own name (a shorthand in the catalog's spelling, e.g. 1x8-L4 -> 1x8-l4), so a plan reads back.
    const clusterName = profile.cluster.name;
    // Check where the plan goes before searching, not after.
    const outFile = stringOpt(values, 'out');
    if (outFile !== undefined) {
      const dir = path.dirname(path.resolve(outFile));
      if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UsageError(`--out ${outFile}: the folder ${dir} does not exist`);
    }
    const reportFile = reportTarget(values);
    const baselineFile = stringOpt(values, 'baseline');
    const baseline: ImportedBaseline | null = baselineFile ? estimateBaselinePlan(baselineFile, { model, training, profile }) : null;

    const timeLimitS = knobs.timeLimit;
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
    if (reportFile) {
      writeTuneReport(reportFile, cmp, { title: `mist tune: ${model.name} on ${clusterName}, seq ${seqLen}, global batch ${globalBatch}`, values, baseline });
      io.stderr(`report written to ${reportFile}\n`);
    }
    const baselineSpeedup = baseline && main.predicted ? baseline.estimate.iterationTimeS / main.predicted.iterationTimeS : null;
    // The newer dimensions the best plan uses, and (unless --no-gains, or the search stopped early) the
    // best plan of the same space without each one.
    const uses = main.plan ? newDimensionsUsed(main.plan) : [];
    const gains = uses.length > 0 && values['no-gains'] !== true && signalExit === null && !main.stoppedBy
      ? await dimensionGains({ model, training, profile }, main, { space, clusterName, cacheDir: values['no-cache'] ? undefined : defaultCacheDir(), timeLimitS })
      : null;
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
        dimensions: uses.map((u) => {
          const g = gains?.find((x) => x.dimension === u.dimension);
          return { ...u, withoutS: g ? g.withoutS : null, gain: g ? g.gain : null };
        }),
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
      `${training.flashAttention ? '' : ', no flash attention'}` +
      `${training.tpCommOverlap ? ', TP communication overlapped' : ''}${training.paramGatherOverlap ? ', parameter all-gather overlapped' : ''}` +
      `${trainingFactsText(training)}\n`;
    if (main.plan && main.predicted) {
      const p = main.predicted;
      text += `\nBest plan (${main.space} space): ${main.plan.stages.length} stage${main.plan.stages.length > 1 ? 's' : ''}, ` +
        `G=${main.plan.gradAccumSteps}${(main.plan.virtualStages ?? 1) > 1 ? `, ${main.plan.virtualStages} model chunks per rank (interleaved)` : ''}, iteration ${formatSeconds(p.iterationTimeS)}, ${formatCount(p.tokensPerS)} tokens/s, ` +
        `MFU ${(p.mfu * 100).toFixed(1)}%\n`;
      text += planTable(main.plan, p);
      text += fp8Text(main);
      text += dimensionsText(uses, gains);
    } else if (main.noFit && !main.noFit.closest) {
      text += `\nNo plan of the ${main.space} space exists for this model, batch and cluster.\n`;
    } else {
      text += `\nNo plan of the ${main.space} space fits.\n`;
    }
    const rows = [main, cmp.megatron, cmp.deepspeed].map((r, i) => ({ r, label: i === 0 ? `${r.space} (best)` : r.space }));
    text += '\nComparison (same cost model):\n' + renderTable(rows, [
      { header: 'space', value: (x) => x.label },
      // A baseline engine that cannot run the model at all (a note says why) is not "nothing fits".
      { header: 'iteration', value: (x) => (x.r.predicted ? formatSeconds(x.r.predicted.iterationTimeS) : x.r.noFit ? 'nothing fits' : 'no plan'), align: 'right' },
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
    const reused = cacheText(main);
    if (reused) text += `\n${reused}\n`;
    for (const note of main.notes ?? []) text += `\nnote: ${note}\n`;
    for (const r of [cmp.megatron, cmp.deepspeed]) if (r !== main) for (const note of r.notes ?? []) text += `\nnote (${r.space}): ${note}\n`;
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
