// Test helper: forks ranks of test-worker.js, gathers their listen addresses through IPC (the
// coordinator's role) and connects them, waiting on messages only, never on timers.
'use strict';
const { fork } = require('node:child_process');
const path = require('node:path');

class WorkerProcess {
  constructor() {
    this.child = fork(path.join(__dirname, 'test-worker.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.nextId = 1;
    this.waiting = new Map();
    this.ready = new Promise((resolve, reject) => {
      this.child.once('error', reject);
      this.child.once('exit', (code, signal) => reject(new Error(`worker exited early (${code ?? signal})`)));
      this.child.on('message', (msg) => {
        if (msg.ready) return resolve();
        const entry = this.waiting.get(msg.id);
        if (!entry) return;
        this.waiting.delete(msg.id);
        if (msg.ok) entry.resolve(msg.value);
        else entry.reject(new Error(msg.error));
      });
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  request(cmd, args = {}) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.child.send({ id, cmd, ...args });
    });
  }

  run(scenario, args = {}) {
    return this.request('run', { scenario, args });
  }

  kill() {
    this.child.kill('SIGKILL');
    return this.exited;
  }
}

/** Starts `count` worker processes and waits until each has loaded the addon. */
async function startWorkers(count) {
  const workers = Array.from({ length: count }, () => new WorkerProcess());
  await Promise.all(workers.map((w) => w.ready));
  return workers;
}

/** Makes workers[0..worldSize) one CPU communicator: listen, gather addresses, connect. */
async function connect(workers, worldSize, timeoutMs = 10_000) {
  const ranks = workers.slice(0, worldSize);
  const peers = await Promise.all(ranks.map((w) => w.request('listen')));
  await Promise.all(ranks.map((w, rank) => w.request('connect', { rank, worldSize, peers, timeoutMs })));
  return ranks;
}

/** Runs one scenario on every rank at once; resolves with the per-rank results. */
function runAll(ranks, scenario, args = {}) {
  return Promise.all(ranks.map((w) => w.run(scenario, args)));
}

async function stopWorkers(workers) {
  await Promise.all(
    workers.map(async (w) => {
      if (w.child.exitCode !== null || w.child.signalCode !== null) return;
      w.child.disconnect();
      await w.exited;
    }),
  );
}

module.exports = { startWorkers, connect, runAll, stopWorkers };
