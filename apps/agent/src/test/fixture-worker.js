// TEST FIXTURE, not product code: a stand-in for the executor worker that speaks its IPC protocol
// (packages/executor/src/worker/protocol.ts), to exercise the agent's process management.
// MIST_FIXTURE_MODE selects what it does after joining the CPU rendezvous:
//   succeed (default)  report `run.steps` metrics (loss from the last stage) and exit 0
//   fail-rank-N        like succeed, but rank N reports a failure and exits 3 after step 1
//   hang               keep running until stopped (SIGTERM)
//   ignore-term        keep running and ignore SIGTERM (the agent must SIGKILL it)
//   rendezvous-only    join the rendezvous and exit 0 (launch-latency runs)
// MIST_FIXTURE_PRINT=LINESxBYTES makes rank 0 print LINES lines of BYTES bytes each on stdout first
// (an output burst: one 5 MB line, or 600 lines of 10 KB).
// The rendezvous check is real: every rank listens on its own peers[rank] address and connects to
// the next rank's, so a wrong or clashing address list fails the job.
'use strict';
const net = require('node:net');

const mode = process.env.MIST_FIXTURE_MODE || 'succeed';
const send = (m) => process.connected && process.send(m);
// An orphan must not outlive its agent.
process.on('disconnect', () => process.exit(1));
if (mode === 'ignore-term') process.on('SIGTERM', () => undefined);

function parse(addr) {
  const i = addr.lastIndexOf(':');
  return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
}

/** Listens on our address, connects to the next rank, and waits for the previous rank's hello. */
function joinRing(a) {
  const peers = a.rendezvous.peers;
  if (a.rendezvous.kind !== 'cpu' || peers.length < 2) return Promise.resolve();
  const me = parse(peers[a.rank]);
  const next = parse(peers[(a.rank + 1) % peers.length]);
  // Done when the previous rank's hello has arrived and ours has been delivered to the next rank.
  let pending = 2;
  return new Promise((resolve, reject) => {
    const oneDone = () => {
      if (--pending === 0) resolve();
    };
    const server = net.createServer((sock) => {
      sock.once('data', (buf) => {
        const from = Number(buf.toString());
        const expected = (a.rank - 1 + peers.length) % peers.length;
        sock.end();
        server.close();
        if (from !== expected) reject(new Error(`rank ${a.rank} got a hello from rank ${from}, expected ${expected}`));
        else oneDone();
      });
    });
    server.on('error', reject);
    server.listen(me.port, me.host, () => {
      const tryConnect = () => {
        const c = net.connect(next.port, next.host, () => c.end(String(a.rank)));
        c.on('error', () => setTimeout(tryConnect, 20));
        // The next rank closes its side after reading our hello.
        c.on('close', (hadError) => {
          if (!hadError) oneDone();
        });
      };
      tryConnect();
    });
  });
}

async function run(a) {
  send({ type: 'ready', rank: a.rank, pid: process.pid });
  await joinRing(a);
  console.log(`rank ${a.rank} joined the rendezvous of ${a.worldSize}`);
  const burst = /^(\d+)x(\d+)$/.exec(process.env.MIST_FIXTURE_PRINT || '');
  if (burst && a.rank === 0) {
    const line = 'x'.repeat(Number(burst[2]));
    for (let i = 0; i < Number(burst[1]); i++) process.stdout.write(`${line}\n`);
  }
  // Exit once stdout is flushed (a pipe is asynchronous), so the agent sees the line.
  if (mode === 'rendezvous-only') {
    // Exit once stdout is flushed (a pipe is asynchronous), so the agent sees the line.
    process.stdout.write('', () => process.exit(0));
    return;
  }
  if (mode === 'hang' || mode === 'ignore-term') {
    setInterval(() => undefined, 1000);
    return;
  }
  const last = a.plan.stages.length - 1;
  const stageOf = (rank) => {
    let base = 0;
    for (let s = 0; s < a.plan.stages.length; s++) {
      const n = a.plan.stages[s].mesh.nodes * a.plan.stages[s].mesh.gpusPerNode;
      if (rank < base + n) return s;
      base += n;
    }
    return last;
  };
  const failRank = mode.startsWith('fail-rank-') ? Number(mode.slice('fail-rank-'.length)) : -1;
  for (let step = 1; step <= a.run.steps; step++) {
    await new Promise((r) => setTimeout(r, 10));
    const loss = stageOf(a.rank) === last ? 10 / (step + 1) : null;
    send({ type: 'metrics', rank: a.rank, metrics: { step, loss, stepTimeS: 0.01, tokensPerS: 1000, computeS: 0.008, waitS: 0.002, peakBytes: { host: 1024 } } });
    if (a.run.checkpointDir && a.run.checkpointEvery > 0 && step % a.run.checkpointEvery === 0) {
      send({ type: 'checkpoint', rank: a.rank, step, dir: a.run.checkpointDir });
    }
    if (a.rank === failRank) {
      send({ type: 'failed', rank: a.rank, error: 'fixture failure on purpose' });
      setTimeout(() => process.exit(3), 10);
      return;
    }
  }
  send({ type: 'done', rank: a.rank, steps: a.run.steps, finalLoss: null });
  setTimeout(() => process.exit(0), 10);
}

process.on('message', (m) => {
  if (m && m.type === 'start') {
    run(m.assignment).catch((err) => {
      send({ type: 'failed', rank: m.assignment.rank, error: err.message });
      setTimeout(() => process.exit(2), 10);
    });
  }
});
