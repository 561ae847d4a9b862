#!/usr/bin/env node
// GPU check of the NCCL backend, run by hand on a machine with a CUDA GPU (never in CI):
//   node tools/device/nccl-check.js [--json]
// 1. backends() with the default loader search, then with MIST_NCCL_PATH / MIST_CUDA_PATH
//    pointing at the libraries found on the machine (pip's nvidia-* wheels, /usr/local/cuda).
// 2. One rank: unique id, communicator, every collective on device memory, checked on the host.
// 3. Two ranks (two processes) on the available devices: an all-reduce, or NCCL's refusal
//    when both ranks share one GPU, which must arrive as a rejected Promise, not a crash.
'use strict';
const { spawnSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const native = require(path.resolve(__dirname, '../../packages/native/dist/collectives/index.js'));

function findLibrary(names) {
  const roots = ['/usr/local/cuda/lib64', '/usr/lib/x86_64-linux-gnu', '/usr/local/lib', '/opt', '/usr/local/cuda'];
  for (const root of roots) {
    const out = spawnSync('find', [root, '-name', names[0], '-o', '-name', names[1] ?? names[0]], { encoding: 'utf8' });
    const hit = (out.stdout || '').split('\n').filter(Boolean)[0];
    if (hit) return path.dirname(hit);
  }
  return undefined;
}

function floats(n, f) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = f(i);
  return a;
}

function maxDiff(a, b) {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function oneRank() {
  const results = {};
  const comm = await native.createCommunicator({ backend: 'nccl', rank: 0, worldSize: 1, uniqueId: native.ncclGetUniqueId() });
  const n = 1 << 20;
  const host = floats(n, (i) => (i % 97) * 0.5);
  const buf = native.deviceAlloc(n * 4);
  await native.copyToDevice(buf, host);
  await comm.allReduce(buf, 'sum');
  const back = new Float32Array(n);
  await native.copyToHost(back, buf);
  results.allReduceMaxDiff = maxDiff(back, host);

  const out = native.deviceAlloc(n * 4);
  await comm.allGather(buf, out);
  await native.copyToHost(back, out);
  results.allGatherMaxDiff = maxDiff(back, host);

  await comm.reduceScatter(buf, out, 'max');
  await native.copyToHost(back, out);
  results.reduceScatterMaxDiff = maxDiff(back, host);

  await comm.broadcast(buf, 0);
  await comm.barrier();
  const recv = native.deviceAlloc(n * 4);
  await comm.group((g) => { g.allReduce(buf); g.allGather(buf, recv); });
  await native.copyToHost(back, recv);
  results.groupMaxDiff = maxDiff(back, host);

  const sub = await comm.split(0, 0);
  results.splitWorldSize = sub ? sub.worldSize : null;
  if (sub) await sub.destroy();

  // all-reduce timing (one rank: measures the call path and the kernel, not a link)
  const big = native.deviceAlloc(64 << 20);
  await comm.allReduce(big);
  const t0 = process.hrtime.bigint();
  const reps = 50;
  for (let i = 0; i < reps; i++) await comm.allReduce(big);
  results.allReduce64MiBMs = Number(process.hrtime.bigint() - t0) / 1e6 / reps;
  const t1 = process.hrtime.bigint();
  for (let i = 0; i < 200; i++) await comm.allReduce(buf);
  results.allReduce4MiBMs = Number(process.hrtime.bigint() - t1) / 1e6 / 200;
  for (const b of [buf, out, recv, big]) native.deviceFree(b);
  await comm.destroy();
  return results;
}

async function rankChild(rank, world, idHex, device) {
  const comm = await native.createCommunicator({ backend: 'nccl', rank, worldSize: world, uniqueId: Uint8Array.from(Buffer.from(idHex, 'hex')), device, timeoutMs: 20000 });
  const n = 1 << 16;
  const buf = native.deviceAlloc(n * 4, device);
  await native.copyToDevice(buf, floats(n, () => rank + 1));
  await comm.allReduce(buf, 'sum');
  const back = new Float32Array(n);
  await native.copyToHost(back, buf);
  await comm.destroy();
  return back[0];
}

async function twoRanks(devices) {
  const id = Buffer.from(native.ncclGetUniqueId()).toString('hex');
  const runs = [0, 1].map((rank) => new Promise((resolve) => {
    const child = spawn(process.execPath, [__filename, '--child', String(rank), id, String(devices > 1 ? rank : 0)], { env: process.env });
    let text = '';
    child.stdout.on('data', (d) => { text += d; });
    child.stderr.on('data', (d) => { text += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60000);
    child.on('exit', (code, signal) => { clearTimeout(timer); resolve({ rank, code, signal, output: text.trim().slice(-600) }); });
  }));
  return Promise.all(runs);
}

async function main() {
  if (process.argv[2] === '--child') {
    const [, , , rank, id, device] = process.argv;
    try {
      const v = await rankChild(Number(rank), 2, id, Number(device));
      console.log(JSON.stringify({ ok: true, value: v }));
      process.exit(0);
    } catch (e) {
      console.log(JSON.stringify({ ok: false, error: String(e && e.message) }));
      process.exit(3);
    }
  }
  const report = { defaultSearch: native.backends() };
  const nccl = report.defaultSearch.find((b) => b.name === 'nccl');
  if (!nccl.available && !process.env.MIST_NCCL_PATH) {
    const ncclDir = findLibrary(['libnccl.so.2', 'libnccl.so']);
    const cudaDir = findLibrary(['libcudart.so.13', 'libcudart.so.12']);
    report.found = { ncclDir, cudaDir };
    console.log(JSON.stringify(report, null, 1));
    if (!ncclDir) process.exit(1);
    const env = { ...process.env, MIST_NCCL_PATH: ncclDir, ...(cudaDir ? { MIST_CUDA_PATH: cudaDir } : {}) };
    const r = spawnSync(process.execPath, [__filename], { env, stdio: 'inherit' });
    process.exit(r.status ?? 1);
  }
  console.log(JSON.stringify(report, null, 1));
  if (!nccl.available) process.exit(1);
  try {
    console.log('one rank:', JSON.stringify(await oneRank()));
  } catch (e) {
    console.log('one rank FAILED:', e && e.stack);
  }
  console.log('two ranks:', JSON.stringify(await twoRanks(nccl.devices ?? 1), null, 1));
}

main().catch((e) => { console.error(e); process.exit(1); });
