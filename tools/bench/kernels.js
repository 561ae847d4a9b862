#!/usr/bin/env node
// Benchmark of the native CPU kernels: matmul GFLOP/s for large and gpt-tiny shapes with
// 1 thread and with the whole pool, as a fraction of this machine's peak; per-call overhead of
// immediate and batched kernel calls; tokens/s of single-process gpt-tiny training.
// Needs the built packages: `node tools/scripts/build-native.js && npx tsc -b packages/executor`.
// Options: --quick (fewer repetitions), --fma-units N (FMA pipes per core for the datasheet peak,
// default 2), --ghz X (clock for the datasheet peak, default: the highest "cpu MHz" in /proc/cpuinfo).
'use strict';
const fs = require('node:fs');
const os = require('node:os');

const native = require('@mist/native');
const executor = require('@mist/executor');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const quick = args.includes('--quick');

function clockGHz() {
  const given = opt('--ghz');
  if (given) return { ghz: Number(given), source: '--ghz' };
  try {
    const mhz = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').filter((l) => l.startsWith('cpu MHz')).map((l) => Number(l.split(':')[1]));
    if (mhz.length) return { ghz: Math.max(...mhz) / 1000, source: '/proc/cpuinfo "cpu MHz" (nominal; turbo may be higher)' };
  } catch { /* not Linux */ }
  return { ghz: os.cpus()[0].speed / 1000, source: 'os.cpus() speed' };
}

function timeIt(fn, minSeconds) {
  fn(); // warm-up
  let reps = 0;
  const t0 = process.hrtime.bigint();
  let s = 0;
  do {
    fn();
    reps++;
    s = Number(process.hrtime.bigint() - t0) / 1e9;
  } while (s < minSeconds);
  return s / reps;
}

function randomF32(n, seed) {
  const a = new Float32Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    a[i] = x / 4294967296 - 0.5;
  }
  return a;
}

async function main() {
  const k = native.kernels;
  const threads = native.kernelThreads();
  const cores = os.availableParallelism ? os.availableParallelism() : os.cpus().length;
  const cfg = native.gemmConfig();
  const fmaUnits = Number(opt('--fma-units', 2));
  const { ghz, source } = clockGHz();
  const flopPerCycle = fmaUnits * cfg.vectorFloats * 2; // an FMA is 2 FLOP per lane
  const datasheetCore = flopPerCycle * ghz * 1e9;
  const measuredCore = native.measureFmaPeak(quick ? 0.1 : 0.3);
  console.log(`CPU: ${os.cpus()[0].model}, ${cores} cores, kernel pool ${threads} threads`);
  console.log(`matmul build: ${cfg.vectorFloats}-float vectors, micro-kernel ${cfg.mr}x${cfg.nr}, blocks KC=${cfg.kc} MC=${cfg.mc} NC=${cfg.nc}`);
  console.log(`peak (datasheet) = cores x FMA units x vector lanes x 2 FLOP x clock = ${cores} x ${fmaUnits} x ${cfg.vectorFloats} x 2 x ${ghz.toFixed(2)} GHz = ${(cores * datasheetCore / 1e9).toFixed(1)} GFLOP/s  [clock from ${source}]`);
  console.log(`peak (measured)  = cores x single-core FMA-loop throughput = ${cores} x ${(measuredCore / 1e9).toFixed(1)} = ${(cores * measuredCore / 1e9).toFixed(1)} GFLOP/s`);

  const shapes = [
    { name: '1024^3', m: 1024, n: 1024, k: 1024 },
    { name: '512^3', m: 512, n: 512, k: 512 },
    { name: '64x4096x1024', m: 64, n: 4096, k: 1024 },
    // gpt-tiny with 8 x 64 tokens: projections (T x 64 x 64), MLP up/down, LM head, weight gradients
    { name: 'tiny qkv 512x64x64', m: 512, n: 64, k: 64 },
    { name: 'tiny mlp-up 512x256x64', m: 512, n: 256, k: 64 },
    { name: 'tiny mlp-down 512x64x256', m: 512, n: 64, k: 256 },
    { name: 'tiny dW 64x256x512 (A^T)', m: 64, n: 256, k: 512, transA: true },
    { name: 'tiny logits 512x256x64 (B^T)', m: 512, n: 256, k: 64, transB: true },
  ];
  const results = [];
  console.log('\nmatmul                          threads   GFLOP/s   % measured peak   % datasheet peak');
  for (const s of shapes) {
    const a = randomF32(s.m * s.k, 1), b = randomF32(s.k * s.n, 2), c = new Float32Array(s.m * s.n);
    for (const t of [...new Set([1, threads])]) {
      native.setKernelThreads(t);
      const sec = timeIt(() => k.matmul({ c, a, b, m: s.m, n: s.n, k: s.k, transA: s.transA, transB: s.transB }), quick ? 0.2 : 0.6);
      const gflops = (2 * s.m * s.n * s.k) / sec / 1e9;
      const pm = (100 * gflops * 1e9) / (t * measuredCore), pd = (100 * gflops * 1e9) / (t * datasheetCore);
      results.push({ shape: s.name, threads: t, gflops, pctMeasuredPeak: pm, pctDatasheetPeak: pd });
      console.log(`${s.name.padEnd(32)}${String(t).padStart(7)}${gflops.toFixed(1).padStart(10)}${pm.toFixed(0).padStart(14)}%${pd.toFixed(0).padStart(18)}%`);
    }
  }
  native.setKernelThreads(threads);
  console.log('(peak fractions are of the peak of the threads used: t x single-core peak)');

  const one = new Float32Array(1);
  const immediate = timeIt(() => { for (let i = 0; i < 1000; i++) k.fill(one, 1); }, 0.3) / 1000;
  const batch = new native.KernelBatch();
  const batchRun = async (n) => {
    for (let i = 0; i < n; i++) batch.fill(one, 1);
    await batch.run();
  };
  const timeAsync = async (fn, reps) => {
    await fn();
    const t0 = process.hrtime.bigint();
    for (let r = 0; r < reps; r++) await fn();
    return Number(process.hrtime.bigint() - t0) / 1e9 / reps;
  };
  const perBatch = await timeAsync(() => batchRun(1), 2000);
  const per1000 = await timeAsync(() => batchRun(1000), 50);
  console.log(`\nper-call overhead: immediate ${(immediate * 1e6).toFixed(2)} us/call; batch of 1 ${(perBatch * 1e6).toFixed(1)} us (thread hop + promise); inside a batch of 1000 ${(per1000 / 1000 * 1e6).toFixed(2)} us/op`);

  const steps = quick ? 15 : 40;
  const r = await executor.trainSingleProcess({ model: 'gpt-tiny', steps, seed: 1, globalBatch: 16, seq: 64, data: 'corpus' });
  const steady = r.steps.slice(5);
  const tokensPerS = (steady.length * 16 * 64) / steady.reduce((s, x) => s + x.seconds, 0);
  console.log(`gpt-tiny training (global batch 16 x 64 tokens, ${threads} threads): ${tokensPerS.toFixed(0)} tokens/s (steps 6..${steps}); loss ${r.steps[0].loss.toFixed(3)} -> ${r.steps[steps - 1].loss.toFixed(3)}`);
  const big = results.filter((x) => x.shape === '1024^3');
  console.log(`\nRESULT ${JSON.stringify({ cores, threads, measuredCorePeakGflops: measuredCore / 1e9, datasheetCorePeakGflops: datasheetCore / 1e9, matmul1024: big, overheadUs: { immediate: immediate * 1e6, batchOf1: perBatch * 1e6, perOpInBatch: per1000 / 1000 * 1e6 }, gptTinyTokensPerS: tokensPerS })}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
