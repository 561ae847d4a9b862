#!/usr/bin/env node
// Benchmark: time to detect an impostor. A coordinator (in this process, BUILT
// packages: `npm run build`) and a real `mist agent` process on 127.0.0.1 with 2 CPU devices; an
// impostor (raw AgentControl client holding the shared token) then tries, N times each, to
// register under the live agent's id and to heartbeat as it. Prints p50/p99 of the time from the
// impostor's call to the coordinator's refusal, and checks that the real agent never lost its id.
//
// Usage: node tools/bench/agent-impostor.js [--attempts 200]
'use strict';
const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');

const root = path.resolve(__dirname, '../..');
const TOKEN = 'bench-impostor-token';
const attempts = Number((process.argv.includes('--attempts') && process.argv[process.argv.indexOf('--attempts') + 1]) || 200);
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

async function main() {
  const { startCoordinator, CoordinatorConnection } = require('@mist/coordinator');
  const { callUnary, createClient, isRpcError } = require('@mist/rpc');
  const coord = await startCoordinator({ listen: '127.0.0.1:0', stateDir: ':memory:', token: TOKEN, stopGraceS: 1 });
  const agent = spawn(process.execPath, [path.join(root, 'apps/agent/dist/main.js'), '--coordinator', coord.address, '--cpu-devices', '2',
    '--address', '127.0.0.1', '--host-name', 'real', '--worker-ports', '21000:16', '--worker-script', path.join(root, 'apps/agent/src/test/fixture-worker.js')],
  { env: { ...process.env, MIST_TOKEN: TOKEN }, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const id = await new Promise((resolve, reject) => {
      readline.createInterface({ input: agent.stdout }).on('line', (l) => {
        const m = /^agent (\S+) registered$/.exec(l);
        if (m) resolve(m[1]);
      });
      agent.once('exit', (code) => reject(new Error(`the agent exited (${code})`)));
    });
    const impostor = createClient('AgentControl', coord.address, { token: TOKEN });
    const reg = {
      agentId: id, hostName: 'evil', address: '10.66.66.66', devices: [{ index: 0, kind: 'DEVICE_KIND_CPU', name: 'cpu', gpu: '', memoryBytes: 1e9 }],
      backends: [], workerPorts: { first: 40000, count: 10 }, version: '0.1.0',
    };
    const timeRefusal = async (method, request) => {
      const t0 = performance.now();
      const err = await callUnary(impostor, method, request).then(() => null, (e) => e);
      if (!isRpcError(err)) throw new Error(`the impostor's ${method} was accepted`);
      return performance.now() - t0;
    };
    const register = [], heartbeat = [];
    for (let i = 0; i < attempts; i++) {
      register.push(await timeRefusal('register', reg));
      heartbeat.push(await timeRefusal('heartbeat', { agentId: id, workers: [] }));
    }
    impostor.close();
    const conn = new CoordinatorConnection(coord.address, { token: TOKEN });
    const agents = await conn.agents();
    conn.close();
    if (agents.length !== 1 || agents[0].agentId !== id || agents[0].address !== '127.0.0.1') throw new Error(`the agent list changed: ${JSON.stringify(agents.map((a) => [a.agentId, a.address]))}`);
    const f = (xs) => `p50 ${pct(xs, 50).toFixed(2)} ms, p99 ${pct(xs, 99).toFixed(2)} ms`;
    console.log(`time to detect an impostor (${attempts} attempts each, refusal latency on 127.0.0.1):`);
    console.log(`  register under a live agent's id: ${f(register)} (ALREADY_EXISTS)`);
    console.log(`  heartbeat without its session credential: ${f(heartbeat)} (UNAUTHENTICATED)`);
    console.log(`  the real agent kept its id and address: ${id} at ${agents[0].address}`);
  } finally {
    agent.kill('SIGTERM');
    await new Promise((r) => (agent.exitCode !== null ? r() : agent.once('exit', r)));
    await coord.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
