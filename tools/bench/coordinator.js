#!/usr/bin/env node
// Benchmark of the coordinator and agents, on 127.0.0.1, with the BUILT packages
// (`npx tsc -b apps/agent apps/coordinator`, or `npm run build`).
// 1. Launch latency: a coordinator and 8 agents x 4 CPU devices (in this process); a 32-rank job
//    (pp=4 x dp=8) whose workers are the agent's test fixture in `rendezvous-only` mode (they join
//    the CPU rendezvous ring, connecting to their neighbours, and exit). Prints the median over
//    10 jobs of the time from SubmitJob to every worker running (its `started` event) and to every
//    worker having joined the rendezvous (its log line).
// 2. Capacity: the coordinator in a child process; 500 simulated agents (AgentControl clients, one
//    connection each, in 2 child processes) register, hold their command stream and heartbeat every
//    second; a few CoordinatorConnection watchers follow a job (WatchJob) and poll ListAgents.
//    Prints the coordinator's CPU use over the window (process.cpuUsage, read over IPC) and the
//    heartbeat-to-record latency: the coordinator's recorded last-heartbeat time (ListAgents) minus
//    the time the simulated agent sent that heartbeat, p50/p99. A record is matched to the heartbeat
//    whose [send, response] interval contains it (the record is made before the reply is sent).
//
// Usage: node tools/bench/coordinator.js [--runs 10] [--agents 500] [--seconds 20] [--only launch|capacity]
'use strict';
const { fork } = require('node:child_process');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '../..');
const TOKEN = 'bench-token';
const FIXTURE = path.join(root, 'apps/agent/src/test/fixture-worker.js');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const median = (xs) => pct(xs, 50);

function loadBuilt() {
  try {
    return {
      coordinator: require('@mist/coordinator'),
      agent: require(path.join(root, 'apps/agent')),
      rpc: require('@mist/rpc'),
      core: require('@mist/core'),
    };
  } catch (err) {
    throw new Error(`build first (npx tsc -b apps/agent apps/coordinator): ${err.message}`);
  }
}

// ---- helpers ------------------------------------------------------------------------------------

/** `count` ports on 127.0.0.1 free now, below Linux's ephemeral range (32768+) where port-0 servers land. */
async function freePortRange(count, taken) {
  for (let tries = 0; tries < 1000; tries++) {
    const first = 10000 + Math.floor(Math.random() * (32000 - 10000 - count));
    if (taken.some((r) => first < r.first + r.count && r.first < first + count)) continue;
    let ok = true;
    for (let p = first; p < first + count && ok; p++) ok = await portFree(p);
    if (ok) {
      taken.push({ first, count });
      return { first, count };
    }
  }
  throw new Error('no free port range');
}
function portFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A pp x dp gpt-tiny plan (pp = 1, 2 or 4) over `nodes` hosts of `perNode` devices per stage. */
function tinyPlan(core, pp, nodes, perNode) {
  const dp = nodes * perNode;
  const per = 4 / pp; // gpt-tiny's 4 layers, split evenly
  const stage = (i) => ({
    layers: [i * per, (i + 1) * per - 1], mesh: { nodes, gpusPerNode: perNode }, microBatchSize: 1, dp, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 0,
    offload: { ...core.NO_OFFLOAD },
  });
  return { version: 1, model: 'gpt-tiny', seqLen: 64, globalBatch: dp, gradAccumSteps: 1, stages: Array.from({ length: pp }, (_, i) => stage(i)) };
}
function jobSpec(core, name, plan) {
  return {
    name, model: { name: 'gpt-tiny' }, trainingJson: JSON.stringify({ globalBatch: plan.globalBatch, seqLen: plan.seqLen }), planJson: JSON.stringify(plan),
    backend: /** @type {const} */ ('BACKEND_CPU'), run: { steps: 1, seed: 1 },
  };
}

// ---- 1. launch latency --------------------------------------------------------------------------

async function launchLatency(runs) {
  const { coordinator, agent, core } = loadBuilt();
  const coord = await coordinator.startCoordinator({ listen: '127.0.0.1:0', stateDir: ':memory:', token: TOKEN, stopGraceS: 2 });
  const agents = [];
  const taken = [];
  const conn = new coordinator.CoordinatorConnection(coord.address, { token: TOKEN });
  try {
    for (let i = 0; i < 8; i++) {
      const a = await agent.runAgent({
        coordinator: coord.address, token: TOKEN, deviceList: agent.cpuDevices(4), hostName: `bench-host-${i}`, address: '127.0.0.1',
        portRange: await freePortRange(64, taken), workerScript: FIXTURE, workerEnv: { MIST_FIXTURE_MODE: 'rendezvous-only' }, log: () => undefined,
      });
      agents.push(a);
      await a.registered;
    }
    // 4 stages x 8 replicas; each stage's replicas span 2 hosts x 4 devices.
    const spec = jobSpec(core, 'launch-latency', tinyPlan(core, 4, 2, 4));
    const started = [];
    const joined = [];
    for (let k = 0; k < runs; k++) {
      const t0 = performance.now();
      const job = await conn.submit(spec);
      let s = 0;
      let j = 0;
      let end = null;
      for await (const e of conn.watch(job.id, { replay: true, includeLogs: true })) {
        if (e.worker?.started && ++s === 32) started.push(performance.now() - t0);
        if (/joined the rendezvous/.test(e.worker?.log?.text ?? '') && ++j === 32) joined.push(performance.now() - t0);
        if (e.event === 'state') end = e.state;
      }
      if (s !== 32 || j !== 32 || end?.state !== 'JOB_STATE_SUCCEEDED') {
        throw new Error(`launch ${k}: ${s} started, ${j} joined, ended ${end?.state} (${end?.message})`);
      }
    }
    console.log(`launch latency, 8 agents x 4 CPU devices, a 32-rank job (pp=4 x dp=8), n=${runs}:`);
    console.log(`  SubmitJob -> all 32 workers running: median ${median(started).toFixed(0)} ms (min ${Math.min(...started).toFixed(0)}, max ${Math.max(...started).toFixed(0)})`);
    console.log(`  SubmitJob -> all 32 joined the rendezvous: median ${median(joined).toFixed(0)} ms (min ${Math.min(...joined).toFixed(0)}, max ${Math.max(...joined).toFixed(0)})`);
  } finally {
    conn.close();
    for (const a of agents) await a.stop(1);
    await coord.stop();
  }
}

// ---- 2. capacity --------------------------------------------------------------------------------

/** Child role: the coordinator alone in its process, answering CPU-use requests over IPC. */
async function coordinatorRole() {
  const { coordinator } = loadBuilt();
  const coord = await coordinator.startCoordinator({ listen: '127.0.0.1:0', stateDir: ':memory:', token: TOKEN, heartbeatTimeoutS: 10 });
  process.on('message', async (/** @type {{ type: string }} */ m) => {
    if (m.type === 'cpu') process.send({ type: 'cpu', usage: process.cpuUsage(), at: performance.now(), rssBytes: process.memoryUsage().rss });
    if (m.type === 'stop') {
      await coord.stop();
      process.exit(0);
    }
  });
  process.on('disconnect', () => process.exit(1));
  process.send({ type: 'ready', address: coord.address });
}

/** Child role: `n` simulated agents, each its own connection, registering and heartbeating every second. */
async function simRole() {
  const { rpc, agent } = loadBuilt();
  const { address, n, offset, seconds } = JSON.parse(process.env.MIST_BENCH_SIM);
  const sims = [];
  for (let i = 0; i < n; i++) {
    // A local subchannel pool: one TCP connection per agent, as separate hosts would have.
    const client = rpc.createClient('AgentControl', address, { token: TOKEN, grpcOptions: { 'grpc.use_local_subchannel_pool': 1 } });
    sims.push({ client, id: '', beats: [], stream: null, timer: null });
  }
  await Promise.all(sims.map(async (s, i) => {
    const res = await rpc.callUnary(s.client, 'register', {
      agentId: '', hostName: `sim-${offset + i}`, address: '127.0.0.1', devices: agent.cpuDevices(4),
      backends: [{ backend: 'BACKEND_CPU', available: true, reason: 'simulated' }], workerPorts: { first: 20000 + 8 * (offset + i), count: 8 },
      cpuCores: 4, hostMemoryBytes: 16 * 2 ** 30, version: agent.AGENT_VERSION,
    }, { deadline: rpc.deadlineIn(60) });
    s.id = res.agentId;
    s.stream = s.client.watchAssignments({ agentId: s.id });
    s.stream.on('data', () => undefined);
    s.stream.on('error', () => undefined);
  }));
  process.send({ type: 'registered', n });
  await new Promise((resolve) => process.once('message', resolve)); // 'go'

  let failures = 0;
  const until = performance.now() + seconds * 1000;
  const beat = async (s) => {
    const sent = Date.now();
    try {
      await rpc.callUnary(s.client, 'heartbeat', { agentId: s.id, workers: [] }, { deadline: rpc.deadlineIn(5) });
      s.beats.push([sent, Date.now()]);
    } catch {
      failures++;
    }
  };
  // Heartbeats spread evenly over each second, as independent agents' would be.
  const timers = sims.map((s, i) => setTimeout(() => {
    void beat(s);
    s.timer = setInterval(() => void beat(s), 1000);
  }, (1000 * i) / n));
  // Records the coordinator made of our agents' heartbeats, polled with ListAgents.
  const conn = new (loadBuilt().coordinator.CoordinatorConnection)(address, { token: TOKEN });
  const seen = new Map(sims.map((s) => [s.id, new Set()]));
  /** @type {Array<[string, number]>} */
  const records = [];
  while (performance.now() < until) {
    for (const a of await conn.agents()) {
      const set = seen.get(a.agentId);
      if (set && !set.has(a.lastHeartbeatTime)) {
        set.add(a.lastHeartbeatTime);
        records.push([a.agentId, a.lastHeartbeatTime * 1000]);
      }
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  for (const t of timers) clearTimeout(t);
  for (const s of sims) clearInterval(s.timer);
  const byId = new Map(sims.map((s) => [s.id, s]));
  const latencies = [];
  let unmatched = 0;
  for (const [id, at] of records) {
    const beats = byId.get(id).beats;
    // The record of the registration itself, before the first heartbeat, is no heartbeat's.
    if (beats.length === 0 || at < beats[0][0] - 1) continue;
    // Date.now() has millisecond resolution: allow 1 ms either side.
    const b = beats.find(([sent, back]) => sent - 1 <= at && at <= back + 1);
    if (b) latencies.push(at - b[0]);
    else unmatched++;
  }
  const rtts = sims.flatMap((s) => s.beats.map(([sent, back]) => back - sent));
  process.send({ type: 'result', latencies, rtts, beats: rtts.length, failures, unmatched });
  conn.close();
  for (const s of sims) {
    s.stream.cancel();
    s.client.close();
  }
  process.exit(0);
}

function once(child, type) {
  return new Promise((resolve, reject) => {
    const onMsg = (m) => {
      if (m.type === type) {
        child.off('message', onMsg);
        resolve(m);
      }
    };
    child.on('message', onMsg);
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before "${type}"`)));
  });
}

async function capacity(nAgents, seconds) {
  const { coordinator, core } = loadBuilt();
  const children = [];
  const spawn = (role, env = {}) => {
    const c = fork(__filename, ['--role', role], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(c);
    return c;
  };
  const conns = [];
  try {
    const coord = spawn('coordinator');
    const { address } = await once(coord, 'ready');
    const procs = 2;
    const sims = Array.from({ length: procs }, (_, p) => {
      const n = Math.floor(nAgents / procs) + (p < nAgents % procs ? 1 : 0);
      return spawn('sim', { MIST_BENCH_SIM: JSON.stringify({ address, n, offset: p * Math.ceil(nAgents / procs), seconds }) });
    });
    const t0 = performance.now();
    await Promise.all(sims.map((s) => once(s, 'registered')));
    const registerS = (performance.now() - t0) / 1000;

    // Watchers: a job placed on simulated agents (they never start it, so it stays in STARTING) followed by 4 WatchJob streams.
    const submitter = new coordinator.CoordinatorConnection(address, { token: TOKEN });
    conns.push(submitter);
    const job = await submitter.submit(jobSpec(core, 'watched', tinyPlan(core, 2, 1, 4)));
    let watchEvents = 0;
    const watchers = Array.from({ length: 4 }, () => {
      const c = new coordinator.CoordinatorConnection(address, { token: TOKEN });
      conns.push(c);
      return (async () => {
        try {
          for await (const _ of c.watch(job.id, { replay: true, includeLogs: true })) watchEvents++;
        } catch {
          // cancelled at the end
        }
      })();
    });

    coord.send({ type: 'cpu' });
    const before = await once(coord, 'cpu');
    const results = Promise.all(sims.map((s) => once(s, 'result')));
    for (const s of sims) s.send({ type: 'go' });
    const res = await results;
    coord.send({ type: 'cpu' });
    const after = await once(coord, 'cpu');
    await submitter.cancel(job.id, 'benchmark over');
    await Promise.all(watchers);

    const cpuS = (after.usage.user - before.usage.user + after.usage.system - before.usage.system) / 1e6;
    const wallS = (after.at - before.at) / 1000;
    const latencies = res.flatMap((r) => r.latencies);
    const rtts = res.flatMap((r) => r.rtts);
    const beats = res.reduce((s, r) => s + r.beats, 0);
    console.log(`coordinator capacity, ${nAgents} simulated agents heartbeating every 1 s + 4 WatchJob watchers, ${wallS.toFixed(1)} s window:`);
    console.log(`  registration of ${nAgents} agents: ${registerS.toFixed(2)} s`);
    console.log(`  coordinator CPU: ${cpuS.toFixed(2)} CPU-s over ${wallS.toFixed(1)} s = ${((100 * cpuS) / wallS).toFixed(1)}% of one core; RSS ${(after.rssBytes / 2 ** 20).toFixed(0)} MiB`);
    console.log(`  heartbeats: ${beats} answered (${(beats / wallS).toFixed(0)}/s), ${res.reduce((s, r) => s + r.failures, 0)} failed`);
    console.log(`  heartbeat -> record latency: p50 ${pct(latencies, 50).toFixed(0)} ms, p99 ${pct(latencies, 99).toFixed(0)} ms (n=${latencies.length}, ${res.reduce((s, r) => s + r.unmatched, 0)} records unmatched)`);
    console.log(`  heartbeat round trip: p50 ${pct(rtts, 50).toFixed(0)} ms, p99 ${pct(rtts, 99).toFixed(0)} ms`);
    console.log(`  (machine: ${os.cpus().length} cores, load generators on the same cores as the coordinator; ${watchEvents} watch events)`);
    coord.send({ type: 'stop' });
    await new Promise((r) => coord.once('exit', r));
  } finally {
    for (const c of conns) c.close();
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}

async function main() {
  const role = arg('role', null);
  if (role === 'coordinator') return coordinatorRole();
  if (role === 'sim') return simRole();
  const only = arg('only', null);
  if (!only || only === 'launch') await launchLatency(Number(arg('runs', 10)));
  if (!only || only === 'capacity') await capacity(Number(arg('agents', 500)), Number(arg('seconds', 20)));
  process.exit(0);
}
main().catch((err) => {
  console.error(err);
  process.exit(1);
});
