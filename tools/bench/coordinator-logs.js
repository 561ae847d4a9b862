#!/usr/bin/env node
// Benchmark of the coordinator's persisted worker logs, with the BUILT packages
// (`npm run build`): the coordinator's JobLogs store appends worker log lines of one job to
// `<state>/logs/JOB.log`, is dropped (as a coordinator restart drops it), and a new store on the same
// directory replays the job's events, as `mist logs JOB` does after a restart. Prints the append rate,
// the replay time and how many lines came back, then the same with a cap small enough to rotate,
// where the replay must say how many lines were dropped. (The end-to-end restart with real processes
// is apps/coordinator/src/reliability.test.ts.)
//
// Usage: node tools/bench/coordinator-logs.js [--lines 100000]
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};

function logLine(rank, i) {
  return { log: { rank, stream: 'LOG_STREAM_STDOUT', line: `step ${i} loss ${(5 - i / 1e5).toFixed(4)} tokens/s 18000 step_ms 42.0` } };
}

async function round(JobLogs, lines, capBytes) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-bench-logs-'));
  try {
    let logs = new JobLogs(path.join(dir, 'logs'), capBytes);
    let t = performance.now();
    for (let i = 0; i < lines; i++) logs.append('job-bench', logLine(i % 4, i));
    logs.close();
    const appendS = (performance.now() - t) / 1000;
    logs = new JobLogs(path.join(dir, 'logs'), capBytes); // the restarted coordinator's store
    t = performance.now();
    const snap = await logs.snapshot('job-bench');
    const replayMs = performance.now() - t;
    logs.close();
    const bytes = fs.readdirSync(path.join(dir, 'logs')).reduce((n, f) => n + fs.statSync(path.join(dir, 'logs', f)).size, 0);
    return { appendS, replayMs, kept: snap.events.length, dropped: snap.dropped, bytes };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const { JobLogs } = require('@mist/coordinator');
  const lines = arg('lines', 100000);
  const mb = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  for (const cap of [1 << 30, 4 << 20]) {
    const r = await round(JobLogs, lines, cap);
    const complete = r.kept + r.dropped === lines;
    console.log(`coordinator logs, cap ${mb(cap)}: ${lines} lines appended at ${Math.round(lines / r.appendS)} lines/s; ` +
      `after a restart ${r.kept} lines replayed in ${r.replayMs.toFixed(0)} ms, ${r.dropped} reported dropped ` +
      `(${complete ? 'every line accounted for' : 'LINES LOST'}), ${mb(r.bytes)} on disk`);
    if (!complete) process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
