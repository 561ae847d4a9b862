#!/usr/bin/env node
// Published measured runs: every row of published-runs.json is a training run whose
// speed (and, where published, per-GPU memory) a paper or a repository README reports as measured.
// Each row is written as a Mist plan (uniform stages, tp/pp/dp, micro-batch and recompute as the
// source ran them), predicted by the analyzer (@mist/analyzer estimatePlan) with the built-in
// datasheet profile of its GPU and dtype, and compared with the measurement. Prints a table per row
// and the issue's figures: median |error| of the iteration time, the share of runs within 10%, per
// source and overall, the memory figures where a source publishes memory, and whether the targets
// are met. Nothing here is fitted to these rows: they are a held-out check of the cost model.
//
// A row may publish memory only (no "measured", with "timeNotCompared" saying why); its memory is
// read as its source reads it ("measuredMemory.kind": allocated, reserved or process) from the
// analyzer's per-stage deviceMemory. A row may run a variant of a catalog GPU ("gpuOverrides"), and
// may state Megatron-Core's communication overlaps its source ran with ("tpCommOverlap" for
// --tp-comm-overlap, "paramGatherOverlap" for --overlap-param-gather: the training spec's fields),
// and how its loss reads the logits ("crossEntropy": fused by default, "fp32-logits" where the loss
// runs on an fp32 copy of them, as torchtitan's does, "compute-dtype" where it runs on the fp16
// logits themselves, Megatron-LM's --fp16-lm-cross-entropy), and whether the norms, RoPE and SwiGLU ran as
// separate eager ops ("elementwise": "eager", torchtitan's model code without torch.compile), and what
// its sequence-parallel linears kept of their all-gathered inputs ("sequenceParallelInput": "gathered"
// for PyTorch's DTensor tensor parallelism, torchtitan's; "sharded" by default, Megatron-LM's), and the
// dtype its gradients accumulated in ("gradAccumDtype": "fp32" for Megatron-LM's bf16 default, "param" by
// default), and whether its data-parallel gradient reduction ran after the backward, exposed
// ("gradReduceOverlap": false for Megatron-LM's legacy --DDP-impl local; true by default).
//
//   node tools/validate/published-runs.js [--json] [--source NAME] [--breakdown]
//
// Exit 0 when every target is met, 1 when some target is not (the figures are printed either way),
// 2 for a bad data file or option.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { HELP_OPTION, parseOptions } = require('./options');

// Runs from the TypeScript sources, so the check always sees the analyzer of this checkout.
require('../scripts/ts-register');
const core = require('@mist/core');
const { estimatePlan } = require('@mist/analyzer');

// The targets: iteration time median |error| <= 5% with >= 75% of runs within
// 10%; per-GPU peak memory median |error| <= 10% and never under-predicting by more than 5%.
const TARGETS = { timeMedian: 0.05, timeShareWithin: 0.75, timeWithin: 0.1, memoryMedian: 0.1, memoryUnderMax: 0.05, mistL4Memory: 0.03 };
/** The source of Mist's own measured L4 runs (the issue's "Mist's L4 memory within 3%"). */
const MIST_L4_SOURCE = 'mist2025';

const MEMORY_KINDS = ['allocated', 'reserved', 'process'];

const USAGE = `usage: node tools/validate/published-runs.js [--json] [--source NAME] [--breakdown]   (npm run validate)

Predicts every published measured run of tools/validate/published-runs.json with the analyzer and the
built-in profile of its GPU, and prints the time and memory errors per run and per source, and whether
the targets are met (exit 0 when all are, 1 when some are not, 2 for a bad option or data file).
  --json        one JSON document instead of the tables
  --source NAME only the runs of one source (e.g. narayanan2021, llmfoundry, torchtitan, mist2025)
  --breakdown   also the bottleneck stage's time parts per run
example: npm run validate -- --source torchtitan --breakdown`;

const values = parseOptions('published-runs', USAGE,
  () => parseArgs({ options: { json: { type: 'boolean' }, source: { type: 'string' }, breakdown: { type: 'boolean' }, ...HELP_OPTION } }));
const dataFile = path.join(__dirname, 'published-runs.json');
const data = JSON.parse(fs.readFileSync(dataFile, 'utf8'));

/** @param {string} message @returns {never} */
function bad(message) {
  console.error(`published-runs: ${message}`);
  process.exit(2);
}

/**
 * The measured iteration time of a row, in seconds, from the figure as published and the formula its
 * source states (published-runs.json "sources.*.formula").
 */
function measuredIterationS(row, model) {
  const B = row.globalBatch, s = row.seqLen, l = model.layers, h = model.hidden, V = model.vocab, N = row.gpus;
  const m = row.measured;
  switch (m.kind) {
    case 'iterationS':
      return m.value;
    case 'tokensPerSecPerGpu':
      return (B * s) / (N * m.value);
    case 'tflopsPerGpu': {
      // Narayanan et al. 2021, Eq. 3: FLOPs of one iteration with activation recomputation; or the
      // model FLOPs without recompute (Korthikanti et al. 2022, Sec. 6.3; Megatron-LM's
      // num_floating_point_operations for a GPT with MHA and a 4h GeLU MLP).
      const F = m.flopsFormula === 'narayanan2021-eq3' ? 96 * B * s * l * h * h * (1 + s / (6 * h) + V / (16 * l * h))
        : m.flopsFormula === 'korthikanti2022-model' ? 72 * B * s * l * h * h * (1 + s / (6 * h) + V / (12 * l * h))
          : bad(`${row.id}: flopsFormula must be narayanan2021-eq3 or korthikanti2022-model (got ${m.flopsFormula})`);
      return F / (N * m.value * 1e12);
    }
    case 'mfu': {
      // Korthikanti et al. 2022, Sec. 6.3: model FLOPs of one iteration (no recompute).
      if (m.flopsFormula !== 'korthikanti2022-model') bad(`${row.id}: unknown flopsFormula ${m.flopsFormula}`);
      const F = 72 * B * s * l * h * h * (1 + s / (6 * h) + V / (12 * l * h));
      return F / (N * m.value * m.peakTflops * 1e12);
    }
    default:
      return bad(`${row.id}: measured.kind must be iterationS, tokensPerSecPerGpu, tflopsPerGpu or mfu (got ${m.kind})`);
  }
}

/** The Mist plan of a row: pp uniform stages of dp x tp GPUs each. */
function planOf(row, model) {
  const { tp, pp, gpus, gpusPerNode } = row;
  if (gpus % (tp * pp) !== 0) bad(`${row.id}: gpus ${gpus} is not a multiple of tp * pp = ${tp * pp}`);
  const dp = gpus / (tp * pp);
  if (model.layers % pp !== 0) bad(`${row.id}: pp ${pp} does not divide the ${model.layers} layers`);
  const perStage = model.layers / pp;
  if (row.globalBatch % (row.microBatch * dp) !== 0) bad(`${row.id}: globalBatch is not a multiple of microBatch * dp`);
  const devices = dp * tp;
  const mesh = devices <= gpusPerNode ? { nodes: 1, gpusPerNode: devices } : { nodes: devices / gpusPerNode, gpusPerNode };
  if (!Number.isInteger(mesh.nodes)) bad(`${row.id}: a stage's ${devices} GPUs are not whole nodes of ${gpusPerNode}`);
  // Selective recompute (Korthikanti et al. 2022, Sec. 4.2) is the plan's selectiveRecompute: the
  // attention core (scores, softmax, dropout, attention over V) is not kept but recomputed in backward.
  // torchtitan's per-op selective checkpointing ("selective-op") is the plan's opRecompute (core's
  // opCheckpointSet: every other GEMM's output and the attention kernel's kept, the rest recomputed).
  // "per-stage": the checkpointed layers of each stage as the source's plan gives them (ckptLayersPerStage).
  if (!['none', 'full', 'selective', 'selective-op', 'per-stage'].includes(row.recompute)) {
    bad(`${row.id}: recompute must be none, full, selective, selective-op or per-stage (got ${row.recompute})`);
  }
  const perStageCkpt = row.ckptLayersPerStage;
  if ((row.recompute === 'per-stage') !== Array.isArray(perStageCkpt) ||
    (Array.isArray(perStageCkpt) && (perStageCkpt.length !== pp || perStageCkpt.some((c) => !Number.isInteger(c) || c < 0 || c > perStage)))) {
    bad(`${row.id}: recompute "per-stage" needs ckptLayersPerStage, ${pp} counts of 0 to ${perStage} layers (and only it has one)`);
  }
  const flashAttention = row.flashAttention === true;
  // Megatron-LM's --num-layers-per-virtual-pipeline-stage: v = (layers per stage) / that many chunks per rank.
  const perChunk = row.interleavedLayersPerVirtualStage;
  if (perChunk !== undefined && !(Number.isInteger(perChunk) && perChunk >= 1 && perStage % perChunk === 0)) {
    bad(`${row.id}: interleavedLayersPerVirtualStage must be a positive divisor of the ${perStage} layers per stage (got ${perChunk})`);
  }
  const virtualStages = perChunk === undefined ? undefined : perStage / perChunk;
  return {
    version: core.PLAN_VERSION,
    model: model.name,
    seqLen: row.seqLen,
    globalBatch: row.globalBatch,
    gradAccumSteps: row.globalBatch / (row.microBatch * dp),
    flashAttention,
    ...(virtualStages === undefined ? {} : { virtualStages }),
    stages: Array.from({ length: pp }, (_, i) => ({
      layers: [i * perStage, (i + 1) * perStage - 1],
      mesh,
      microBatchSize: row.microBatch,
      dp,
      tp,
      sequenceParallel: row.sequenceParallel,
      ckptLayers: row.recompute === 'full' ? perStage : row.recompute === 'per-stage' ? perStageCkpt[i] : 0,
      ...(row.recompute === 'selective' ? { selectiveRecompute: true } : {}),
      ...(row.recompute === 'selective-op' ? { opRecompute: true } : {}),
      zero: row.zero,
      offload: core.NO_OFFLOAD,
    })),
  };
}

function predict(row) {
  const model = core.parseModelSpec(row.model);
  // A variant of a catalog GPU (e.g. the 96 GB HBM2e H100 of Meta's Grand Teton hosts) keeps the catalog
  // name, so that its network, host memory and calibration are the catalog part's, with the variant's datasheet figures.
  const gpu = row.gpuOverrides ? core.parseSpec(core.GpuSpecSchema, { ...core.getGpu(row.gpu), ...row.gpuOverrides }, `${row.id}: gpuOverrides`) : row.gpu;
  const cluster = core.buildCluster({ nodes: Math.ceil(row.gpus / row.gpusPerNode), gpusPerNode: row.gpusPerNode, gpu });
  const plan = core.parsePlan(planOf(row, model), { model, cluster });
  if (row.crossEntropy !== undefined && !['fused', 'fp32-logits', 'compute-dtype'].includes(row.crossEntropy)) {
    bad(`${row.id}: crossEntropy must be fused, fp32-logits or compute-dtype (got ${JSON.stringify(row.crossEntropy)})`);
  }
  if (row.elementwise !== undefined && !['fused', 'eager'].includes(row.elementwise)) {
    bad(`${row.id}: elementwise must be fused or eager (got ${JSON.stringify(row.elementwise)})`);
  }
  if (row.gradAccumDtype !== undefined && !core.GRAD_ACCUM_DTYPES.includes(row.gradAccumDtype)) {
    bad(`${row.id}: gradAccumDtype must be ${core.GRAD_ACCUM_DTYPES.join(' or ')} (got ${JSON.stringify(row.gradAccumDtype)})`);
  }
  if (row.sequenceParallelInput !== undefined && !core.SEQUENCE_PARALLEL_INPUTS.includes(row.sequenceParallelInput)) {
    bad(`${row.id}: sequenceParallelInput must be ${core.SEQUENCE_PARALLEL_INPUTS.join(' or ')} (got ${JSON.stringify(row.sequenceParallelInput)})`);
  }
  for (const f of ['tpCommOverlap', 'paramGatherOverlap', 'gradReduceOverlap']) {
    if (row[f] !== undefined && typeof row[f] !== 'boolean') bad(`${row.id}: ${f} must be true or false (got ${JSON.stringify(row[f])})`);
  }
  const training = core.parseTrainingSpec({
    globalBatch: row.globalBatch, seqLen: row.seqLen, paramDtype: row.dtype, computeDtype: row.dtype, flashAttention: plan.flashAttention,
    tpCommOverlap: row.tpCommOverlap === true, paramGatherOverlap: row.paramGatherOverlap === true, crossEntropy: row.crossEntropy ?? 'fused', elementwise: row.elementwise ?? 'fused',
    sequenceParallelInput: row.sequenceParallelInput ?? 'sharded', gradAccumDtype: row.gradAccumDtype ?? 'param',
    gradReduceOverlap: row.gradReduceOverlap !== false,
  });
  const profile = core.builtinHardwareProfile(cluster, row.dtype);
  const est = estimatePlan(plan, { model, training, profile });
  // A row without `measured` publishes memory only for this comparison; `timeNotCompared` says why.
  if (!row.measured && !row.timeNotCompared) bad(`${row.id}: a row without "measured" must say why in "timeNotCompared"`);
  if (!row.measured && !row.measuredMemory) bad(`${row.id}: a row needs "measured", "measuredMemory" or both`);
  const measuredS = row.measured ? measuredIterationS(row, model) : null;
  // The measured per-GPU memory as its source reads it: torch.cuda.max_memory_reserved ("reserved"),
  // max_memory_allocated ("allocated") or nvidia-smi ("process"); the prediction is read the same way.
  const mm = row.measuredMemory;
  if (mm && !MEMORY_KINDS.includes(mm.kind)) bad(`${row.id}: measuredMemory.kind must be ${MEMORY_KINDS.join(', ')} (got ${mm.kind})`);
  const peak = Math.max(...est.stages.map((s) => (mm ? s.deviceMemory[`${mm.kind}Bytes`] : s.deviceMemory.processBytes)));
  const memoryMeasured = mm ? mm.gib * 2 ** 30 : null;
  return {
    id: row.id,
    source: row.source,
    model: model.name,
    gpu: row.gpu,
    gpus: row.gpus,
    config: `tp${row.tp} pp${row.pp} dp${row.gpus / (row.tp * row.pp)} b${row.microBatch} G${plan.gradAccumSteps}` +
      `${row.sequenceParallel ? ' sp' : ''} rc:${row.recompute} z${row.zero}${plan.flashAttention ? ' fa' : ''}` +
      `${plan.virtualStages ? ` v${plan.virtualStages}` : ''}${training.tpCommOverlap ? ' tpo' : ''}${training.paramGatherOverlap ? ' pgo' : ''}${training.crossEntropy === 'fp32-logits' ? ' ce32' : training.crossEntropy === 'compute-dtype' ? ' ce16' : ''}${training.elementwise === 'eager' ? ' eager' : ''}${row.sequenceParallel && training.sequenceParallelInput === 'gathered' ? ' spg' : ''}${training.gradAccumDtype === 'fp32' ? ' g32' : ''}${training.gradReduceOverlap ? '' : ' gx'}`,
    interleaved: Boolean(row.interleavedLayersPerVirtualStage),
    measuredS,
    predictedS: est.iterationTimeS,
    timeError: measuredS === null ? null : est.iterationTimeS / measuredS - 1,
    predictedPeakBytes: peak,
    measuredPeakBytes: memoryMeasured,
    memoryError: memoryMeasured === null ? null : peak / memoryMeasured - 1,
    memoryKind: mm ? mm.kind : 'process',
    // The run did run: a prediction that it does not fit would have stopped it at the pre-flight.
    predictedFits: est.allFit,
    // The bottleneck stage's time parts (seconds per micro-batch; dpComm and optimizer per iteration).
    stageTime: est.stages[est.bottleneckStage].time,
    breakdown: est.breakdown,
    memory: est.stages[est.bottleneckStage].memory,
  };
}

function median(xs) {
  return xs.length === 0 ? null : core.quantile(xs, 0.5);
}

function figures(results) {
  const timed = results.filter((r) => r.timeError !== null);
  const timeAbs = timed.map((r) => Math.abs(r.timeError));
  const mem = results.filter((r) => r.memoryError !== null);
  return {
    runs: results.length,
    timeRuns: timed.length,
    timeMedianAbsError: median(timeAbs),
    timeShareWithin10: timed.length === 0 ? null : timeAbs.filter((e) => e <= TARGETS.timeWithin).length / timed.length,
    timeMedianSignedError: median(timed.map((r) => r.timeError)),
    memoryRuns: mem.length,
    memoryMedianAbsError: median(mem.map((r) => Math.abs(r.memoryError))),
    memoryWorstUnder: mem.length === 0 ? null : Math.min(0, ...mem.map((r) => r.memoryError)),
    falseDoesNotFit: results.filter((r) => !r.predictedFits).length,
  };
}

const pct = (x) => (x === null ? 'n/a' : `${(100 * x).toFixed(1)}%`);
const signedPct = (x) => (x === null ? 'n/a' : `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`);

function table(rows, cols) {
  const cells = rows.map((r) => cols.map((c) => String(c.value(r))));
  const widths = cols.map((c, i) => Math.max(c.header.length, ...cells.map((row) => row[i].length)));
  const line = (vals) => vals.map((v, i) => (cols[i].right ? v.padStart(widths[i]) : v.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(cols.map((c) => c.header)), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n') + '\n';
}

const runs = data.runs.filter((r) => values.source === undefined || r.source === values.source);
if (runs.length === 0) bad(`no runs${values.source ? ` of source ${values.source} (sources: ${Object.keys(data.sources).join(', ')})` : ''}`);
for (const r of runs) if (!data.sources[r.source]) bad(`${r.id}: source ${r.source} is not described under "sources"`);
const results = runs.map(predict);
const overall = figures(results);
const bySource = Object.keys(data.sources)
  .map((name) => ({ name, ...figures(results.filter((r) => r.source === name)) }))
  .filter((s) => s.runs > 0);
const targets = {
  timeMedian: overall.timeMedianAbsError <= TARGETS.timeMedian,
  timeShareWithin10: overall.timeShareWithin10 >= TARGETS.timeShareWithin,
  // No published memory figure: the memory targets cannot be shown to hold.
  memoryMedian: overall.memoryRuns > 0 && overall.memoryMedianAbsError <= TARGETS.memoryMedian,
  memoryNeverUnderBy5: overall.memoryRuns > 0 && overall.memoryWorstUnder >= -TARGETS.memoryUnderMax,
  mistL4Memory: false,
};
const mistL4 = results.filter((r) => r.source === MIST_L4_SOURCE && r.memoryError !== null && r.gpu === 'l4');
targets.mistL4Memory = mistL4.length > 0 && mistL4.every((r) => Math.abs(r.memoryError) <= TARGETS.mistL4Memory);
const allMet = Object.values(targets).every(Boolean);

// The exit code is set, not forced: process.exit() would cut the output short on a pipe (64 KiB).
process.exitCode = allMet ? 0 : 1;
if (values.json) process.stdout.write(JSON.stringify({ targets: TARGETS, met: targets, overall, bySource, results }, null, 2) + '\n');
else printTables();

/** The tables for people: every run, the breakdown when asked, the figures per source and the targets. */
function printTables() {
  let out = `Published measured runs (${dataFile.replace(/^.*tools/, 'tools')}): ${results.length} runs, predicted with the built-in datasheet profiles\n\n`;
  out += table(results, [
    { header: 'source', value: (r) => r.source },
    { header: 'model', value: (r) => r.model },
    { header: 'GPUs', value: (r) => `${r.gpus} x ${r.gpu}`, right: true },
    { header: 'config', value: (r) => r.config },
    { header: 'measured s/it', value: (r) => (r.measuredS === null ? '-' : r.measuredS.toFixed(3)), right: true },
    { header: 'predicted s/it', value: (r) => r.predictedS.toFixed(3), right: true },
    { header: 'time err', value: (r) => signedPct(r.timeError), right: true },
    { header: 'mem as', value: (r) => r.memoryKind },
    { header: 'pred peak GiB', value: (r) => (r.predictedPeakBytes / 2 ** 30).toFixed(1), right: true },
    { header: 'meas peak GiB', value: (r) => (r.measuredPeakBytes === null ? '-' : (r.measuredPeakBytes / 2 ** 30).toFixed(1)), right: true },
    { header: 'mem err', value: (r) => signedPct(r.memoryError), right: true },
    { header: 'fits?', value: (r) => (r.predictedFits ? 'yes' : 'NO (ran)') },
  ]);
  if (values.breakdown) {
    const ms = (x) => (1e3 * x).toFixed(1);
    out += '\nBottleneck stage, per micro-batch in ms (dp comm and optimizer per iteration), and the iteration parts in s:\n';
    out += table(results, [
      { header: 'run', value: (r) => r.id },
      { header: 'fwd', value: (r) => ms(r.stageTime.forward), right: true },
      { header: 'bwd', value: (r) => ms(r.stageTime.backward), right: true },
      { header: 'recompute', value: (r) => ms(r.stageTime.recompute), right: true },
      { header: 'tp comm', value: (r) => ms(r.stageTime.tpComm), right: true },
      { header: 'pp comm', value: (r) => ms(r.stageTime.ppComm), right: true },
      { header: 'dp comm', value: (r) => ms(r.stageTime.dpComm), right: true },
      { header: 'optimizer', value: (r) => ms(r.stageTime.optimizer), right: true },
      { header: 'first s', value: (r) => r.breakdown.firstS.toFixed(3), right: true },
      { header: 'steady s', value: (r) => r.breakdown.steadyS.toFixed(3), right: true },
      { header: 'last s', value: (r) => r.breakdown.lastS.toFixed(3), right: true },
    ]);
  }
  out += '\nPer source (time error = predicted / measured - 1; "vN" rows ran Megatron-LM\'s interleaved 1F1B schedule with N chunks per rank, ' +
    '"tpo" / "pgo" rows Megatron-Core\'s --tp-comm-overlap / --overlap-param-gather, "ce32" rows a loss over fp32 logits, "ce16" over the fp16 logits, "eager" rows norms, RoPE and SwiGLU as eager ops, "spg" rows sequence-parallel linears keeping their gathered input, "g32" rows gradients accumulated and reduced in fp32, "gx" rows the gradient reduction after the backward (not overlapped), predicted as such):\n';
  out += table([...bySource, { name: 'all', ...overall }], [
    { header: 'source', value: (s) => s.name },
    { header: 'runs', value: (s) => s.runs, right: true },
    { header: 'time runs', value: (s) => s.timeRuns, right: true },
    { header: 'median |time err|', value: (s) => pct(s.timeMedianAbsError), right: true },
    { header: 'within 10%', value: (s) => pct(s.timeShareWithin10), right: true },
    { header: 'median signed', value: (s) => signedPct(s.timeMedianSignedError), right: true },
    { header: 'memory runs', value: (s) => s.memoryRuns, right: true },
    { header: 'median |mem err|', value: (s) => pct(s.memoryMedianAbsError), right: true },
    { header: 'worst under', value: (s) => signedPct(s.memoryWorstUnder), right: true },
    { header: 'predicted not to fit', value: (s) => s.falseDoesNotFit, right: true },
  ]);
  const mark = (ok) => (ok ? 'met' : 'NOT met');
  out += '\nTargets:\n' +
    `  iteration time median |error| <= ${pct(TARGETS.timeMedian)}: ${pct(overall.timeMedianAbsError)} -> ${mark(targets.timeMedian)}\n` +
    `  runs within ${pct(TARGETS.timeWithin)} >= ${pct(TARGETS.timeShareWithin)}: ${pct(overall.timeShareWithin10)} -> ${mark(targets.timeShareWithin10)}\n` +
    `  peak memory median |error| <= ${pct(TARGETS.memoryMedian)}: ` +
    (overall.memoryRuns === 0 ? 'no run of the set publishes its per-GPU memory -> NOT met (not shown)\n' : `${pct(overall.memoryMedianAbsError)} -> ${mark(targets.memoryMedian)}\n`) +
    `  memory never under-predicted by more than ${pct(TARGETS.memoryUnderMax)}: ` +
    (overall.memoryRuns === 0 ? 'n/a -> NOT met (not shown)\n' : `worst ${signedPct(overall.memoryWorstUnder)} -> ${mark(targets.memoryNeverUnderBy5)}\n`) +
    (mistL4.length === 0 ? `  Mist's own L4 runs' memory within ${pct(TARGETS.mistL4Memory)}: no such run in the set -> NOT met (not shown)\n`
      : `  Mist's own L4 runs' memory within ${pct(TARGETS.mistL4Memory)}: ${mistL4.map((r) => signedPct(r.memoryError)).join(', ')} -> ${mark(targets.mistL4Memory)}\n`) +
    (allMet ? 'All targets met.\n' : 'Some targets are NOT met; the cost model is not calibrated to these runs.\n');
  process.stdout.write(out);
}
