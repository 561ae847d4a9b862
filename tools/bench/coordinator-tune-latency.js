#!/usr/bin/env node
// Benchmark of the coordinator's responsiveness while it tunes, with the BUILT
// packages (`npm run build`): a coordinator on 127.0.0.1, 64 simulated agents of 8 A100-80GB each
// (AgentControl clients that register and heartbeat), and a job asking to tune gpt3-175b
// (global batch 1536, sequence 2048) for that 64x8 cluster with a time limit. While the job is in
// TUNING, a client calls GetJob and ListAgents back to back; prints how long SubmitJob took and the
// RPC latency p50/p99 (goal p99 < 100 ms), then cancels the tuning.
//
// Usage: node tools/bench/coordinator-tune-latency.js [--seconds 20]
'use strict';

const TOKEN = 'bench-tune-token';
const i = process.argv.indexOf('--seconds');
const seconds = i >= 0 ? Number(process.argv[i + 1]) : 20;
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

async function main() {
  const { startCoordinator, CoordinatorConnection } = require('@mist/coordinator');
  const { callUnary, createClient } = require('@mist/rpc');
  const c = await startCoordinator({ listen: '127.0.0.1:0', stateDir: ':memory:', token: TOKEN, heartbeatTimeoutS: 10 });
  const agents = [];
  try {
    for (let h = 0; h < 64; h++) {
      const client = createClient('AgentControl', c.address, { token: TOKEN });
      const devices = Array.from({ length: 8 }, (_, index) => ({ index, kind: /** @type {const} */ ('DEVICE_KIND_CUDA'), name: 'NVIDIA A100-SXM4-80GB', gpu: 'a100-80gb', memoryBytes: 80e9 }));
      const res = await callUnary(client, 'register', {
        hostName: `a100-${h}`, address: '127.0.0.1', devices, backends: [{ backend: 'BACKEND_NCCL', available: true }],
        workerPorts: { first: 40000, count: 100 }, version: '0.1.0',
      });
      agents.push({ client, id: res.agentId });
    }
    const beat = setInterval(() => {
      for (const a of agents) callUnary(a.client, 'heartbeat', { agentId: a.id, workers: [] }).catch(() => undefined);
    }, 2000);
    const conn = new CoordinatorConnection(c.address, { token: TOKEN });
    try {
      let t = performance.now();
      const job = await conn.submit({
        name: 'big-tune', model: { name: 'gpt3-175b' }, trainingJson: JSON.stringify({ globalBatch: 1536, seqLen: 2048 }),
        tune: { timeLimit: seconds + 30 }, cluster: { shorthand: '64x8-a100-80gb' }, run: { steps: 1 },
      });
      const submitMs = performance.now() - t;
      const latencies = [];
      let progress = 0;
      const watch = (async () => {
        for await (const e of conn.watch(job.id, { replay: false })) if (e.tuneProgress) progress++;
      })().catch(() => undefined);
      const until = performance.now() + seconds * 1000;
      let state = job.state;
      while (performance.now() < until && state === 'JOB_STATE_TUNING') {
        t = performance.now();
        state = (await conn.get(job.id)).state;
        latencies.push(performance.now() - t);
        t = performance.now();
        await conn.agents();
        latencies.push(performance.now() - t);
        await new Promise((r) => setTimeout(r, 20));
      }
      console.log(`SubmitJob of the tune answered in ${submitMs.toFixed(1)} ms (state ${job.state})`);
      console.log(`RPC latency while tuning (${latencies.length} GetJob/ListAgents calls over ${seconds} s, ${progress} progress events): ` +
        `p50 ${pct(latencies, 50).toFixed(2)} ms, p99 ${pct(latencies, 99).toFixed(2)} ms, max ${Math.max(...latencies).toFixed(1)} ms (goal p99 < 100 ms)`);
      console.log(`job state at the end: ${state}`);
      await conn.cancel(job.id, 'benchmark done');
      await watch;
    } finally {
      clearInterval(beat);
      conn.close();
    }
  } finally {
    for (const a of agents) a.client.close();
    await c.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
