#!/usr/bin/env node
// Speedup of the Mist search over the best plans Megatron-LM and DeepSpeed can run (the engine spaces
// of core's capability tables), under the same cost model and the built-in datasheet profiles, on the
// kinds of cases the Mist paper evaluates (EuroSys'25, Sec. 7: GPT-3, Llama and Falcon on L4 and A100
// clusters of up to 32 GPUs; it reports 1.28x on average over Megatron-LM, up to 1.73x, measured).
// These are predicted speedups of this project's cost model, not measurements. With the BUILT packages.
//
// Usage: node tools/bench/baselines.js [--time-limit 60]
'use strict';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};

// [model, cluster, global batch]; sequence length 2048 throughout.
/** @type {Array<[string, string, number]>} */
const CASES = [
  ['gpt3-1.3b', '1x8-l4', 128],
  ['gpt3-2.7b', '1x8-l4', 128],
  ['gpt3-6.7b', '1x8-l4', 128],
  ['llama2-7b', '1x8-l4', 128],
  ['falcon-7b', '1x8-l4', 128],
  ['gpt3-6.7b', '2x8-l4', 256],
  ['gpt3-13b', '4x8-l4', 256],
  ['gpt3-6.7b', '1x8-a100-40gb', 256],
  ['llama2-13b', '2x8-a100-40gb', 256],
  ['gpt3-22b', '4x8-a100-40gb', 256],
];

async function main() {
  const { contextFor } = require('@mist/analyzer');
  const tuner = require('@mist/tuner');
  const limit = arg('time-limit', 60);
  const ratios = { megatron: [], deepspeed: [] };
  const fmt = (r) => (r === null ? '   -  ' : `${r.toFixed(2)}x`);
  console.log('model        cluster         gbs  mist(s)  megatron(s)  deepspeed(s)  vs megatron  vs deepspeed  tune(s)  complete');
  for (const [model, cluster, globalBatch] of CASES) {
    const ctx = contextFor({ model, cluster, training: { globalBatch, seqLen: 2048 } });
    const cmp = await tuner.tuneWithBaselines(ctx, { clusterName: cluster, timeLimitS: limit });
    const t = (r) => (r.predicted ? r.predicted.iterationTimeS.toFixed(3).padStart(8) : '  no fit');
    for (const b of ['megatron', 'deepspeed']) if (cmp.speedup[b] !== null) ratios[b].push(cmp.speedup[b]);
    console.log(`${model.padEnd(12)} ${cluster.padEnd(14)} ${String(globalBatch).padStart(4)} ${t(cmp.best)} ${t(cmp.megatron).padStart(12)} ` +
      `${t(cmp.deepspeed).padStart(13)} ${fmt(cmp.speedup.megatron).padStart(12)} ${fmt(cmp.speedup.deepspeed).padStart(13)} ` +
      `${cmp.tuningTimeS.toFixed(1).padStart(8)}  ${cmp.best.stoppedBy ? `stopped, gap ${(100 * (cmp.best.gap?.relative ?? 0)).toFixed(1)}%` : 'yes'}`);
  }
  const geo = (xs) => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);
  for (const b of ['megatron', 'deepspeed']) {
    const xs = ratios[b];
    if (xs.length > 0) console.log(`speedup over ${b}: geometric mean ${geo(xs).toFixed(2)}x, max ${Math.max(...xs).toFixed(2)}x over ${xs.length} cases`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
