#!/usr/bin/env node
// Benchmark of the analyzer's hot path: evaluations of (stage, strategy) candidates per
// second on one core, time and memory, after compilation. Needs the built packages:
//   npx tsc -b packages/analyzer && node tools/bench/analyzer.js
// Goal: >= 2 million candidates per second.
'use strict';
const core = require('@mist/core');
const analyzer = require('@mist/analyzer');

const { INPUT_WIDTH, OUTPUT_WIDTH } = analyzer;

const POSITIONS = /** @type {const} */ (['first', 'middle', 'last', 'only']);

function candidates(model, cluster, count) {
  // A varied, valid set: layers, position, micro-batch, dp x tp, SP, ckpt, zero and offload ratios,
  // written by the analyzer's own row writer (one layout, new columns at their defaults).
  const input = new Float64Array(count * INPUT_WIDTH);
  const gpn = cluster.gpusPerNode;
  const tps = [1, 2, 4, 8].filter((t) => gpn % t === 0 && model.heads % t === 0);
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const offloadRatio = () => (rnd() < 0.7 ? 0 : rnd());
  for (let i = 0; i < count; i++) {
    const layers = 1 + Math.floor(rnd() * model.layers);
    const tp = tps[Math.floor(rnd() * tps.length)];
    const nodes = 1 + Math.floor(rnd() * cluster.nodes);
    const pp = 1 + Math.floor(rnd() * 4);
    const position = POSITIONS[pp === 1 ? 3 : Math.floor(rnd() * 3)];
    const inFlight = 1 + Math.floor(rnd() * pp);
    const microBatchSize = 1 << Math.floor(rnd() * 4);
    const gradAccumSteps = 1 + Math.floor(rnd() * 16);
    const sequenceParallel = rnd() >= 0.5;
    const ckptLayers = Math.floor(rnd() * (layers + 1));
    const zero = /** @type {0 | 1 | 2 | 3} */ (Math.floor(rnd() * 4));
    const offload = { weights: offloadRatio(), grads: offloadRatio(), optim: offloadRatio(), activations: offloadRatio() };
    analyzer.writeStageQuery({
      layers, position, inFlight, pp, mesh: { nodes, gpusPerNode: gpn }, microBatchSize, gradAccumSteps,
      dp: (nodes * gpn) / tp, tp, sequenceParallel, ckptLayers, zero, offload,
    }, input, i);
  }
  return input;
}

function bench(modelName, clusterName) {
  const model = core.getModel(modelName);
  const cluster = core.parseClusterShorthand(clusterName);
  const profile = core.builtinHardwareProfile(cluster);
  const training = core.parseTrainingSpec({ globalBatch: 512, seqLen: 2048 });
  const t0 = process.hrtime.bigint();
  const compiled = analyzer.compileStageModel({ model, training, profile });
  const compileMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const batch = 4096;
  const input = candidates(model, cluster, batch);
  const output = new Float64Array(batch * OUTPUT_WIDTH);
  // Warm up (let V8 optimise the generated kernel), then time whole batches for ~1.5 s.
  for (let i = 0; i < 200; i++) compiled.evaluateBatch(input, output, batch);
  let evaluated = 0;
  let checksum = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < 1.5) {
    for (let r = 0; r < 50; r++) {
      compiled.evaluateBatch(input, output, batch);
      checksum += output[0];
    }
    evaluated += 50 * batch;
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  }
  const rate = evaluated / elapsed;
  for (let i = 0; i < output.length; i++) if (!Number.isFinite(output[i])) throw new Error(`non-finite output at ${i}`);
  console.log(
    `analyzer  ${modelName.padEnd(10)} on ${clusterName.padEnd(13)} compile ${compileMs.toFixed(0).padStart(5)} ms   ` +
    `${(rate / 1e6).toFixed(2)} M candidates/s (one core; goal >= 2 M)${checksum > 0 ? '' : ' (!)'}`,
  );
  return rate;
}

const rates = [bench('gpt3-1.3b', '1x8-l4'), bench('llama2-70b', '16x8-a100-80gb'), bench('falcon-40b', '4x8-h100-sxm')];
const worst = Math.min(...rates);
console.log(`analyzer candidates/s (worst of ${rates.length}): ${(worst / 1e6).toFixed(2)} M ${worst >= 2e6 ? 'PASS' : 'BELOW GOAL'}`);
