#!/usr/bin/env node
// The CUDA backend's figures on a GPU host, written as one JSON report (run by cuda-checks.sh after
// the CUDA test files): what backends() says, every op's largest error against the CPU kernel (from
// the comparisons the test files made, MIST_CUDA_REPORT), GEMM TFLOP/s per shape and path, the
// caching allocator's accounting against the driver's free memory, and host<->device copy bandwidth.
//
// Usage: node tools/device/cuda-report.js <out-dir>   (reads <out-dir>/kernel-errors.jsonl and
//        <out-dir>/vitest-cuda.json when they exist; writes <out-dir>/cuda-report.json)
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '../..');
const outDir = path.resolve(process.argv[2] || '.');
const addon = require('bindings')({ bindings: 'mist_native', module_root: path.join(root, 'packages/native') });

// H100/H200 SXM dense bf16/fp16 tensor-core peak, 989.4 TFLOP/s (NVIDIA H100 datasheet; the H200 has
// the same GH100 compute). Other GPUs: no peak is assumed and the fraction is left out.
const PEAK_TFLOPS = { 90: 989.4 };
const GEMM_SHAPES = [
  [4096, 4096, 4096],
  [8192, 3072, 1024],
  [8192, 1024, 4096],
  [8192, 4096, 1024],
  [2048, 50304, 1024],
];

function section(name, fn) {
  const started = Date.now();
  try {
    const value = fn();
    console.log(`[cuda-report] ${name}: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return value;
  } catch (err) {
    console.log(`[cuda-report] ${name}: FAILED ${err && err.message ? err.message : err}`);
    return { error: String(err && err.message ? err.message : err) };
  }
}

function kernelErrors() {
  const file = path.join(outDir, 'kernel-errors.jsonl');
  if (!fs.existsSync(file)) return { error: `${file} is missing (the CUDA test files did not run)` };
  const perOp = new Map();
  for (const line of fs.readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
    const r = JSON.parse(line);
    const key = `${[...new Set(r.ops)].join('+')} ${r.dtype}`;
    const e = perOp.get(key) ?? { ops: [...new Set(r.ops)], dtype: r.dtype, comparisons: 0, failed: 0, maxAbs: 0, maxRel: 0, atol: r.atol, rtol: r.rtol };
    e.comparisons += 1;
    if (!r.ok) e.failed += 1;
    e.maxAbs = Math.max(e.maxAbs, r.maxAbs ?? 0);
    e.maxRel = Math.max(e.maxRel, r.maxRel ?? 0);
    e.atol = Math.max(e.atol, r.atol);
    e.rtol = Math.max(e.rtol, r.rtol);
    perOp.set(key, e);
  }
  return [...perOp.values()].sort((a, b) => (a.ops.join() + a.dtype).localeCompare(b.ops.join() + b.dtype));
}

function trainChecks() {
  const file = path.join(outDir, 'train.jsonl');
  if (!fs.existsSync(file)) return { error: `${file} is missing (the GPU training check did not run)` };
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

function planChecks() {
  const file = path.join(outDir, 'plans.jsonl');
  if (!fs.existsSync(file)) return { error: `${file} is missing (the plan check did not run)` };
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

function vitestSummary(name = 'vitest-cuda.json') {
  const file = path.join(outDir, name);
  if (!fs.existsSync(file)) return { error: `${file} is missing` };
  const j = JSON.parse(fs.readFileSync(file, 'utf8'));
  const failures = [];
  for (const f of j.testResults ?? []) {
    for (const t of f.assertionResults ?? []) {
      if (t.status === 'failed') failures.push({ file: path.relative(root, f.name), test: t.fullName, message: (t.failureMessages ?? []).join('\n').slice(0, 600) });
    }
  }
  return { passed: j.numPassedTests, failed: j.numFailedTests, skipped: j.numPendingTests + (j.numTodoTests ?? 0), failures };
}

function gemm(probe) {
  const paths = ['own'];
  if (probe.cublasLt && probe.cublasLt.available) paths.unshift('cublaslt');
  const cc = probe.devices[0] ? probe.devices[0].computeCapability : 0;
  const peak = PEAK_TFLOPS[cc];
  const rows = [];
  for (const [m, n, k] of GEMM_SHAPES) {
    for (const p of paths) {
      for (const dtype of ['bf16', 'f16']) {
        try {
          const r = addon.cudaGemmBenchmark({ m, n, k, dtype, path: p, iterations: 20 });
          if (peak) r.fractionOfPeak = r.tflops / peak;
          rows.push(r);
          console.log(`[cuda-report]   gemm ${m}x${n}x${k} ${dtype} ${r.path}: ${r.tflops.toFixed(1)} TFLOP/s${peak ? ` (${(100 * r.tflops / peak).toFixed(1)}% of ${peak})` : ''}`);
        } catch (err) {
          rows.push({ m, n, k, dtype, path: p, error: String(err.message || err) });
          console.log(`[cuda-report]   gemm ${m}x${n}x${k} ${dtype} ${p}: FAILED ${err.message || err}`);
        }
      }
    }
  }
  return { peakTflops: peak ?? null, rows };
}

// Allocates a mixed pattern, frees every other tensor, and compares the allocator's reserved bytes
// with the drop in the driver's free memory (cuMemGetInfo).
function allocator() {
  addon.cudaSynchronize();
  addon.cudaEmptyCache();
  const before = addon.cudaMemoryStats();
  const tensors = [];
  let requested = 0;
  for (let i = 0; i < 200; i++) {
    const count = i % 3 === 0 ? 1000 + i * 7919 : (1 << 20) + i * 104729;
    tensors.push(addon.cudaTensorCreate(count, i % 2 ? 'bf16' : 'f32'));
    requested += count * (i % 2 ? 2 : 4);
  }
  const full = addon.cudaMemoryStats();
  for (let i = 0; i < tensors.length; i += 2) addon.cudaTensorFree(tensors[i]);
  const half = addon.cudaMemoryStats();
  for (let i = 1; i < tensors.length; i += 2) addon.cudaTensorFree(tensors[i]);
  addon.cudaEmptyCache();
  const after = addon.cudaMemoryStats();
  return {
    requestedBytes: requested,
    allocated: full.allocated,
    reserved: full.reserved,
    driverFreeDrop: before.deviceFree - full.deviceFree,
    reservedMinusDriverDrop: full.reserved - (before.deviceFree - full.deviceFree),
    afterFreeingHalf: { allocated: half.allocated, reserved: half.reserved, fragmentation: half.fragmentation, largestFreeBlock: half.largestFreeBlock },
    afterEmptyCache: { reserved: after.reserved, driverFreeRecovered: after.deviceFree - full.deviceFree },
    stats: after,
  };
}

function copies() {
  const bytes = 256 << 20;
  const t = addon.cudaTensorCreate(bytes / 4, 'f32');
  const pinned = addon.cudaPinnedBuffer(bytes);
  const pageable = new Float32Array(bytes / 4);
  const time = (fn, reps) => {
    fn();
    addon.cudaSynchronize();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < reps; i++) fn();
    addon.cudaSynchronize();
    return Number(process.hrtime.bigint() - t0) / 1e9 / reps;
  };
  const gbs = (s) => bytes / s / 1e9;
  const h2dPinned = time(() => addon.cudaCopyAsync('toDevice', t, pinned, 'comm'), 5);
  const d2hPinned = time(() => addon.cudaCopyAsync('toHost', t, pinned, 'comm'), 5);
  const h2dPageable = time(() => addon.cudaUpload(t, pageable), 3);
  addon.cudaTensorFree(t);
  return { bytes, h2dPinnedGBs: gbs(h2dPinned), d2hPinnedGBs: gbs(d2hPinned), h2dPageableGBs: gbs(h2dPageable) };
}

function main() {
  fs.mkdirSync(outDir, { recursive: true });
  const probe = addon.cudaProbe();
  const report = {
    date: new Date().toISOString(),
    backends: section('backends', () => [...addon.collectivesBackends(), { name: 'cuda', available: probe.available, reason: probe.reason }]),
    probe,
    tests: section('vitest summary', () => vitestSummary('vitest-cuda.json')),
    trainTests: section('training tests', () => vitestSummary('vitest-train.json')),
    kernels: section('kernel errors', kernelErrors),
    training: section('training against the CPU', trainChecks),
    profileTests: section('profiler tests', () => vitestSummary('vitest-profile.json')),
    planTests: section('plan tests', () => vitestSummary('vitest-plans.json')),
    plans: section('plans against the analyzer', planChecks),
  };
  if (probe.available) {
    report.gemm = section('gemm', () => gemm(probe));
    report.allocator = section('allocator', allocator);
    report.copies = section('copies', copies);
  }
  const file = path.join(outDir, 'cuda-report.json');
  fs.writeFileSync(file, JSON.stringify(report, null, 1) + '\n');
  console.log(`[cuda-report] wrote ${file}`);
  const t = report.tests;
  const failedKernels = Array.isArray(report.kernels) ? report.kernels.filter((k) => k.failed > 0).length : 'n/a';
  console.log(`[cuda-report] GPU: ${probe.devices.map((d) => d.name).join(', ') || 'none'}; tests ${t.passed ?? '?'} passed, ${t.failed ?? '?'} failed; op groups outside tolerance: ${failedKernels}`);
  const tt = report.trainTests;
  if (Array.isArray(report.training)) {
    for (const r of report.training) console.log(`[cuda-report] ${r.model} ${r.steps} steps: max relative loss difference ${r.maxRelLossDiff.toExponential(2)}, GPU ${Math.round(r.gpuTokensPerS)} tok/s, CPU ${Math.round(r.cpuTokensPerS)} tok/s`);
  }
  if (Array.isArray(report.plans)) {
    for (const r of report.plans) {
      console.log(`[cuda-report] gpt3-350m ${r.label}: step ${r.stepS.toFixed(3)} s (predicted ${r.predictedStepS.toFixed(3)}, ${(100 * r.timeErr).toFixed(1)}%), ` +
        `peak ${(r.peakAllocated / 2 ** 30).toFixed(2)} GiB (predicted ${(r.predictedAllocated / 2 ** 30).toFixed(2)}, ${(100 * r.memErr).toFixed(1)}%), MFU ${(100 * r.mfu).toFixed(1)}%`);
    }
  }
  const pt = report.planTests;
  const pr = report.profileTests;
  process.exitCode = probe.available && t.failed === 0 && failedKernels === 0 && tt.failed === 0 && pt.failed === 0 && pr.failed === 0 ? 0 : 1;
}

main();
