#!/usr/bin/env node
// Benchmark of the distributed executor (packages/executor, built: run `npm run build`).
// 1. Pipeline efficiency: gpt-tiny on pp=4 stages (one layer each), G micro-batches, one worker
//    process per stage on 127.0.0.1. Prints the measured step time, the ideal 1F1B time
//    (G + pp - 1) / G * (sum of the stages' compute / pp) (Narayanan et al. 2021: the bubble is
//    (pp - 1) / G of the ideal), and their ratio (1 = no overhead beyond the bubble).
// 2. Tokens/s of a 2-stage run vs single-process training of the same model and batch.
// Per-stage compute is each rank's own measured compute time (step time minus time waiting on
// communication). On a host with fewer cores than ranks the processes share cores, which inflates
// both; the printed core count says how far to trust the ratio.
//
// Usage: node tools/bench/executor.js [--steps 8] [--G 8] [--seq 64] [--batch 16]
'use strict';
const os = require('node:os');
const { launchLocal, trainSingleProcess } = require('@mist/executor');
const { getModel, parsePlan, parseTrainingSpec, NO_OFFLOAD } = require('@mist/core');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const steps = arg('steps', 8), G = arg('G', 8), seq = arg('seq', 64), batch = arg('batch', 16);
const model = getModel('gpt-tiny');
const training = parseTrainingSpec({ globalBatch: batch, seqLen: seq, paramDtype: 'fp32', computeDtype: 'fp32' });
const stage = (layers, g) => ({
  layers, mesh: { nodes: 1, gpusPerNode: 1 }, microBatchSize: batch / g, dp: 1, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 0,
  offload: { ...NO_OFFLOAD },
});
const plan = (ranges, g) => parsePlan({ version: 1, model: model.name, seqLen: seq, globalBatch: batch, gradAccumSteps: g, stages: ranges.map((r) => stage(r, g)) }, { model });
/** @type {import('../../packages/executor/dist/index.js').RunOptions} */
const run = { steps, seed: 1, lr: 1e-3, data: 'synthetic' };
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  console.log(`executor benchmark: gpt-tiny, global batch ${batch} x seq ${seq}, ${steps} steps (first dropped), ${os.cpus().length} cores`);
  const pp = 4;
  const r = await launchLocal({ plan: plan([[0, 0], [1, 1], [2, 2], [3, 3]], G), model, training, run });
  const measured = r.steps.slice(1);
  const stepTime = median(measured.map((s) => s.stepTimeS));
  const stageCompute = Array.from({ length: pp }, (_, i) => median(measured.map((s) => s.ranks[i].computeS)));
  const ideal = ((G + pp - 1) / G) * (stageCompute.reduce((a, b) => a + b, 0) / pp);
  console.log(`pipeline pp=${pp}, G=${G}: step ${(stepTime * 1e3).toFixed(1)} ms, stage compute [${stageCompute.map((c) => (c * 1e3).toFixed(1)).join(', ')}] ms`);
  console.log(`  ideal (G+pp-1)/G * mean stage compute = ${(ideal * 1e3).toFixed(1)} ms; measured / ideal = ${(stepTime / ideal).toFixed(2)}`);

  const two = await launchLocal({ plan: plan([[0, 1], [2, 3]], 4), model, training, run });
  const twoTps = median(two.steps.slice(1).map((s) => s.tokensPerS));
  const single = await trainSingleProcess({ model, steps, seed: 1, lr: 1e-3, globalBatch: batch, seq, data: 'synthetic' });
  const singleTps = median(single.steps.slice(1).map((s) => s.tokensPerS));
  console.log(`tokens/s: pp=2 (G=4) ${twoTps.toFixed(0)}, single process ${singleTps.toFixed(0)}, ratio ${(twoTps / singleTps).toFixed(2)}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
