#!/usr/bin/env node
// Benchmarks of the tuner. Needs the built packages:
//   npx tsc -b packages/tuner && node tools/bench/tuner.js [--skip-table] [--skip-solvers]
// 1. Tuning time of the full Mist space (goals: gpt3-6.7b on 1x8-l4, seq 2048, batch 128 < 10 s;
//    gpt3-22b on 4x8-a100-40gb, seq 4096, batch 512 < 60 s), with the candidates evaluated.
// 2. Inter-stage solvers: the bottleneck DP against the HiGHS MILP on the same searches.
// 3. Predicted speedup of Mist over the best Megatron-LM and DeepSpeed plans (same cost model) for
//    GPT-3 1.3B/2.7B/6.7B on 1x2/1x4/1x8 (batch 32/64/128), 13B on 2x8 (256), 22B on 4x8 (512), and
//    Llama-2 7B on 1x8 (128), 13B on 2x8 (256): on L4 at seq 2048 and A100-40GB at seq 4096, with
//    flash attention on and off.
'use strict';
const core = require('@mist/core');
const tuner = require('@mist/tuner');

const args = new Set(process.argv.slice(2));

/** A catalog model; GPT-3's learned position table is extended when seq exceeds it (as for seq 4096). */
function modelFor(name, seq) {
  const m = core.getModel(name);
  return m.positional === 'learned' && seq > m.maxSeq ? core.parseModelSpec({ ...m, maxSeq: seq }) : m;
}

function context(model, cluster, globalBatch, seq, flashAttention = true) {
  return {
    model: modelFor(model, seq),
    training: core.parseTrainingSpec({ globalBatch, seqLen: seq, flashAttention }),
    profile: core.builtinHardwareProfile(core.parseClusterShorthand(cluster)),
  };
}

const fmt = (x, d = 2) => (x === null || x === undefined ? '-' : x.toFixed(d));

async function tuningTimes() {
  console.log('Tuning time, full mist space (no baseline seeding), this machine:');
  /** @type {Array<[string, string, number, number, number]>} */
  const cases = [
    ['gpt3-6.7b', '1x8-l4', 128, 2048, 10],
    ['gpt3-22b', '4x8-a100-40gb', 512, 4096, 60],
  ];
  for (const [model, cluster, batch, seq, goal] of cases) {
    const res = await tuner.tune(context(model, cluster, batch, seq), { space: tuner.mistSpace(), clusterName: cluster });
    const p = res.plan;
    console.log(`  ${model} on ${cluster}, seq ${seq}, batch ${batch}: ${fmt(res.tuningTimeS)} s (goal < ${goal} s), ` +
      `${res.candidatesEvaluated} candidates evaluated, ${res.frontierPoints} Pareto points, ` +
      `iteration ${fmt(res.predicted && res.predicted.iterationTimeS, 3)} s, ${p ? p.stages.length : 0} stage(s), G=${p ? p.gradAccumSteps : '-'}`);
  }
}

async function solvers() {
  console.log('\nInter-stage solvers (whole tune, mist space, offload step 1/2 to keep the MILPs small):');
  /** @type {Array<[string, string, number, number]>} */
  const cases = [['gpt3-1.3b', '1x2-l4', 32, 2048], ['gpt3-1.3b', '1x4-l4', 64, 2048], ['gpt3-2.7b', '1x4-l4', 64, 2048], ['gpt3-2.7b', '1x8-l4', 64, 2048]];
  for (const [model, cluster, batch, seq] of cases) {
    const ctx = context(model, cluster, batch, seq);
    const out = {};
    for (const solver of /** @type {const} */ (['milp', 'dp'])) {
      const t0 = performance.now();
      const res = await tuner.tune(ctx, { space: tuner.mistSpace({ solver, offload: tuner.uniformOffloadLevels(0.5) }) });
      out[solver] = { s: (performance.now() - t0) / 1000, inter: res.interStageTimeS, it: res.predicted ? res.predicted.iterationTimeS : null };
    }
    console.log(`  ${model} on ${cluster}: inter-stage dp ${fmt(out.dp.inter, 3)} s, milp ${fmt(out.milp.inter, 3)} s ` +
      `(whole tune ${fmt(out.dp.s)} s / ${fmt(out.milp.s)} s), ` +
      `iteration dp ${fmt(out.dp.it, 6)} s / milp ${fmt(out.milp.it, 6)} s`);
  }
}

async function speedupTable() {
  const setups = [
    ['gpt3-1.3b', 1, 2, 32], ['gpt3-2.7b', 1, 4, 64], ['gpt3-6.7b', 1, 8, 128], ['gpt3-13b', 2, 8, 256], ['gpt3-22b', 4, 8, 512],
    ['llama2-7b', 1, 8, 128], ['llama2-13b', 2, 8, 256],
  ];
  const gpus = [['l4', 2048], ['a100-40gb', 4096]];
  const rows = [];
  const total = setups.length * gpus.length * 2;
  let n = 0;
  console.log(`\nSpeedup table (${total} runs; progress on stderr)`);
  for (const [gpu, seq] of gpus) {
    for (const flash of [true, false]) {
      for (const [model, nodes, gpn, batch] of setups) {
        const cluster = `${nodes}x${gpn}-${gpu}`;
        n++;
        process.stderr.write(`  [${n}/${total}] ${model} on ${cluster}, seq ${seq}, flash ${flash ? 'on' : 'off'} ...`);
        const t0 = performance.now();
        const cmp = await tuner.tuneWithBaselines(context(model, cluster, batch, seq, flash), { clusterName: cluster });
        const dt = (performance.now() - t0) / 1000;
        process.stderr.write(` ${dt.toFixed(1)} s\n`);
        const it = (r) => (r.predicted ? r.predicted.iterationTimeS : null);
        rows.push({
          model, cluster, seq, flash: flash ? 'on' : 'off', batch,
          mist: it(cmp.best), megatron: it(cmp.megatron), deepspeed: it(cmp.deepspeed),
          vsMegatron: cmp.speedup.megatron, vsDeepspeed: cmp.speedup.deepspeed,
          stages: cmp.best.plan ? cmp.best.plan.stages.length : 0, time: dt,
        });
      }
    }
  }
  const header = ['model', 'cluster', 'seq', 'flash', 'batch', 'mist s', 'megatron s', 'deepspeed s', 'vs megatron', 'vs deepspeed', 'mist stages', 'tune s'];
  const lines = rows.map((r) => [r.model, r.cluster, r.seq, r.flash, r.batch, fmt(r.mist, 3), fmt(r.megatron, 3), fmt(r.deepspeed, 3),
    r.vsMegatron === null ? '-' : `${fmt(r.vsMegatron)}x`, r.vsDeepspeed === null ? '-' : `${fmt(r.vsDeepspeed)}x`, r.stages, fmt(r.time, 1)].map(String));
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const row = (cells) => '| ' + cells.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
  console.log(row(header));
  console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
  for (const l of lines) console.log(row(l));
  const geo = (xs) => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);
  const vm = rows.map((r) => r.vsMegatron).filter((x) => x !== null);
  const vd = rows.map((r) => r.vsDeepspeed).filter((x) => x !== null);
  console.log(`geometric mean speedup: ${fmt(geo(vm))}x over megatron (${vm.length} cases), ${fmt(geo(vd))}x over deepspeed (${vd.length} cases; '-' = nothing fits)`);
}

(async () => {
  await tuningTimes();
  if (!args.has('--skip-solvers')) await solvers();
  if (!args.has('--skip-table')) await speedupTable();
})().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
