#!/usr/bin/env node
// Training throughput of the executor against PyTorch on the CPU, side by side: the same model
// (gpt-tiny, llama-tiny), the same batch (16 x 64 tokens), fp32, AdamW with clipping and the same
// schedule, the same thread count. Mist trains with @mist/executor's trainSingleProcess (what
// `mist train` runs); PyTorch trains tools/bench/torch_replica.py under Debian's /usr/bin/python3
// with python3-torch (1.13) on OpenBLAS (libopenblas0-pthread).
//
// Each run is its own process with MIST_NUM_THREADS, OMP_NUM_THREADS and OPENBLAS_NUM_THREADS set
// to the thread count T (PyTorch also gets torch.set_num_threads(T)). At T = 2 PyTorch is run two
// ways: "omp2 blas2", the literal same setting, and "omp1 blas2" (one intra-op thread, OpenBLAS on
// both cores), which is PyTorch's fastest setting on a 2-core machine. The first --warmup steps of
// every run are dropped; a run's figure is the median over its remaining steps of tokens / step
// time. The runs of a round go one after the other in rotating order; the ratio is taken within a
// round, and the table shows the median (and min) over rounds.
//
// PyTorch is installed with apt when it is missing and this runs as root; otherwise the benchmark
// says how to install it and exits 0. It is not part of CI or `npm test` (`npm run bench` runs it).
//
// Usage: node tools/bench/executor-vs-torch.js [--models gpt-tiny,llama-tiny] [--threads 1,2]
//        [--steps 200] [--warmup 20] [--rounds 3] [--quick] [--json]
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const PYTHON = '/usr/bin/python3';
const REPLICA = path.join(__dirname, 'torch_replica.py');
const APT_PACKAGES = ['python3-torch', 'libopenblas0-pthread'];
const TOKENS_PER_STEP = 16 * 64;

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(`--${name}`);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};

/** Child mode: trains one model with the executor and prints the steps as JSON. */
async function executorChild(model, steps) {
  const { trainSingleProcess, TRAIN_DEFAULTS } = require('@mist/executor');
  const res = await trainSingleProcess({ ...TRAIN_DEFAULTS, model, steps });
  process.stdout.write(JSON.stringify({ model, steps: res.steps.map((s) => ({ step: s.step, loss: s.loss, seconds: s.seconds })) }) + '\n');
}

function run(cmd, args, env) {
  const load = os.loadavg()[0];
  const res = spawnSync(cmd, args, { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (res.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${res.status}: ${res.stderr}`);
  return { out: JSON.parse(res.stdout.trim().split('\n').pop()), load };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Median per-step tokens/s and total tokens / total seconds over the steps after the warm-up. */
function figures(steps, warmup) {
  const kept = steps.slice(warmup);
  if (kept.length === 0) throw new Error(`--warmup ${warmup} drops every one of the ${steps.length} steps`);
  const total = kept.reduce((a, s) => a + s.seconds, 0);
  return { perStep: median(kept.map((s) => TOKENS_PER_STEP / s.seconds)), overall: (TOKENS_PER_STEP * kept.length) / total, finalLoss: steps[steps.length - 1].loss };
}

function torchAvailable() {
  return fs.existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch, numpy'], { stdio: 'ignore' }).status === 0;
}

/** The BLAS library /usr/lib's libblas.so.3 resolves to (PyTorch's BLAS_INFO=generic uses it). */
function blasLibrary() {
  for (const dir of ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu']) {
    const p = path.join(dir, 'libblas.so.3');
    if (fs.existsSync(p)) return fs.realpathSync(p);
  }
  return 'unknown';
}

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

function aptInstall(packages) {
  console.log(`installing ${packages.join(' ')} with apt-get (running as root)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let res = spawnSync('apt-get', ['install', '-y', '-q', ...packages], { stdio: 'inherit', env });
  if (res.status !== 0) {
    spawnSync('apt-get', ['update', '-q'], { stdio: 'inherit', env });
    res = spawnSync('apt-get', ['install', '-y', '-q', ...packages], { stdio: 'inherit', env });
  }
  return res.status === 0;
}

/** Makes sure PyTorch on OpenBLAS is there; false (after saying why) when it cannot be had. */
function ensureTorch() {
  const canApt = isRoot() && fs.existsSync('/usr/bin/apt-get');
  if (!torchAvailable()) {
    if (!canApt || !aptInstall(APT_PACKAGES) || !torchAvailable()) {
      console.log(`executor-vs-torch: skipped, PyTorch is not installed for ${PYTHON}. Install Debian's PyTorch 1.13 and OpenBLAS with\n` +
        `  sudo apt-get install -y ${APT_PACKAGES.join(' ')}\nand run this benchmark again.`);
      return false;
    }
  }
  if (!blasLibrary().includes('openblas')) {
    if (canApt) aptInstall(['libopenblas0-pthread']);
    if (!blasLibrary().includes('openblas')) {
      console.log(`warning: libblas.so.3 is ${blasLibrary()}, not OpenBLAS: PyTorch's matmuls run on the reference BLAS, ` +
        'several times slower than it can. Install libopenblas0-pthread for a fair comparison.');
    }
  }
  return true;
}

function threadEnv(mist, omp, blas) {
  return { MIST_NUM_THREADS: String(mist), OMP_NUM_THREADS: String(omp), OPENBLAS_NUM_THREADS: String(blas), MKL_NUM_THREADS: String(omp) };
}

/** The runs compared at thread count t: the executor and PyTorch's setting(s). */
function configs(model, t, steps) {
  const mist = { name: `mist T=${t}`, cmd: process.execPath, args: [__filename, '--child', model, String(steps)], env: threadEnv(t, t, t) };
  const torch = (name, intra, omp, blas) => ({
    name, cmd: PYTHON, args: [REPLICA, '--model', model, '--steps', String(steps), '--threads', String(intra)], env: threadEnv(t, omp, blas),
  });
  if (t === 1) return [mist, torch('torch T=1', 1, 1, 1)];
  return [mist, torch(`torch T=${t} omp${t} blas${t}`, t, t, t), torch(`torch T=${t} omp1 blas${t}`, 1, 1, t)];
}

async function main() {
  if (argv[0] === '--child') return executorChild(argv[1], Number(argv[2]));
  const quick = flag('quick');
  const models = opt('models', 'gpt-tiny,llama-tiny').split(',');
  const threadCounts = opt('threads', '1,2').split(',').map(Number);
  const steps = Number(opt('steps', quick ? 60 : 200)), warmup = Number(opt('warmup', 20)), rounds = Number(opt('rounds', quick ? 1 : 3));
  if (!ensureTorch()) return;
  const torchVersion = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' }).stdout.trim();
  console.log(`executor vs PyTorch ${torchVersion} (BLAS ${blasLibrary()}), CPU training, fp32, batch 16 x 64, ${steps} steps ` +
    `(first ${warmup} dropped), ${rounds} round(s), ${os.availableParallelism ? os.availableParallelism() : os.cpus().length} cores`);
  const results = [];
  for (const model of models) {
    for (const t of threadCounts) {
      const cfgs = configs(model, t, steps);
      /** @type {Record<string, Array<{perStep: number, overall: number, finalLoss: number, load: number}>>} */
      const byName = Object.fromEntries(cfgs.map((c) => [c.name, []]));
      for (let r = 0; r < rounds; r++) {
        for (let i = 0; i < cfgs.length; i++) {
          const c = cfgs[(i + r) % cfgs.length];
          const { out, load } = run(c.cmd, c.args, c.env);
          byName[c.name].push({ ...figures(out.steps, warmup), load });
        }
      }
      const mist = byName[cfgs[0].name];
      const rows = cfgs.map((c) => {
        const runs = byName[c.name];
        const ratios = runs.map((x, r) => mist[r].perStep / x.perStep);
        return {
          model, threads: t, config: c.name, tokensPerS: median(runs.map((x) => x.perStep)), tokensPerSOverall: median(runs.map((x) => x.overall)),
          finalLoss: median(runs.map((x) => x.finalLoss)), load: runs.map((x) => x.load),
          mistRatio: c === cfgs[0] ? null : { median: median(ratios), min: Math.min(...ratios) },
        };
      });
      results.push(...rows);
      if (!flag('json')) {
        for (const row of rows) {
          const ratio = row.mistRatio ? `  mist/torch ${row.mistRatio.median.toFixed(2)}x (min ${row.mistRatio.min.toFixed(2)}x)` : '';
          console.log(`${model.padEnd(11)} ${row.config.padEnd(22)} ${Math.round(row.tokensPerS).toString().padStart(6)} tokens/s ` +
            `(overall ${Math.round(row.tokensPerSOverall)}), final loss ${row.finalLoss.toFixed(3)}${ratio}`);
        }
      }
    }
  }
  if (flag('json')) console.log(JSON.stringify({ torch: torchVersion, blas: blasLibrary(), steps, warmup, rounds, results }, null, 1));
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
