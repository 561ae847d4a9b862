// `mist analyze --plan plan.json`: the analyzer's estimate of one plan — iteration time, tokens/s,
// MFU, and per stage the time and memory breakdown (device and host) and whether it fits: a stage
// fits when its device peak fits the GPU and its offloaded bytes fit the GPU's share of the node's
// host memory. A plan that does not fit is reported with the reason (exit 0); a plan that breaks
// the rules is an invalid spec (exit 2).
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  checkProfileMachine, type ClusterSpec, engineOverlapsGradReduce, formatBytes, formatCount, formatSeconds, type HardwareProfile,
  isEngineName, loadCluster, loadHardwareProfile, loadModel, parseTrainingSpec, type Plan, readSpecFile, type TrainingSpec,
} from '@mist/core';
import { clusterProfile, DATASHEET_OPTION, profileForCluster } from '../cli/cluster-profile';
import { searchKnobsFromFlags, trainingForTarget } from '@mist/tuner';
import { type Analysis, type AnalysisStage, analyzePlan } from '@mist/analyzer';
import { planPictureHtml, planPictureSvg } from '@mist/viz';
import {
  ATTENTION_KERNEL_OPTION, attentionKernelOpt, type Command, COMPILE_OPTION, compiledCrossEntropy, CROSS_ENTROPY_OPTION, crossEntropyOpt, FP8_PARAM_GATHER_OPTION, fp8ParamGatherOpt, GRAD_ACCUM_OPTION, gradAccumOpt, gradReduceOverlapOpt, intOpt, JSON_OPTION, NO_GRAD_REDUCE_OVERLAP_OPTION,
  stringOpt, UsageError,
} from '../cli/command';
import { planArgument } from '../cli/plan-argument';
import { renderTable } from '../cli/table';
import { retargetPlan } from './plan-retarget';
import { recomputeText, trainingFactsText } from '../cli/stage-text';

interface PlanDoc {
  model?: unknown;
  cluster?: unknown;
  seqLen?: unknown;
  globalBatch?: unknown;
  stages?: unknown;
}

/** The ZeRO levels of a plan document's stages (0 where absent or not a number; the plan's own check names bad ones). */
function stageZeros(doc: PlanDoc): number[] {
  if (!Array.isArray(doc.stages)) return [];
  return doc.stages.map((st: unknown) => {
    const z = st && typeof st === 'object' ? (st as { zero?: unknown }).zero : undefined;
    return typeof z === 'number' ? z : 0;
  });
}

/** The cluster a plan document names, when that name is a catalog shorthand or cluster file; else null. */
function planCluster(doc: PlanDoc): ClusterSpec | null {
  if (typeof doc.cluster !== 'string') return null;
  try {
    return loadCluster(doc.cluster);
  } catch {
    return null;
  }
}

/** Exit code of `mist analyze` for a valid plan some stage of which does not fit (2 is a bad plan or flag). */
export const EXIT_DOES_NOT_FIT = 3;

/** Device memory left under the capacity (negative: over it). */
function marginText(s: AnalysisStage): string {
  const left = s.capacityBytes - s.peakMemoryBytes;
  return `${left < 0 ? '-' : ''}${formatBytes(Math.abs(left))} (${((100 * left) / s.capacityBytes).toFixed(1)}%)`;
}

/** What takes the most of the stage's device peak: the largest of its parts. */
function largestPart(s: AnalysisStage): string {
  const parts: Array<[string, number]> = [
    ['weights', s.memory.weights], ['grads', s.memory.grads], ['optim', s.memory.optim],
    ['activations', s.memory.activations], ['transient', s.memory.transient],
  ];
  const [name, bytes] = parts.reduce((a, b) => (b[1] > a[1] ? b : a));
  return `${name} ${((100 * bytes) / Math.max(1, s.peakMemoryBytes)).toFixed(0)}%`;
}

function fitText(s: AnalysisStage): string {
  if (s.fits) return 'yes';
  const over: string[] = [];
  if (!s.deviceFits) over.push(`${formatBytes(s.overflowBytes)} on the device`);
  if (!s.hostFits) over.push(`${formatBytes(s.hostOverflowBytes)} on the host`);
  return `no, over by ${over.join(' and ')}`;
}

/** Which memory a stage overflows: device, host or both. */
function overflowWhere(s: AnalysisStage): string {
  if (!s.deviceFits && !s.hostFits) return 'device and host memory';
  return s.deviceFits ? 'host memory' : 'device memory';
}

function summary(est: Analysis, plan: Plan, changes: string[], training: TrainingSpec): string {
  return [
    `${est.model} on ${est.cluster} (${est.profile}), seq ${plan.seqLen}, global batch ${plan.globalBatch}, ` +
      `${plan.stages.length} stage${plan.stages.length > 1 ? 's' : ''}, ${est.devices} GPUs, G=${plan.gradAccumSteps}` +
      `${(plan.virtualStages ?? 1) > 1 ? `, interleaved 1F1B with ${plan.virtualStages} model chunks per stage` : ''}` +
      `${est.flashAttention ? '' : ', no flash attention'}` +
      `${training.tpCommOverlap ? ', TP communication overlapped' : ''}${training.paramGatherOverlap ? ', parameter all-gather overlapped' : ''}` +
      `${trainingFactsText(training)}` +
      (changes.length > 0 ? `\nre-targeted from the plan file: ${changes.join(', ')}` : ''),
    `iteration ${formatSeconds(est.iterationTimeS)} (first ${formatSeconds(est.breakdown.firstS)} + ` +
      `${Number(((plan.gradAccumSteps * (plan.virtualStages ?? 1) - 1) / (plan.virtualStages ?? 1)).toFixed(3))} x ` +
      `${formatSeconds(est.stages[est.bottleneckStage].steadyTimeS)} steady of bottleneck stage ${est.bottleneckStage} + ` +
      `end of step ${formatSeconds(est.breakdown.lastS)}${plan.stages.length > 1 ? ' (the largest stage\'s: the stages run theirs at once)' : ''}` +
      (est.breakdown.jitterS > 0 ? ` + ${formatSeconds(est.breakdown.jitterS)} waiting for the slowest rank's step noise` : '') + '), ' +
      `${formatCount(est.tokensPerS)} tokens/s, MFU ${(est.mfu * 100).toFixed(1)}%, ` +
      (est.allFit ? 'every stage fits' : (() => {
        const bad = est.stages.filter((s) => !s.fits);
        return `${bad.length} stage(s) do NOT fit (${bad.map((s) => `stage ${s.index}: ${overflowWhere(s)}`).join(', ')})`;
      })()),
  ].join('\n') + '\n';
}

/** --timeline FILE: an .svg or .html file in a folder that exists (checked before the analysis). */
function timelineTarget(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  if (!/\.(svg|html?)$/i.test(file)) throw new UsageError(`--timeline ${file}: the file name must end in .svg or .html`);
  const dir = path.dirname(path.resolve(file));
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UsageError(`--timeline ${file}: the folder ${dir} does not exist`);
  return file;
}

export const analyzeCommand: Command = {
  name: 'analyze',
  summary: 'estimate a plan: iteration time, tokens/s, MFU, per-stage time and memory breakdown, fit',
  usage: 'mist analyze PLAN.json|--plan PLAN.json [--model NAME|FILE] [--cluster SHORTHAND|FILE] [--profile PROFILE.json [--force]] [--datasheet] ' +
    '[--seq N] [--global-batch N] [--no-flash-attention] [--attention-kernel K] [--tp-comm-overlap] [--overlap-param-gather] [--no-overlap-grad-reduce] [--cross-entropy MODE] ' +
    '[--grad-accum-dtype param|fp32] [--fp8-param-gather] [--compile] [--target ENGINE|BACKEND] [--json] [--explain] [--timeline OUT.svg|OUT.html]',
  examples: [
    'mist analyze examples/plans/gpt3-1.3b-1x2-l4.json',
    'mist analyze --model gpt3-1.3b --cluster 1x2-l4 --plan examples/plans/gpt3-1.3b-1x2-l4.json --json',
    'mist analyze examples/plans/gpt3-1.3b-1x2-l4.json --global-batch 64 --seq 1024',
    'mist analyze --plan examples/plans/gpt3-175b-megatron.json --explain',
    'mist analyze --plan examples/plans/gpt-tiny-2-stages.json --cluster 1x4-l4 --timeline timeline.html',
  ],
  options: {
    plan: { type: 'string', valueName: 'FILE', description: 'the plan to estimate (JSON or YAML; or give it as the argument)' },
    model: { type: 'string', valueName: 'NAME|FILE', description: 'model (default: the plan\'s "model")' },
    cluster: { type: 'string', valueName: 'SHORTHAND|FILE', description: 'cluster, e.g. 1x8-l4 (default: the plan\'s "cluster" or the profile\'s)' },
    profile: { type: 'string', valueName: 'FILE', description: 'hardware profile from `mist profile` (default: the GPU\'s kept measured profile, mist profile --device cuda --save, else the built-in datasheet profile)' },
    force: { type: 'boolean', description: 'use a --profile measured on another kind of machine' },
    seq: { type: 'string', valueName: 'N', description: 'estimate the plan at this sequence length instead of its seqLen' },
    'global-batch': {
      type: 'string', valueName: 'N',
      description: 'estimate the plan at this global batch: gradAccumSteps becomes N / (microBatchSize * dp), which must be whole',
    },
    'no-flash-attention': { type: 'boolean', description: 'model attention without flash attention (scores materialised), whatever the plan says' },
    'tp-comm-overlap': {
      type: 'boolean',
      description: 'as Megatron-Core\'s --tp-comm-overlap: the sequence-parallel TP collectives pipelined with their GEMMs (stages with sp and tp > 1)',
    },
    'overlap-param-gather': {
      type: 'boolean',
      description: 'as Megatron-Core\'s --overlap-param-gather: the ZeRO-1/2 parameter all-gather beside the next step\'s first forward',
    },
    ...NO_GRAD_REDUCE_OVERLAP_OPTION,
    ...ATTENTION_KERNEL_OPTION,
    ...CROSS_ENTROPY_OPTION,
    ...GRAD_ACCUM_OPTION,
    ...FP8_PARAM_GATHER_OPTION,
    ...COMPILE_OPTION,
    ...DATASHEET_OPTION,
    target: {
      type: 'string', valueName: 'ENGINE|BACKEND',
      description: 'cost the plan as this engine runs it (megatron, nemo, deepspeed, torchtitan: its loss, norm and activation kernels, ' +
        'sequence-parallel inputs and gradient dtype, as mist tune --target does) or this executor backend (cpu, cuda)',
    },
    explain: { type: 'boolean', description: 'print the simplified time and memory formulas of every stage' },
    timeline: {
      type: 'string', valueName: 'FILE',
      description: 'draw one iteration of the 1F1B schedule (predicted durations, bubbles) beside per-stage memory: FILE.svg or FILE.html',
    },
    ...JSON_OPTION,
  },
  positionals: { min: 0, max: 1, names: 'one plan file (or --plan FILE)' },
  async run(values, positionals, io) {
    const planFile = planArgument(values, positionals);
    const original = readSpecFile(planFile);
    const { doc: data, changes } = retargetPlan(original, {
      seq: intOpt(values, 'seq'),
      globalBatch: intOpt(values, 'global-batch'),
      flashAttention: values['no-flash-attention'] === true ? false : undefined,
    });
    const doc = (data && typeof data === 'object' ? data : {}) as PlanDoc;
    const modelRef = stringOpt(values, 'model') ?? (typeof doc.model === 'string' ? doc.model : undefined);
    if (!modelRef) throw new UsageError('--model is required when the plan names no model');
    const model = loadModel(modelRef);
    const profileFile = stringOpt(values, 'profile');
    const clusterRef = stringOpt(values, 'cluster') ?? (typeof doc.cluster === 'string' ? doc.cluster : undefined);
    let profile: HardwareProfile;
    if (profileFile) {
      profile = loadHardwareProfile(profileFile);
      checkProfileMachine(profile, { force: values.force === true });
      // A profile of the plan's GPU on another shape of cluster is carried to the plan's (or --cluster's).
      // A plan's cluster name that names no catalog cluster (e.g. a measured CPU profile's) leaves the profile as it is.
      const explicit = stringOpt(values, 'cluster');
      const given = explicit !== undefined ? loadCluster(explicit) : planCluster(doc);
      if (given) profile = profileForCluster(profile, given, profileFile, io.stderr);
    } else {
      if (!clusterRef) throw new UsageError('--cluster is required when the plan names no cluster and no --profile is given');
      profile = clusterProfile(loadCluster(clusterRef), 'fp16', { datasheet: values.datasheet === true, target: stringOpt(values, 'target') }, io.stderr);
    }
    const timelineFile = timelineTarget(stringOpt(values, 'timeline'));
    const overlaps = { tpCommOverlap: values['tp-comm-overlap'] === true, paramGatherOverlap: values['overlap-param-gather'] === true };
    const crossEntropy = compiledCrossEntropy(values, crossEntropyOpt(values));
    const gradAccumDtype = gradAccumOpt(values);
    const flashAttentionKernel = attentionKernelOpt(values);
    const asked = {
      ...overlaps, ...gradReduceOverlapOpt(values), ...(crossEntropy ? { crossEntropy } : {}), ...(gradAccumDtype ? { gradAccumDtype } : {}),
      ...(flashAttentionKernel ? { flashAttentionKernel } : {}), ...fp8ParamGatherOpt(values),
    };
    // --target: the training facts the engine or backend fixes, as mist tune --target costs them (search-knobs.ts).
    const target = stringOpt(values, 'target');
    const engineTraining = target === undefined ? asked : (() => {
      const knobs = searchKnobsFromFlags({ target, 'cross-entropy': crossEntropy, 'grad-accum-dtype': gradAccumDtype, compile: values.compile });
      const t = trainingForTarget(knobs, model, parseTrainingSpec({ globalBatch: 1, seqLen: 1, ...asked }), profile.cluster.gpu.name);
      // An engine that reduces some stage's ZeRO level after the backward (DeepSpeed's ZeRO-0) runs it so.
      const reducedAfter = isEngineName(target) && stageZeros(doc).some((z) => !engineOverlapsGradReduce(target, z));
      // Every fact the target fixes (the batch and sequence come from the plan).
      const { globalBatch: _batch, seqLen: _seq, ...facts } = t;
      return { ...facts, gradReduceOverlap: t.gradReduceOverlap && !reducedAfter };
    })();
    const { analysis: est, plan, training } = analyzePlan({ model, plan: data, profile, training: engineTraining, explain: values.explain === true });
    if (timelineFile) {
      const title = `${est.model} on ${est.cluster}: ${plan.stages.length}-stage plan, G=${plan.gradAccumSteps} (${path.basename(planFile)})`;
      fs.writeFileSync(timelineFile, timelineFile.toLowerCase().endsWith('.svg') ? planPictureSvg(plan, est, { title }) : planPictureHtml(plan, est, { title }));
      io.stderr(`timeline written to ${timelineFile}\n`);
    }
    // A pre-flight: a plan that does not fit exits with its own code, so scripts can stop before launch.
    const exitCode = est.allFit ? 0 : EXIT_DOES_NOT_FIT;
    if (values.json) {
      const overlapped = overlaps.tpCommOverlap || overlaps.paramGatherOverlap ? { overlaps } : {};
      io.stdout(JSON.stringify({
        plan: planFile, ...(changes.length > 0 ? { retargeted: changes } : {}), ...overlapped, ...(target ? { target } : {}),
        ...(training.crossEntropy !== 'fused' ? { crossEntropy: training.crossEntropy } : {}),
        ...(training.gradAccumDtype !== 'param' ? { gradAccumDtype: training.gradAccumDtype } : {}),
        ...(training.flashAttentionKernel !== 'flash2' ? { flashAttentionKernel: training.flashAttentionKernel } : {}),
        ...(training.fp8ParamGather ? { fp8ParamGather: true } : {}),
        ...(training.gradReduceOverlap ? {} : { gradReduceOverlap: false }), ...est,
      }, null, 2) + '\n');
      return exitCode;
    }

    const rows = est.stages;
    const t = (f: (s: AnalysisStage) => number) => (s: AnalysisStage) => formatSeconds(f(s));
    const m = (f: (s: AnalysisStage) => number) => (s: AnalysisStage) => formatBytes(f(s));
    let text = summary(est, plan, changes, training) + '\nTime per stage (steady/first per micro-batch; last = extra after the last one):\n';
    text += renderTable(rows, [
      { header: 'stage', value: (s) => s.index },
      { header: 'layers', value: (s) => `${s.layers[0]}-${s.layers[1]}` },
      { header: 'dp x tp', value: (s) => `${plan.stages[s.index].dp} x ${plan.stages[s.index].tp}${(plan.stages[s.index].cp ?? 1) > 1 ? ` cp ${plan.stages[s.index].cp}` : ''}${(plan.stages[s.index].ep ?? 1) > 1 ? ` ep ${plan.stages[s.index].ep}` : ''}${plan.stages[s.index].sequenceParallel ? ' sp' : ''}` },
      { header: 'b', value: (s) => plan.stages[s.index].microBatchSize },
      { header: 'ckpt', value: (s) => recomputeText(plan.stages[s.index]) },
      { header: 'zero', value: (s) => plan.stages[s.index].zero },
      { header: 'steady', value: t((s) => s.steadyTimeS), align: 'right' },
      { header: 'first', value: t((s) => s.firstTimeS), align: 'right' },
      { header: 'last', value: t((s) => s.lastTimeS), align: 'right' },
      { header: 'fwd', value: t((s) => s.time.forward), align: 'right' },
      { header: 'bwd', value: t((s) => s.time.backward), align: 'right' },
      { header: 'recomp', value: t((s) => s.time.recompute), align: 'right' },
      { header: 'tp comm', value: t((s) => s.time.tpComm), align: 'right' },
      { header: 'pp comm', value: t((s) => s.time.ppComm), align: 'right' },
      { header: 'dp comm/it', value: t((s) => s.time.dpComm), align: 'right' },
      { header: 'offload/it', value: t((s) => s.time.offload), align: 'right' },
      { header: 'optim', value: t((s) => s.time.optimizer), align: 'right' },
    ]);
    text += '\nMemory per stage (per GPU; host = offloaded states and activations in the GPU\'s share of its node\'s host memory):\n';
    text += renderTable(rows, [
      { header: 'stage', value: (s) => s.index },
      { header: 'weights', value: m((s) => s.memory.weights), align: 'right' },
      { header: 'grads', value: m((s) => s.memory.grads), align: 'right' },
      { header: 'optim', value: m((s) => s.memory.optim), align: 'right' },
      { header: 'activations', value: m((s) => s.memory.activations), align: 'right' },
      { header: 'transient', value: m((s) => s.memory.transient), align: 'right' },
      { header: 'peak fwd', value: m((s) => s.memory.peakForward), align: 'right' },
      { header: 'peak bwd', value: m((s) => s.memory.peakBackward), align: 'right' },
      { header: 'peak', value: m((s) => s.peakMemoryBytes), align: 'right' },
      { header: 'capacity', value: m((s) => s.capacityBytes), align: 'right' },
      { header: 'host', value: m((s) => s.hostMemoryBytes), align: 'right' },
      { header: 'host capacity', value: m((s) => s.hostCapacityBytes), align: 'right' },
      { header: 'margin', value: (s) => marginText(s), align: 'right' },
      { header: 'largest', value: largestPart },
      { header: 'fits', value: fitText },
    ]);
    for (const s of est.stages) {
      if (!s.explain) continue;
      text += `\nStage ${s.index} formulas (L = layers ${s.layers[1] - s.layers[0] + 1}, b = micro-batch ${s.strategy.microBatchSize}, ` +
        `ckpt = checkpointed layers ${s.strategy.ckptLayers}; seconds and bytes):\n${s.explain.time}\n${s.explain.memory}\n`;
    }
    io.stdout(text);
    if (exitCode !== 0) io.stderr(`mist analyze: the plan does not fit (exit ${EXIT_DOES_NOT_FIT}); see the fits column\n`);
    return exitCode;
  },
};
