// One published run predicted: the shared part of the validation scripts (published-runs.js prints
// the figures, calibrate.js fits a GPU's sustained matmul share on its calibration source). A row of
// published-runs.json becomes a Mist plan (uniform stages), is predicted by the analyzer with the
// built-in profile of its GPU, and is compared with its measured time and memory.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

// Runs from the TypeScript sources, so the check always sees the analyzer of this checkout.
require('../scripts/ts-register');
const core = require('@mist/core');
const { estimatePlan } = require('@mist/analyzer');

const DATA_FILE = path.join(__dirname, 'published-runs.json');
// The targets: iteration time median |error| <= 5% with >= 75% of runs within
// 10%; per-GPU peak memory median |error| <= 10% and never under-predicting by more than 5%.
const TARGETS = { timeMedian: 0.05, timeShareWithin: 0.75, timeWithin: 0.1, memoryMedian: 0.1, memoryUnderMax: 0.05, mistL4Memory: 0.03 };
const MEMORY_KINDS = ['allocated', 'reserved', 'process'];
/** The training spec's fields (core TrainingSpecSchema): a row gives any of them under the same name. */
const TRAINING_KEYS = Object.keys(core.TrainingSpecSchema.shape);
/** The config column's tag of a training spec's crossEntropy (the fused default: none). */
const CROSS_ENTROPY_LABEL = { fused: '', 'fp32-logits': ' ce32', 'compute-dtype': ' ce16', compiled: ' cec' };

/** A bad data file: the scripts print its message and exit 2. */
class DataError extends Error {}

/** @param {string} message @returns {never} */
function bad(message) {
  throw new DataError(message);
}

/** The data file, with every run's source described. */
function loadRuns() {
  let data;
  try {
    data = JSON.parse(fs.readFileSync(DATA_FILE, 'utf8'));
  } catch (err) {
    bad(`${DATA_FILE}: ${err instanceof Error ? err.message : String(err)}`);
  }
  for (const r of data.runs) if (!data.sources[r.source]) bad(`${r.id}: source ${r.source} is not described under "sources"`);
  for (const [name, s] of Object.entries(data.sources)) {
    if (s.calibrates !== undefined && !core.gpuNames().includes(s.calibrates)) {
      bad(`source ${name}: calibrates must name a catalog GPU (${core.gpuNames().join(', ')}), got ${JSON.stringify(s.calibrates)}`);
    }
  }
  return data;
}

/**
 * The FLOPs of one iteration by the formula a row's figure was published with (measured.flopsFormula):
 * Narayanan et al. 2021, Eq. 3, which counts the recomputed forward; or the model FLOPs without
 * recompute (Korthikanti et al. 2022, Sec. 6.3; Megatron-LM's num_floating_point_operations for a GPT
 * with MHA and a 4h GeLU MLP).
 */
function publishedFlops(row, model) {
  const B = row.globalBatch, s = row.seqLen, l = model.layers, h = model.hidden, V = model.vocab;
  switch (row.measured.flopsFormula) {
    case 'narayanan2021-eq3': return 96 * B * s * l * h * h * (1 + s / (6 * h) + V / (16 * l * h));
    case 'korthikanti2022-model': return 72 * B * s * l * h * h * (1 + s / (6 * h) + V / (12 * l * h));
    default: return bad(`${row.id}: flopsFormula must be narayanan2021-eq3 or korthikanti2022-model (got ${row.measured.flopsFormula})`);
  }
}

/**
 * The measured iteration time of a row, in seconds, from the figure as published and the formula its
 * source states (published-runs.json "sources.*.formula").
 */
function measuredIterationS(row, model) {
  const B = row.globalBatch, s = row.seqLen, N = row.gpus;
  const m = row.measured;
  switch (m.kind) {
    case 'iterationS':
      return m.value;
    case 'tokensPerSecPerGpu':
      return (B * s) / (N * m.value);
    case 'tflopsPerGpu':
      return publishedFlops(row, model) / (N * m.value * 1e12);
    case 'mfu':
      // MFU counts the model FLOPs (Korthikanti et al. 2022, Sec. 6.3), no recompute.
      if (m.flopsFormula !== 'korthikanti2022-model') bad(`${row.id}: unknown flopsFormula ${m.flopsFormula}`);
      return publishedFlops(row, model) / (N * m.value * m.peakTflops * 1e12);
    default:
      return bad(`${row.id}: measured.kind must be iterationS, tokensPerSecPerGpu, tflopsPerGpu or mfu (got ${m.kind})`);
  }
}

/** The Mist plan of a row: pp uniform stages of dp x tp x cp GPUs each (cp: context parallelism, default 1). */
function planOf(row, model) {
  const { tp, pp, gpus, gpusPerNode } = row;
  const cp = row.cp ?? 1;
  if (!Number.isInteger(cp) || cp < 1) bad(`${row.id}: cp must be a positive integer (got ${row.cp})`);
  if (gpus % (tp * pp * cp) !== 0) bad(`${row.id}: gpus ${gpus} is not a multiple of tp * pp * cp = ${tp * pp * cp}`);
  const dp = gpus / (tp * pp * cp);
  if (model.layers % pp !== 0) bad(`${row.id}: pp ${pp} does not divide the ${model.layers} layers`);
  const perStage = model.layers / pp;
  if (row.globalBatch % (row.microBatch * dp) !== 0) bad(`${row.id}: globalBatch is not a multiple of microBatch * dp`);
  const devices = dp * tp * cp;
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
      ...(cp > 1 ? { cp } : {}),
      sequenceParallel: row.sequenceParallel,
      ckptLayers: row.recompute === 'full' ? perStage : row.recompute === 'per-stage' ? perStageCkpt[i] : 0,
      ...(row.recompute === 'selective' ? { selectiveRecompute: true } : {}),
      ...(row.recompute === 'selective-op' ? { opRecompute: true } : {}),
      zero: row.zero,
      offload: core.NO_OFFLOAD,
    })),
  };
}

/**
 * Predicts a row. `profileOf` may change the built-in profile before the analyzer reads it (calibrate.js
 * scales its matmul efficiency).
 * @param {any} row
 * @param {{ profileOf?: (p: import('@mist/core').HardwareProfile) => import('@mist/core').HardwareProfile }} [opts]
 */
function predict(row, opts = {}) {
  const model = core.parseModelSpec(row.model);
  // A variant of a catalog GPU (e.g. the 96 GB HBM2e H100 of Meta's Grand Teton hosts) keeps the catalog
  // name, so that its network, host memory and calibration are the catalog part's, with the variant's datasheet figures.
  const gpu = row.gpuOverrides ? core.parseSpec(core.GpuSpecSchema, { ...core.getGpu(row.gpu), ...row.gpuOverrides }, `${row.id}: gpuOverrides`) : row.gpu;
  const cluster = core.buildCluster({ nodes: Math.ceil(row.gpus / row.gpusPerNode), gpusPerNode: row.gpusPerNode, gpu });
  const plan = core.parsePlan(planOf(row, model), { model, cluster });
  // The row's training facts: its fields named as the training spec's (TRAINING_KEYS), validated by the
  // spec's own schema (a bad value is named with the allowed ones); a field the row leaves out takes
  // the spec's default. The row's dtype is both dtypes, and flash attention is the plan's.
  let training;
  try {
    const facts = Object.fromEntries(TRAINING_KEYS.filter((k) => row[k] !== undefined).map((k) => [k, row[k]]));
    training = core.parseTrainingSpec({ ...facts, paramDtype: row.dtype, computeDtype: row.dtype, flashAttention: plan.flashAttention });
  } catch (err) {
    if (err instanceof core.SpecError) bad(`${row.id}: ${err.message}`);
    throw err;
  }
  const builtin = core.builtinHardwareProfile(cluster, row.dtype);
  const profile = opts.profileOf ? opts.profileOf(builtin) : builtin;
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
    config: `tp${row.tp} pp${row.pp}${(row.cp ?? 1) > 1 ? ` cp${row.cp}` : ''} dp${row.gpus / (row.tp * row.pp * (row.cp ?? 1))} b${row.microBatch} G${plan.gradAccumSteps}` +
      `${row.sequenceParallel ? ' sp' : ''} rc:${row.recompute} z${row.zero}${plan.flashAttention ? ' fa' : ''}` +
      `${plan.virtualStages ? ` v${plan.virtualStages}` : ''}${training.tpCommOverlap ? ' tpo' : training.tpBackwardOverlap ? ' tpa' : ''}${training.paramGatherOverlap ? ' pgo' : ''}${CROSS_ENTROPY_LABEL[training.crossEntropy]}${training.elementwise === 'eager' ? ' eager' : ''}${row.sequenceParallel && training.sequenceParallelInput === 'gathered' ? ' spg' : ''}${training.gradAccumDtype === 'fp32' ? ' g32' : ''}${training.gradReduceOverlap ? '' : ' gx'}${training.fp8 !== 'none' ? ` fp8:${training.fp8}` : ''}${training.fp8ParamGather ? ' f8g' : ''}${plan.flashAttention && training.flashAttentionKernel !== 'flash2' ? ` fa:${training.flashAttentionKernel}` : ''}`,
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

/** A share as a percentage, 'n/a' for null. */
const pct = (x) => (x === null ? 'n/a' : `${(100 * x).toFixed(1)}%`);
/** An error as a signed percentage, 'n/a' for null. */
const signedPct = (x) => (x === null ? 'n/a' : `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`);

module.exports = { DATA_FILE, DataError, TARGETS, core, figures, loadRuns, median, pct, predict, signedPct };
