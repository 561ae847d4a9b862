#!/usr/bin/env node
// Closed loop on this machine (issue 9): profile this host, predict the step time of gpt-tiny plans
// with the analyzer from that profile, run the same plans with the executor on the CPU backend
// (launchLocal: one worker process per device on 127.0.0.1), and compare. Passes when every
// prediction is within 20% of the measured step time and the plans rank the same by predicted and
// by measured time. Not in CI: timings are noisy. Run by `npm run validate`.
//
//   node tools/validate/closed-loop.js [--profile host.json] [--full] [--steps N] [--threads N]
//
// Plans: pp in {1, 2} x dp in {1, 2} x checkpointing off / all layers, tp = 1, ZeRO 0, no offload.
// Every worker runs --threads kernel threads (MIST_NUM_THREADS), as a device of the profile does.
//
// Oversubscription: the profile measures one device with --threads cores to itself. A plan whose
// workers want more threads than the host has cores (devices x threads > os.cpus().length) time-
// slices them, so the prediction uses a profile whose compute is slower by
//   share = devices x threads / cores   (when > 1)
// (matmul/op table seconds and kernel launch times x share, peak FLOP/s and memory bandwidth /
// share). Communication is left as measured: the profile's collectives already ran between
// processes on this host. This is an upper bound on the slowdown: a pipeline's idle ranks free their
// core for the others.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');

const root = path.resolve(__dirname, '../..');
const TOLERANCE = 0.2;

function fail(message) {
  console.error(`closed-loop: ${message}`);
  process.exit(1);
}

const { values } = parseArgs({
  options: {
    profile: { type: 'string' },
    full: { type: 'boolean' },
    steps: { type: 'string', default: '12' },
    threads: { type: 'string', default: '1' },
    force: { type: 'boolean' },
  },
});
const steps = Number(values.steps);
const threads = Number(values.threads);
const WARMUP_STEPS = 2;
if (!(steps > WARMUP_STEPS + 2)) fail(`--steps must be > ${WARMUP_STEPS + 2}`);

// The executor's workers run the compiled packages: build what the loop uses.
try {
  execFileSync(path.join(root, 'node_modules/.bin/tsc'), ['-b', 'packages/executor', 'packages/profiler', 'packages/analyzer'], { cwd: root, stdio: 'inherit' });
} catch {
  fail('the build failed (tsc -b packages/executor packages/profiler packages/analyzer); fix it first');
}
const core = require('@mist/core');
const { estimatePlan } = require('@mist/analyzer');
const { profileHost } = require('@mist/profiler');
const executor = require('@mist/executor');
if (typeof executor.launchLocal !== 'function') {
  fail('@mist/executor does not export launchLocal yet (issue 7); the closed loop needs it to run plans');
}

const model = core.getModel('gpt-tiny');
const SEQ = 64, GLOBAL_BATCH = 16, G = 4;
const training = core.parseTrainingSpec({ globalBatch: GLOBAL_BATCH, seqLen: SEQ, paramDtype: 'fp32', computeDtype: 'fp32', flashAttention: true });

function makePlan(pp, dp, ckpt) {
  const per = model.layers / pp;
  const stages = Array.from({ length: pp }, (_, i) => ({
    layers: [i * per, (i + 1) * per - 1], mesh: { nodes: 1, gpusPerNode: dp }, microBatchSize: GLOBAL_BATCH / (dp * G), dp, tp: 1,
    sequenceParallel: false, ckptLayers: ckpt ? per : 0, zero: 0, offload: core.NO_OFFLOAD,
  }));
  return core.parsePlan({ version: 1, model: model.name, seqLen: SEQ, globalBatch: GLOBAL_BATCH, gradAccumSteps: G, stages }, { model });
}

/** The 1-minute load average and the core count: other processes on this host slow every measurement. */
function loadAvg() {
  return `${os.loadavg()[0].toFixed(2)} on ${os.cpus().length} cores`;
}

/** The profile as seen by each of `devices` workers of `threads` threads sharing this host's cores (see the header). */
function sharedCoresProfile(profile, devices, cores) {
  const share = (devices * threads) / cores;
  if (share <= 1) return { profile, share: 1 };
  const c = profile.compute;
  return {
    share,
    profile: core.parseHardwareProfile({
      ...profile,
      compute: { ...c, peakFlops: c.peakFlops / share, memoryBandwidth: c.memoryBandwidth / share, kernelLaunch: c.kernelLaunch * share },
      matmulTable: profile.matmulTable?.map((m) => ({ ...m, seconds: m.seconds * share })),
      opTable: profile.opTable?.map((o) => ({ ...o, seconds: o.seconds * share })),
    }),
  };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Kendall's tau between two orderings of the same items (1 = identical ranking). */
function kendallTau(a, b) {
  let concordant = 0, discordant = 0;
  for (let i = 0; i < a.length; i++) {
    for (let j = i + 1; j < a.length; j++) {
      const s = Math.sign(a[i] - a[j]) * Math.sign(b[i] - b[j]);
      if (s > 0) concordant++;
      else if (s < 0) discordant++;
    }
  }
  return (concordant - discordant) / ((a.length * (a.length - 1)) / 2);
}

async function main() {
  console.log(`load average at start: ${loadAvg()}`);
  let profile;
  if (values.profile) {
    profile = core.loadHardwareProfile(values.profile);
    core.checkProfileMachine(profile, { force: values.force === true });
    console.log(`profile: ${values.profile} (${profile.machineKind})`);
  } else {
    const t0 = Date.now();
    profile = await profileHost({ quick: !values.full, threadsPerDevice: threads });
    const file = path.join(os.tmpdir(), `mist-closed-loop-profile-${process.pid}.json`);
    fs.writeFileSync(file, JSON.stringify(profile, null, 2));
    console.log(`profiled this host in ${((Date.now() - t0) / 1000).toFixed(1)} s (${profile.machineKind}), written to ${file}`);
  }
  const plans = [];
  for (const pp of [1, 2]) for (const dp of [1, 2]) for (const ckpt of [false, true]) plans.push({ name: `pp${pp} dp${dp} ckpt ${ckpt ? 'on ' : 'off'}`, plan: makePlan(pp, dp, ckpt) });
  const maxDevices = Math.max(...plans.map((p) => p.plan.stages.length * p.plan.stages[0].dp));
  const cores = os.cpus().length;
  if (maxDevices * threads > cores) {
    console.log(`warning: the largest plan runs ${maxDevices} workers x ${threads} thread(s) on ${cores} cores: oversubscribed, ` +
      'its workers share cores: predictions scale compute by devices x threads / cores where that exceeds 1');
  }
  // The analyzer checks the plan's devices against the profile's cluster: size it for the largest plan.
  const cluster = { ...profile.cluster, gpusPerNode: Math.max(profile.cluster.gpusPerNode, maxDevices) };
  const ctxProfile = core.parseHardwareProfile({ ...profile, cluster });

  process.env.MIST_NUM_THREADS = String(threads);
  const rows = [];
  for (const p of plans) {
    const devices = p.plan.stages.reduce((n, st) => n + st.dp * st.tp, 0);
    const shared = sharedCoresProfile(ctxProfile, devices, cores);
    const est = estimatePlan(p.plan, { model, training, profile: shared.profile });
    const predicted = est.iterationTimeS;
    const r = await executor.launchLocal({
      plan: p.plan, model, training, run: { steps, seed: 7, lr: 1e-3, data: 'synthetic', warmupSteps: 0 },
    });
    const kept = r.steps.slice(WARMUP_STEPS);
    const measured = median(kept.map((s) => s.stepTimeS));
    const error = (predicted - measured) / measured;
    // Where the measured time goes: per rank, the median over steps of compute and of waiting on communication.
    const ranks = kept[0].ranks.map((_, i) => ({
      compute: median(kept.map((s) => s.ranks[i].computeS)), wait: median(kept.map((s) => s.ranks[i].waitS)),
      fwd: median(kept.map((s) => s.ranks[i].phases?.forward ?? NaN)), bwd: median(kept.map((s) => s.ranks[i].phases?.backward ?? NaN)),
      opt: median(kept.map((s) => s.ranks[i].phases?.optimizer ?? NaN)),
    }));
    rows.push({ ...p, predicted, measured, error });
    const ms = (x) => (x * 1e3).toFixed(1);
    for (const [i, st] of est.stages.entries()) {
      const rk = ranks[p.plan.stages.slice(0, i).reduce((n, x) => n + x.dp * x.tp, 0)];
      console.log(`  stage ${i}: per step fwd/bwd+rec/opt predicted ${ms(G * st.time.forward)}/${ms(G * (st.time.backward + st.time.recompute))}/${ms(st.lastTimeS)} ms` +
        `, measured (its first rank) ${ms(rk.fwd)}/${ms(rk.bwd)}/${ms(rk.opt)} ms`);
    }
    console.log(`${p.name}: predicted ${(predicted * 1e3).toFixed(2)} ms, measured ${(measured * 1e3).toFixed(2)} ms ` +
      `(median of ${kept.length} steps)${shared.share > 1 ? ` [compute x${shared.share.toFixed(2)}, shared cores]` : ''}, error ${(error * 100).toFixed(1)}%  [load ${loadAvg()}; ranks compute/wait ms: ` +
      `${ranks.map((x) => `${(x.compute * 1e3).toFixed(0)}/${(x.wait * 1e3).toFixed(0)}`).join(' ')}]`);
  }
  const tau = kendallTau(rows.map((r) => r.predicted), rows.map((r) => r.measured));
  const byPred = [...rows].sort((a, b) => a.predicted - b.predicted).map((r) => r.name);
  const byMeas = [...rows].sort((a, b) => a.measured - b.measured).map((r) => r.name);
  const sameRanking = byPred.every((n, i) => n === byMeas[i]);
  const within = rows.filter((r) => Math.abs(r.error) <= TOLERANCE).length;
  console.log(`\nranking by predicted: ${byPred.join(' < ')}`);
  console.log(`ranking by measured:  ${byMeas.join(' < ')}`);
  console.log(`${within}/${rows.length} plans within ${TOLERANCE * 100}%, max |error| ${(Math.max(...rows.map((r) => Math.abs(r.error))) * 100).toFixed(1)}%, ` +
    `Kendall tau ${tau.toFixed(2)}, same ranking: ${sameRanking ? 'yes' : 'no'}`);
  process.exitCode = within === rows.length && sameRanking ? 0 : 1;
}

main().catch((err) => fail(err && err.stack ? err.stack : String(err)));
