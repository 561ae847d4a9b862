#!/usr/bin/env node
// Tuner scaling: the full Mist space for gpt3-175b (global batch 1536, seq
// 2048: GPT-3 paper, Brown et al. 2020, Table 2.1) and llama3-405b (global batch 2048, seq 8192:
// 16M tokens, Llama 3 paper, Dubey et al. 2024, Sec. 3.4.1) on a100-80gb clusters of 8 to 16,384
// GPUs (8 per node). Per size: wall seconds, candidates evaluated (analyzer rows), candidates/s,
// the plan's predicted iteration time, and whether the search completed (optimal) or stopped at
// the per-case time limit with its proven gap. Then the issue's before/after case (gpt3-175b on
// 64x8-a100-80gb, 663 s before) and re-tunes from the cache of a first tune (another global batch or node count).
//
//   node tools/bench/tuner-scale.js [--src] [--limit S] [--only MODEL] [--sizes 8,64,...] [--retune-only]
// (default sizes: every power of two from 8 to 16,384 GPUs; the goals of 1,024 and 16,384 are checked)
// --src runs from the TypeScript sources (no build needed); otherwise packages/*/dist.
// Each case runs in its own process with `timeLimitS` = --limit (default 60) and a hard kill at
// limit + 120 s, so the benchmark can never run for hours.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};

/** One tune in this process (the child side); prints one JSON line. */
async function child(spec) {
  if (spec.src) require(path.join(root, 'tools/scripts/ts-register.js'));
  const core = require('@mist/core');
  const tuner = require('@mist/tuner');
  const m = core.getModel(spec.model);
  const model = m.positional === 'learned' && spec.seq > m.maxSeq ? core.parseModelSpec({ ...m, maxSeq: spec.seq }) : m;
  const ctx = (batch) => ({
    model,
    training: core.parseTrainingSpec({ globalBatch: batch, seqLen: spec.seq, flashAttention: true }),
    profile: core.builtinHardwareProfile(core.parseClusterShorthand(spec.cluster)),
  });
  const runs = [];
  for (const batch of spec.batches) {
    const t0 = performance.now();
    const res = await tuner.tune(ctx(batch), {
      space: tuner.mistSpace(), clusterName: spec.cluster, timeLimitS: spec.limit, cacheDir: spec.cacheDir,
    });
    const wall = (performance.now() - t0) / 1000;
    runs.push({
      batch, wall, candidates: res.candidatesEvaluated, iteration: res.predicted ? res.predicted.iterationTimeS : null,
      stages: res.plan ? res.plan.stages.length : 0, G: res.plan ? res.plan.gradAccumSteps : null,
      stoppedBy: res.stoppedBy ?? null, gap: res.gap ?? null, cache: res.cache ?? null,
    });
  }
  process.stdout.write(JSON.stringify(runs) + '\n');
}

function runCase(spec) {
  const res = spawnSync(process.execPath, [__filename, '--child', JSON.stringify(spec)], {
    cwd: root, encoding: 'utf8', timeout: (spec.limit * spec.batches.length + 120) * 1000, maxBuffer: 1 << 24,
  });
  const line = (res.stdout || '').trim().split('\n').pop();
  if (res.status !== 0 || !line) {
    const err = (res.stderr || '').split('\n').find((l) => /Error|error/.test(l)) || (res.stderr || '').trim().split('\n')[0];
    return { error: res.error ? res.error.message : `exit ${res.status}: ${err}` };
  }
  return { runs: JSON.parse(line) };
}

const fmt = (x, d = 2) => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));
const outcome = (r) => (r.stoppedBy ? `stopped (${r.stoppedBy}), gap ${r.gap && r.gap.relative !== null ? (100 * r.gap.relative).toFixed(1) + ' %' : '-'}` : 'optimal');
const describe = (r) => `${fmt(r.wall, 1).padStart(6)} s  ${String(r.candidates).padStart(11)} cand  ${fmt(r.candidates / r.wall / 1e6, 2).padStart(5)} M/s  ` +
  `iter ${fmt(r.iteration, 3).padStart(8)} s (${r.stages} st, G=${r.G ?? '-'})  ${outcome(r)}`;

function main() {
  const src = flag('--src');
  const limit = Number(opt('--limit', '60'));
  const only = opt('--only', null);
  // The scaling curve: every power of two from 8 to 16,384 GPUs.
  const sizes = opt('--sizes', '8,16,32,64,128,256,512,1024,2048,4096,8192,16384').split(',').map(Number);
  const retuneOnly = flag('--retune-only');
  const models = [['gpt3-175b', 1536, 2048], ['llama3-405b', 2048, 8192]].filter(([m]) => !retuneOnly && (!only || m === only));
  console.log(`Tuner scaling, full mist space, a100-80gb (8 GPUs/node), ${os.cpus().length} CPU(s), load average ` +
    `${os.loadavg()[0].toFixed(2)} at start, time limit ${limit} s per case:`);
  // Goals: full space, 1,024 GPUs under 10 s and 16,384 GPUs under 60 s, completed (optimal).
  const goals = [[1024, 10], [16384, 60]];
  const verdicts = [];
  for (const [model, batch, seq] of models) {
    console.log(`${model}, global batch ${batch}, seq ${seq}:`);
    for (const gpus of sizes) {
      const cluster = `${Math.max(1, gpus / 8)}x${Math.min(8, gpus)}-a100-80gb`;
      const r = runCase({ src, model, seq, batches: [batch], cluster, limit });
      console.log(`  ${String(gpus).padStart(5)} GPUs (${cluster.padEnd(17)}): ${r.error ? 'failed: ' + r.error : describe(r.runs[0])}`);
      const goal = goals.find(([g]) => g === gpus);
      if (goal) {
        const ok = !r.error && !r.runs[0].stoppedBy && r.runs[0].wall < goal[1];
        verdicts.push(`${model} on ${gpus} GPUs: ${r.error ? 'failed' : `${fmt(r.runs[0].wall, 1)} s`} (goal < ${goal[1]} s, complete): ${ok ? 'met' : 'NOT met'}`);
      }
    }
  }
  if (verdicts.length > 0) console.log(`Goals:\n  ${verdicts.join('\n  ')}`);
  if (!only || only === 'gpt3-175b') {
    if (!retuneOnly) {
      console.log('\nBefore/after: gpt3-175b on 64x8-a100-80gb, batch 1536, seq 2048 (663 s and 329.45M candidates before, review 2026-12-04):');
      const r = runCase({ src, model: 'gpt3-175b', seq: 2048, batches: [1536], cluster: '64x8-a100-80gb', limit: Math.max(limit, 300) });
      console.log(`  ${r.error ? 'failed: ' + r.error : describe(r.runs[0])}`);
    }
    // A re-tune is a new process (as `mist tune` is): the first tune writes the cache, and each change
    // runs on a copy of that cache, so that every re-tune sees only what the first one left.
    console.log('\nRe-tune from the cache of a first tune (gpt3-175b, 64x8-a100-80gb, seq 2048, batch 1536), each in a new process:');
    const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-bench-cache-'));
    const base = { src, model: 'gpt3-175b', seq: 2048, limit: Math.max(limit, 600) };
    const first = runCase({ ...base, batches: [1536], cluster: '64x8-a100-80gb', cacheDir });
    if (first.error) console.log(`  first tune failed: ${first.error}`);
    else {
      const f = first.runs[0];
      console.log(`  first tune, batch 1536:            ${describe(f)}`);
      const changes = [[768, '64x8-a100-80gb'], [1024, '64x8-a100-80gb'], [2048, '64x8-a100-80gb'], [3072, '64x8-a100-80gb'],
        [1536, '32x8-a100-80gb'], [1536, '128x8-a100-80gb']];
      const speedups = [];
      for (const [batch, cluster] of changes) {
        const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-bench-cache-'));
        fs.cpSync(cacheDir, copy, { recursive: true });
        const again = runCase({ ...base, batches: [batch], cluster, cacheDir: copy });
        fs.rmSync(copy, { recursive: true, force: true });
        const cold = runCase({ ...base, batches: [batch], cluster });
        const label = `batch ${batch}${cluster === '64x8-a100-80gb' ? '' : `, ${cluster}`}`;
        if (again.error || cold.error) {
          console.log(`  re-tune, ${label}: failed: ${again.error || cold.error}`);
          continue;
        }
        const a = again.runs[0];
        const c = cold.runs[0];
        const same = a.iteration !== null && c.iteration !== null && Math.abs(a.iteration - c.iteration) <= 1e-9 * c.iteration;
        speedups.push({ ratio: f.wall / a.wall, batchChange: cluster === '64x8-a100-80gb' });
        console.log(`  re-tune, ${label.padEnd(24)} ${describe(a)}; ${fmt(f.wall / a.wall, 1)}x faster than the first tune, ` +
          `${fmt(c.wall / a.wall, 1)}x than a tune without cache (${fmt(c.wall, 1)} s, ${same ? 'same plan time' : 'DIFFERENT plan time'})` +
          (a.cache ? `; ${a.cache.boundsHits} group bounds and ${a.cache.hits} frontiers reused, ${a.cache.carriedPlan ? 'earlier plan carried over' : 'no plan carried over'}` : ''));
      }
      if (speedups.length > 0) {
        const sorted = speedups.map((x) => x.ratio).sort((x, y) => x - y);
        const batch = speedups.filter((x) => x.batchChange).map((x) => x.ratio);
        console.log(`  speed-up of a re-tune over the first tune: least ${fmt(sorted[0], 1)}x, median ${fmt(sorted[Math.floor(sorted.length / 2)], 1)}x; ` +
          `goal >= 5x for a global-batch change: ${batch.filter((r) => r >= 5).length} of ${batch.length} batch changes (least ${fmt(Math.min(...batch), 1)}x)`);
      }
    }
    fs.rmSync(cacheDir, { recursive: true, force: true });
  }
}

if (argv[0] === '--child') {
  child(JSON.parse(argv[1])).catch((err) => {
    console.error(err && err.stack ? err.stack : err);
    process.exitCode = 1;
  });
} else {
  main();
}
