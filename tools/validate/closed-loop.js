#!/usr/bin/env node
// Closed loop on this machine: profile this host, predict the step time of gpt-tiny plans
// with the analyzer from that profile, run the same plans with the executor on the CPU backend
// (launchLocal: one worker process per device on 127.0.0.1), and compare. Every round profiles the
// host anew and runs every plan once, so that predictions and measurements see the same spells of
// a shared machine. Before and after each run, the speed of the plan's cores is compared with their
// speed right after the round's profile: a run during which a core moved by more than 15% (the
// cores of a virtual machine do, for minutes) is run again, up to 3 times; then the round profiles
// the host again (once per round) and predicts its remaining plans from that profile. Repeats and
// new profiles are reported. The prediction of a plan is the median of its rounds'.
// Not in CI: timings are noisy. Run by `npm run validate:closed-loop`. Passes when
//   - every prediction is within 20% of the measured step time (median over all rounds), and
//   - the predictions order every pair of plans the measurements tell apart (interquartile ranges
//     of their step times do not overlap) the same way; pairs within each other's spread are ties
//     at this machine's noise, listed but not judged. Kendall's tau and the exact ranking are printed.
//
//   node tools/validate/closed-loop.js [--profile host.json] [--full] [--steps N] [--rounds N] [--threads N] [--verbose]
//
// Plans: pp in {1, 2} x dp in {1, 2} x checkpointing off / all layers, tp = 1, ZeRO 0, no offload,
// run `--rounds` times each, round-robin, so that slow spells of a shared machine spread over all.
// Every worker runs --threads kernel threads (MIST_NUM_THREADS), as a device of the profile does.
//
// Oversubscription: the profile's devices have --threads cores each. A plan with more workers than
// that (pp 2 x dp 2 on a 2-core host) time-slices them; its prediction composes the analyzer's
// per-stage times (on a cluster of that many devices, all busy) in a simulation of the executor's
// 1F1B schedule where the workers pinned to one core share it while they compute (core-sharing.js),
// plus the analyzer's step jitter.
// Communication is left as measured: the profile's collectives already ran between processes on
// this host.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { HELP_OPTION, parseOptions } = require('./options');

const root = path.resolve(__dirname, '../..');
const TOLERANCE = 0.2;
/** A plan's run counts when its cores' speed stayed within this fraction of the round's reference. */
const DRIFT_LIMIT = 0.15;
const MAX_ATTEMPTS = 3;

function fail(message) {
  console.error(`closed-loop: ${message}`);
  process.exit(1);
}

const USAGE = `usage: node tools/validate/closed-loop.js [--profile host.json] [--full] [--steps N] [--rounds N] [--threads N] [--verbose] [--force]
   (npm run validate:closed-loop)

Profiles this host, predicts gpt-tiny plans (pp 1-2 x dp 1-2, checkpointing off / all) with the
analyzer, runs them with the executor's CPU backend, and compares (exit 0 when every prediction is
within 20% and the order of the plans the measurements tell apart is kept).
  --profile FILE  use this host profile instead of profiling anew each round (--force: even one taken
                  on another kind of machine)
  --full          profile the host fully (the default is the quick profile)
  --steps N       training steps per run (default 40); --rounds N rounds of every plan (default 2)
  --threads N     kernel threads per worker (default 1); --verbose per-run lines
example: npm run validate:closed-loop -- --rounds 3`;

const values = parseOptions('closed-loop', USAGE, () => parseArgs({
  options: {
    profile: { type: 'string' },
    full: { type: 'boolean' },
    steps: { type: 'string', default: '40' },
    rounds: { type: 'string', default: '2' },
    verbose: { type: 'boolean' },
    threads: { type: 'string', default: '1' },
    force: { type: 'boolean' },
    ...HELP_OPTION,
  },
}));
const steps = Number(values.steps);
const rounds = Number(values.rounds);
if (!(Number.isInteger(rounds) && rounds >= 1)) fail('--rounds must be a positive integer');
const threads = Number(values.threads);
// A fresh worker's JavaScript takes about 15 steps to reach its speed (profiler grids.ts).
const WARMUP_STEPS = 20;
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
const native = require('@mist/native');
const { simulateSharedCores } = require('./core-sharing');
if (typeof executor.launchLocal !== 'function') {
  fail('@mist/executor does not export launchLocal; the closed loop needs it to run plans');
}

const model = core.getModel('gpt-tiny');
const SEQ = 64, GLOBAL_BATCH = 16, G = 4;
// The gradient reduction as the CPU backend's runtime runs it (after the backward: core's backend table).
const training = core.parseTrainingSpec({
  globalBatch: GLOBAL_BATCH, seqLen: SEQ, paramDtype: 'fp32', computeDtype: 'fp32', flashAttention: true,
  gradReduceOverlap: core.backendCapabilities('cpu').gradReduceOverlap,
});

function makePlan(pp, dp, ckpt) {
  const per = model.layers / pp;
  const stages = Array.from({ length: pp }, (_, i) => ({ layers: /** @type {[number, number]} */ ([i * per, (i + 1) * per - 1]), dp, ckpt: ckpt ? per : 0 }));
  return executor.singleHostPlan(model, { seq: SEQ, globalBatch: GLOBAL_BATCH, G }, stages);
}

/** The 1-minute load average and the core count: other processes on this host slow every measurement. */
function loadAvg() {
  return `${os.loadavg()[0].toFixed(2)} on ${os.cpus().length} cores`;
}

const median = (xs) => core.quantile(xs, 0.5);
const pct = (x) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(0)}%`;

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

/**
 * Seconds of a fixed kernel batch (matmuls) on each core, this process pinned to it in turn: the
 * cores of a virtual machine change speed for minutes at a time, independently of each other, and
 * this shows how far they moved since the profile was taken.
 */
async function coreSpeeds() {
  const m = 256, n = 128, k = 128;
  const a = new Float32Array(m * k).fill(0.5), b = new Float32Array(k * n).fill(0.25), c = new Float32Array(m * n);
  const batch = new native.KernelBatch();
  const saved = native.kernelThreads();
  native.setKernelThreads(1);
  const out = [];
  try {
    for (let core = 0; core < os.cpus().length; core++) {
      native.pinProcessToCores([core]);
      const times = [];
      for (let r = 0; r < 70; r++) {
        const t0 = performance.now();
        for (let i = 0; i < 10; i++) batch.matmul({ c, a, b, m, n, k });
        await batch.run();
        times.push(performance.now() - t0);
      }
      out.push(median(times.slice(10)));
    }
  } finally {
    native.pinProcessToCores(os.cpus().map((_, i) => i));
    native.setKernelThreads(saved);
  }
  return out;
}

async function main() {
  console.log(`load average at start: ${loadAvg()}`);
  const pinning = process.env.MIST_PIN_CORES !== '0';
  /** A profile for one round: the given file, or this host profiled anew. */
  async function profileForRound(round, again = false) {
    if (values.profile) {
      const profile = core.loadHardwareProfile(values.profile);
      core.checkProfileMachine(profile, { force: values.force === true });
      if (round === 1) console.log(`profile: ${values.profile} (${profile.machineKind})`);
      return profile;
    }
    const t0 = Date.now();
    const profile = await profileHost({ quick: !values.full, threadsPerDevice: threads });
    const file = path.join(os.tmpdir(), `mist-closed-loop-profile-${process.pid}-${round}${again ? '-again' : ''}.json`);
    fs.writeFileSync(file, JSON.stringify(profile, null, 2));
    console.log(`round ${round}/${rounds}: profiled this host${again ? ' again' : ''} in ${((Date.now() - t0) / 1000).toFixed(1)} s (${profile.machineKind}), written to ${file}`);
    return profile;
  }
  const plans = [];
  for (const pp of [1, 2]) for (const dp of [1, 2]) for (const ckpt of [false, true]) plans.push({ name: `pp${pp} dp${dp} ckpt ${ckpt ? 'on ' : 'off'}`, plan: makePlan(pp, dp, ckpt) });
  const maxDevices = Math.max(...plans.map((p) => p.plan.stages.length * p.plan.stages[0].dp));
  const cores = os.cpus().length;
  if (maxDevices * threads > cores) {
    console.log(`note: the largest plan runs ${maxDevices} workers x ${threads} thread(s) on ${cores} cores: its workers share cores, ` +
      'and its prediction composes the analyzer\'s stage times in a simulation of the schedule on shared cores');
  }

  process.env.MIST_NUM_THREADS = String(threads);
  // Each round profiles the host anew and predicts every plan from that profile, then runs the
  // plans: the machine's slow and fast spells (minutes) then reach predictions and measurements alike.
  // One row per plan; predict() and the runs below add the prediction, the measurement and the run's story.
  /** @type {Array<Record<string, any>>} */
  const rows = plans.map((p) => ({ ...p, predictions: [], samples: [], ranks: [] }));
  for (let round = 1; round <= rounds; round++) {
    let profile = await profileForRound(round);
    let reference = pinning ? await coreSpeeds() : null;
    let reprofiled = false;
    for (const row of rows) {
      // A run counts when the plan's cores kept the speed they had right after the profile, before
      // and after it (within DRIFT_LIMIT); otherwise it is run again, up to MAX_ATTEMPTS times. When
      // the host stays away from the profile's speed that long, the profile no longer describes it:
      // the round profiles it again (once) and predicts the rest of its plans from the new profile.
      Object.assign(row, predict(profile, row.plan));
      const planCores = [...new Set(Array.from({ length: row.devices }, (_, d) => native.deviceCores(d, threads)).flat())].sort();
      let kept, drift = '';
      for (let attempt = 1; ; attempt++) {
        const before = reference ? await coreSpeeds() : null;
        const r = await executor.launchLocal({
          plan: row.plan, model, training, run: { steps, seed: 7, lr: 1e-3, data: 'synthetic', warmupSteps: 0, traceKernels: true },
        });
        kept = r.steps.slice(WARMUP_STEPS);
        if (!reference) break;
        const after = await coreSpeeds();
        const moved = planCores.map((c) => Math.max(Math.abs(before[c] / reference[c] - 1), Math.abs(after[c] / reference[c] - 1)));
        drift = ` [core${planCores.length > 1 ? 's' : ''} ${planCores.map((c) => `${c} ${pct(before[c] / reference[c] - 1)}/${pct(after[c] / reference[c] - 1)}`).join(', ')} ` +
          'time before/after the run vs the profile]';
        if (moved.every((x) => x <= DRIFT_LIMIT)) break;
        if (attempt >= MAX_ATTEMPTS && (reprofiled || values.profile)) {
          row.drifted = true;
          drift += ' (kept: the host did not settle)';
          break;
        }
        row.rerun = (row.rerun ?? 0) + 1;
        if (attempt >= MAX_ATTEMPTS) {
          console.log(`round ${round}/${rounds} ${row.name}: the host drifted${drift} on ${attempt} runs; profiling it again`);
          profile = await profileForRound(round, true);
          reference = await coreSpeeds();
          reprofiled = true;
          row.reprofiled = true;
          Object.assign(row, predict(profile, row.plan));
          attempt = 0;
          continue;
        }
        console.log(`round ${round}/${rounds} ${row.name}: the host drifted${drift}; running it again`);
      }
      row.predictions.push(row.predicted);
      row.samples.push(...kept.map((s) => s.stepTimeS));
      // Where the measured time goes: per rank, the median over steps of each phase, waits and kernel time.
      const rank = (i, f) => median(kept.map((s) => f(s.ranks[i]) ?? NaN));
      row.ranks = kept[0].ranks.map((_, i) => ({
        compute: rank(i, (x) => x.computeS), wait: rank(i, (x) => x.waitS), fwd: rank(i, (x) => x.phases?.forward),
        bwd: rank(i, (x) => x.phases?.backward), opt: rank(i, (x) => x.phases?.optimizer), kernels: rank(i, (x) => x.kernels?.seconds),
      }));
      console.log(`round ${round}/${rounds} ${row.name}: predicted ${(row.predicted * 1e3).toFixed(1)} ms, ` +
        `measured median ${(median(kept.map((s) => s.stepTimeS)) * 1e3).toFixed(2)} ms over ${kept.length} steps [load ${loadAvg()}]${drift}`);
    }
  }

  const ms = (x) => (x * 1e3).toFixed(1);
  console.log('');
  for (const row of rows) {
    row.predicted = median(row.predictions);
    row.measured = median(row.samples);
    row.q25 = core.quantile(row.samples, 0.25);
    row.q75 = core.quantile(row.samples, 0.75);
    row.error = (row.predicted - row.measured) / row.measured;
    console.log(`${row.name}: predicted ${ms(row.predicted)} ms, measured ${ms(row.measured)} ms (quartiles ${ms(row.q25)}-${ms(row.q75)}, ` +
      `${row.samples.length} steps)${row.share > 1 ? ` [${row.devices} workers on ${cores} cores: shared-core simulation, analyzer alone ${ms(row.estimate.iterationTimeS)} ms]` : ''}` +
      `${row.rerun ? ` [${row.rerun} run(s) repeated: the host drifted]` : ''}${row.reprofiled ? ' [host profiled again]' : ''}` +
      `${row.drifted ? ' [measured while the host drifted]' : ''}, ` +
      `error ${(row.error * 100).toFixed(1)}%`);
    if (values.verbose) {
      for (const [i, st] of row.estimate.stages.entries()) {
        const rk = row.ranks[row.plan.stages.slice(0, i).reduce((n, x) => n + x.dp * x.tp, 0)];
        console.log(`  stage ${i}: per step fwd/bwd+rec/last predicted ${ms(G * st.time.forward)}/${ms(G * (st.time.backward + st.time.recompute))}/${ms(st.lastTimeS)} ms` +
          `, measured on its first rank fwd/bwd/opt ${ms(rk.fwd)}/${ms(rk.bwd)}/${ms(rk.opt)} ms, kernels ${ms(rk.kernels)} ms, waiting ${ms(rk.wait)} ms`);
      }
    }
  }
  const tau = kendallTau(rows.map((r) => r.predicted), rows.map((r) => r.measured));
  const byPred = [...rows].sort((a, b) => a.predicted - b.predicted).map((r) => r.name.trim());
  const byMeas = [...rows].sort((a, b) => a.measured - b.measured).map((r) => r.name.trim());
  // Ranking: every pair whose measured step times are told apart (their interquartile ranges do not
  // overlap) must be ordered the same way by the predictions. Pairs within each other's spread are
  // ties at this machine's noise and are listed, not judged.
  const misordered = [], ties = [];
  for (let i = 0; i < rows.length; i++) {
    for (let j = i + 1; j < rows.length; j++) {
      const [a, b] = rows[i].measured < rows[j].measured ? [rows[i], rows[j]] : [rows[j], rows[i]];
      if (a.q75 >= b.q25) ties.push(`${a.name.trim()} ~ ${b.name.trim()}`);
      else if (!(a.predicted < b.predicted)) misordered.push(`${a.name.trim()} < ${b.name.trim()} measured, predicted the other way`);
    }
  }
  const within = rows.filter((r) => Math.abs(r.error) <= TOLERANCE).length;
  console.log(`\nranking by predicted: ${byPred.join(' < ')}`);
  console.log(`ranking by measured:  ${byMeas.join(' < ')}`);
  console.log(`pairs measured apart: ${rows.length * (rows.length - 1) / 2 - ties.length}, misordered by the predictions: ${misordered.length}` +
    `${misordered.length ? ` (${misordered.join('; ')})` : ''}; ties within the measured spread: ${ties.length}${ties.length ? ` (${ties.join('; ')})` : ''}`);
  console.log(`${within}/${rows.length} plans within ${TOLERANCE * 100}%, max |error| ${(Math.max(...rows.map((r) => Math.abs(r.error))) * 100).toFixed(1)}%, ` +
    `Kendall tau ${tau.toFixed(2)}, exact same ranking: ${byPred.every((n, i) => n === byMeas[i]) ? 'yes' : 'no'}`);
  const pass = within === rows.length && misordered.length === 0;
  console.log(pass ? 'closed loop: PASS' : 'closed loop: FAIL');
  process.exitCode = pass ? 0 : 1;

  /**
   * The analyzer's estimate of a plan. A plan with more workers than cores (x threads) time-slices
   * them (each worker is pinned to its device's cores, round-robin over the host's): its step time
   * is the analyzer's per-stage times composed by a simulation of the 1F1B schedule in which the
   * workers on one core share it while they compute (core-sharing.js).
   */
  function predict(profile, plan) {
    const devices = core.planDevices(plan);
    // The analyzer checks the plan's devices against the profile's cluster: an oversubscribed plan
    // gets a cluster of as many (core-sharing) devices as it uses.
    const clusterFor = (n) => core.parseHardwareProfile({
      ...profile, cluster: { ...profile.cluster, gpusPerNode: Math.max(profile.cluster.gpusPerNode, n) },
    });
    const estimate = estimatePlan(plan, { model, training, profile: clusterFor(devices) });
    const share = (devices * threads) / cores;
    if (share <= 1) return { devices, share: 1, estimate, predicted: estimate.iterationTimeS };
    const predicted = simulateSharedCores({
      stages: estimate.stages.map((st) => ({ forward: st.time.forward, backward: st.time.backward + st.time.recompute, last: st.lastTimeS })),
      dp: plan.stages.map((st) => st.dp * st.tp),
      gradAccumSteps: plan.gradAccumSteps,
      latency: estimate.stages[0].time.ppComm,
      coreOf: (rank) => native.deviceCores(rank, threads)[0],
      schedule: executor.oneFOneBSchedule,
    }) + estimate.breakdown.jitterS;
    return { devices, share, estimate, predicted };
  }
}

main().catch((err) => fail(err && err.stack ? err.stack : String(err)));
