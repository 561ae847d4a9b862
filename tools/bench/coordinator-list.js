#!/usr/bin/env node
// Benchmark of the coordinator's job listing, with the BUILT packages (`npm run
// build`): 100,000 jobs are stored in a coordinator's state directory (straight into its SQLite
// store: 90% succeeded, 10% failed), a coordinator is started on it, and `ListJobs` is called page
// by page over gRPC on 127.0.0.1 (newest first, the CLI's client), through every page and with a
// state filter. Prints the start-up time and the ListJobs latency p50/p99 per page (goal: p99 < 50 ms).
//
// Usage: node tools/bench/coordinator-list.js [--jobs 100000] [--page 50]
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '../..');
const TOKEN = 'bench-list-token';
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

async function main() {
  const { StateStore, startCoordinator, CoordinatorConnection } = require('@mist/coordinator');
  const jobs = arg('jobs', 100000);
  const pageSize = arg('page', 50);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-bench-list-'));
  try {
    let t = performance.now();
    new StateStore(dir).close(); // the schema
    // One transaction for all rows (the store's own calls commit one job at a time).
    const Database = require(require.resolve('better-sqlite3', { paths: [path.join(root, 'packages/coordinator')] }));
    const db = new Database(path.join(dir, 'coordinator.sqlite'));
    const spec = JSON.stringify({ name: 'tiny', model: { name: 'gpt-tiny' }, trainingJson: '{"globalBatch":8,"seqLen":64}', run: { steps: 100 } });
    const start = Date.now() - jobs * 1000;
    const job = db.prepare(`INSERT INTO jobs (id, name, state, request_json, message, created_at, updated_at, started_at, ended_at, step, workers_json)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 100, '[{"rank":0},{"rank":1}]')`);
    const event = db.prepare('INSERT INTO job_events (job_id, at, state, message, attempt) VALUES (?, ?, ?, ?, 0)');
    db.transaction(() => {
      for (let i = 0; i < jobs; i++) {
        const id = `job-${i.toString(16).padStart(8, '0')}`;
        const at = start + i * 1000;
        const failed = i % 10 === 0;
        job.run(id, `bench-${i}`, failed ? 'failed' : 'succeeded', spec, failed ? 'rank 1 exited with code 3' : 'all 2 workers finished', at, at + 2, at + 1, at + 2);
        for (const [state, message] of [['queued', 'submitted'], ['placing', 'placing 2 ranks'], ['starting', '2 rank(s) assigned'], [failed ? 'failed' : 'succeeded', 'done']]) {
          event.run(id, at, state, message);
        }
      }
    })();
    db.close();
    console.log(`stored ${jobs} jobs in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    t = performance.now();
    const c = await startCoordinator({ listen: '127.0.0.1:0', stateDir: dir, token: TOKEN });
    console.log(`coordinator started on them in ${(performance.now() - t).toFixed(0)} ms`);
    const conn = new CoordinatorConnection(c.address, { token: TOKEN });
    try {
      await conn.listPage({ pageSize: 1 }); // connect
      const all = [];
      let token = '';
      let listed = 0;
      do {
        const s = performance.now();
        const page = await conn.listPage({ pageSize, pageToken: token });
        all.push(performance.now() - s);
        listed += page.jobs.length;
        token = page.nextPageToken;
      } while (token);
      const failed = [];
      token = '';
      for (let i = 0; i < 200; i++) {
        const s = performance.now();
        const page = await conn.listPage({ states: ['JOB_STATE_FAILED'], pageSize, pageToken: token });
        failed.push(performance.now() - s);
        token = page.nextPageToken;
        if (!token) break;
      }
      console.log(`ListJobs, ${pageSize} per page, every page of ${listed} jobs (${all.length} pages): p50 ${pct(all, 50).toFixed(2)} ms, p99 ${pct(all, 99).toFixed(2)} ms (goal p99 < 50 ms)`);
      console.log(`ListJobs filtered to FAILED (${failed.length} pages): p50 ${pct(failed, 50).toFixed(2)} ms, p99 ${pct(failed, 99).toFixed(2)} ms`);
      if (listed !== jobs) throw new Error(`listed ${listed} jobs, stored ${jobs}`);
    } finally {
      conn.close();
      await c.stop();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
