#!/usr/bin/env node
// Benchmark of the analyzer's hot path: evaluations of (stage, strategy) candidates per
// second on one core, time and memory, after compilation. Needs the built packages:
//   npx tsc -b packages/analyzer && node tools/bench/analyzer.js
// Goal: >= 2 million candidates per second.
'use strict';
const path = require('node:path');
const root = path.resolve(__dirname, '..', '..');
const core = require('@mist/core');
const analyzer = require('@mist/analyzer');

const { IN, INPUT_WIDTH, OUTPUT_WIDTH } = analyzer;

function candidates(model, cluster, count) {
  // A varied, valid set: layers, position, micro-batch, dp x tp, SP, ckpt, zero and offload ratios.
  const input = new Float64Array(count * INPUT_WIDTH);
  const gpn = cluster.gpusPerNode;
  const tps = [1, 2, 4, 8].filter((t) => gpn % t === 0 && model.heads % t === 0);
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  for (let i = 0; i < count; i++) {
    const o = i * INPUT_WIDTH;
    const layers = 1 + Math.floor(rnd() * model.layers);
    const tp = tps[Math.floor(rnd() * tps.length)];
    const nodes = 1 + Math.floor(rnd() * cluster.nodes);
    const pp = 1 + Math.floor(rnd() * 4);
    const pos = pp === 1 ? 3 : Math.floor(rnd() * 3);
    input[o + IN.LAYERS] = layers;
    input[o + IN.POSITION] = pos;
    input[o + IN.IN_FLIGHT] = 1 + Math.floor(rnd() * pp);
    input[o + IN.PP] = pp;
    input[o + IN.MESH_NODES] = nodes;
    input[o + IN.MESH_GPUS_PER_NODE] = gpn;
    input[o + IN.MICRO_BATCH] = 1 << Math.floor(rnd() * 4);
    input[o + IN.GRAD_ACCUM] = 1 + Math.floor(rnd() * 16);
    input[o + IN.DP] = (nodes * gpn) / tp;
    input[o + IN.TP] = tp;
    input[o + IN.SP] = rnd() < 0.5 ? 0 : 1;
    input[o + IN.CKPT] = Math.floor(rnd() * (layers + 1));
    input[o + IN.ZERO] = Math.floor(rnd() * 4);
    input[o + IN.OFF_WEIGHTS] = rnd() < 0.7 ? 0 : rnd();
    input[o + IN.OFF_GRADS] = rnd() < 0.7 ? 0 : rnd();
    input[o + IN.OFF_OPTIM] = rnd() < 0.7 ? 0 : rnd();
    input[o + IN.OFF_ACT] = rnd() < 0.7 ? 0 : rnd();
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
