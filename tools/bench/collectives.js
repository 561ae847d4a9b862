#!/usr/bin/env node
// Benchmark of the CPU backend's ring all-reduce (packages/native, built: run `npm run build`).
// Forks 2 and then 4 local ranks (one process each, 127.0.0.1), all-reduces float32 buffers of
// 1 MB .. 64 MB and prints, per size, the time per call, the bus bandwidth
// (size * 2(n-1)/n / time, the figure nccl-tests reports) and the bytes each rank put on the wire
// divided by the buffer size, which a bandwidth-optimal ring keeps at 2(n-1)/n.
//
// Usage: node tools/bench/collectives.js [--ranks 2,4] [--max-mb 64]
'use strict';
const { fork } = require('node:child_process');

const MB = 1024 * 1024;

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

function sizesUpTo(maxMb) {
  const sizes = [];
  for (let mb = 1; mb <= maxMb; mb *= 2) sizes.push(mb * MB);
  return sizes;
}

// Enough calls that small sizes are not dominated by timer noise, at least 3 for the largest.
function iterationsFor(bytes) {
  return Math.max(3, Math.min(40, Math.floor((128 * MB) / bytes)));
}

// ---- one rank (child process) ---------------------------------------------------------------
async function runRank() {
  const native = require('@mist/native');
  const listener = await native.listenCpu({ host: '127.0.0.1', port: 0 });
  process.send({ address: listener.address });
  const { rank, worldSize, peers, sizes } = await new Promise((resolve) => process.once('message', resolve));
  const comm = await native.createCommunicator({ backend: 'cpu', rank, worldSize, peers, listener });
  const results = [];
  for (const bytes of sizes) {
    const buf = new Float32Array(bytes / 4).fill(rank + 1);
    const iterations = iterationsFor(bytes);
    await comm.allReduce(buf, 'sum'); // warm-up: page faults, socket buffers
    await comm.barrier();
    const before = comm.trafficStats();
    const start = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) await comm.allReduce(buf, 'sum');
    const seconds = Number(process.hrtime.bigint() - start) / 1e9 / iterations;
    const after = comm.trafficStats();
    results.push({ bytes, seconds, sentPerCall: (after.bytesSent - before.bytesSent) / iterations });
  }
  await comm.destroy();
  process.send({ results });
  process.disconnect();
}

// ---- coordinator (parent process) -----------------------------------------------------------
function nextMessage(child) {
  return new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (code) => reject(new Error(`rank exited with code ${code}`)));
  });
}

async function measure(worldSize, sizes) {
  const children = Array.from({ length: worldSize }, () => fork(__filename, ['--rank'], { stdio: 'inherit' }));
  const peers = (await Promise.all(children.map(nextMessage))).map((m) => m.address);
  const done = children.map(nextMessage);
  children.forEach((child, rank) => child.send({ rank, worldSize, peers, sizes }));
  const perRank = (await Promise.all(done)).map((m) => m.results);
  // A collective is as slow as its slowest rank.
  return sizes.map((bytes, i) => ({
    bytes,
    seconds: Math.max(...perRank.map((r) => r[i].seconds)),
    sentPerCall: Math.max(...perRank.map((r) => r[i].sentPerCall)),
  }));
}

async function main() {
  const rankCounts = arg('ranks', '2,4').split(',').map(Number);
  const sizes = sizesUpTo(Number(arg('max-mb', '64')));
  console.log('ring all-reduce, CPU/TCP backend, local ranks on 127.0.0.1 (float32, sum)');
  for (const n of rankCounts) {
    const ideal = (2 * (n - 1)) / n;
    console.log(`\n${n} ranks (ideal bytes sent per rank / buffer = 2(n-1)/n = ${ideal.toFixed(3)})`);
    console.log('    size   time/call   bus bandwidth   sent/buffer');
    for (const r of await measure(n, sizes)) {
      const busGBs = (r.bytes * ideal) / r.seconds / 1e9;
      console.log(
        `${String(r.bytes / MB).padStart(5)} MB ${(r.seconds * 1e3).toFixed(2).padStart(8)} ms ${busGBs.toFixed(2).padStart(9)} GB/s ${(r.sentPerCall / r.bytes).toFixed(4).padStart(13)}`,
      );
    }
  }
}

if (process.argv.includes('--rank')) {
  runRank().catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
