#!/usr/bin/env node
// Packs @mist/core, @mist/analyzer and @mist/tuner as a user would get them, installs the tarballs into
// an empty project (offline: their third-party dependencies are packed from this repository's
// node_modules, so no registry is asked), and checks what a user of the packages meets:
//   - each tarball carries README.md, LICENSE, dist and the src its source maps point to, no tests;
//   - `exports` resolve for require and for TypeScript (tsc, moduleResolution node16);
//   - the example of each package's README runs with node and prints what it should;
//   - @mist/analyzer installed without @mist/core fails, naming @mist/core.
// Usage: node tools/scripts/pack-install.js [--json] [--keep]. Builds first (npm run build:ts) only
// when a package has no dist. Exit 0 when every check passes; the last stdout line is a JSON summary
// with --json.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '../..');
const PACKAGES = ['core', 'analyzer', 'tuner'];
// What each README example must print (a line of each), so a README that silently stops
// demonstrating its package fails here.
const EXPECTED_OUTPUT = {
  core: [/^llama2-7b: 6\.74B parameters, 32 layers$/m, /^2x8-a100-80gb: 16 GPUs of 80 GiB$/m, /^bad field stages: /m],
  analyzer: [/^iteration \d+\.\d{3} s, \d+ tokens\/s, MFU \d+\.\d%, every stage fits: true$/m, /^stage 0: peak \d+\.\d\d GiB$/m],
  tuner: [/^best: \d+ stage\(s\), dp \d+ x tp \d+, b \d+, ZeRO \d, \d+\.\d{3} s\/iteration$/m, /^speedup over megatron \d\.\d{3}x/m,
    /^analyzed again: \d+\.\d{3} s$/m],
};
const args = new Set(process.argv.slice(2));
const started = Date.now();
const timings = {};
const failures = [];

function log(text) {
  if (!args.has('--json')) console.log(text);
}

function run(cmd, cmdArgs, opts = {}) {
  const res = spawnSync(cmd, cmdArgs, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  return { code: res.status ?? 1, stdout: res.stdout ?? '', stderr: (res.stderr ?? '') + (res.error ? String(res.error) : '') };
}

function timed(name, fn) {
  const t = Date.now();
  const out = fn();
  timings[name] = (Date.now() - t) / 1000;
  return out;
}

function check(ok, what) {
  if (!ok) failures.push(what);
  log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  return ok;
}

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const npmEnv = { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };

// 1. Build when a package has never been built (CI builds in npm ci's postinstall).
if (PACKAGES.some((p) => !fs.existsSync(path.join(root, 'packages', p, 'dist', 'index.js')))) {
  timed('build', () => {
    const res = run(npm, ['run', 'build:ts'], { cwd: root, env: npmEnv });
    if (res.code !== 0) throw new Error(`npm run build:ts failed:\n${res.stdout}\n${res.stderr}`);
  });
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-pack-'));
const tarDir = path.join(work, 'tarballs');
fs.mkdirSync(tarDir);

function pack(dir) {
  const res = run(npm, ['pack', dir, '--pack-destination', tarDir, '--json', '--ignore-scripts'], { cwd: root, env: npmEnv });
  if (res.code !== 0) throw new Error(`npm pack ${dir} failed:\n${res.stderr}`);
  const [info] = JSON.parse(res.stdout);
  return { file: path.join(tarDir, info.filename), files: info.files.map((f) => f.path), name: info.name, version: info.version };
}

/** The installed folder of `dep` as seen from `fromDir` (Node's lookup: nearest node_modules upwards). */
function installedDir(dep, fromDir) {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', dep);
    if (fs.existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (dir === path.dirname(dir)) throw new Error(`${dep} (needed from ${fromDir}) is not installed; run npm ci`);
  }
}

try {
  // 2. Pack ours, then the third-party packages they need, as installed here.
  const ours = timed('pack', () => PACKAGES.map((p) => ({ pkg: p, ...pack(path.join(root, 'packages', p)) })));
  for (const t of ours) {
    const f = new Set(t.files);
    check(['README.md', 'LICENSE', 'package.json', 'dist/index.js', 'dist/index.d.ts', 'src/index.ts'].every((x) => f.has(x)),
      `${t.name}: tarball has README.md, LICENSE, dist and src`);
    check(!t.files.some((x) => /\.test\.ts$|(^|\/)test\/|\.tsbuildinfo$/.test(x)), `${t.name}: tarball has no tests and no .tsbuildinfo`);
  }
  const third = new Map();
  const queue = PACKAGES.map((p) => path.join(root, 'packages', p));
  while (queue.length > 0) {
    const from = queue.shift();
    const deps = JSON.parse(fs.readFileSync(path.join(from, 'package.json'), 'utf8')).dependencies ?? {};
    for (const dep of Object.keys(deps)) {
      if (dep.startsWith('@mist/')) continue;
      const dir = installedDir(dep, from);
      const { version } = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
      const seen = third.get(dep);
      if (seen && seen.version !== version) throw new Error(`${dep} is needed at ${seen.version} and ${version}: one project cannot hold both at its top level`);
      if (!seen) {
        third.set(dep, { dir, version });
        queue.push(dir);
      }
    }
  }
  const thirdTarballs = timed('packDependencies', () => [...third.values()].map((d) => pack(d.dir).file));
  log(`packed ${ours.map((t) => path.basename(t.file)).join(', ')} and their dependencies ${[...third].map(([n, d]) => `${n}@${d.version}`).join(', ')}`);

  // 3. Install into an empty project, offline: every package comes from a tarball.
  const project = path.join(work, 'project');
  fs.mkdirSync(project);
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'mist-consumer', version: '1.0.0', private: true }));
  const cache = path.join(work, 'npm-cache');
  const installArgs = ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', '--cache', cache];
  const install = timed('install', () => run(npm, [...installArgs, ...ours.map((t) => t.file), ...thirdTarballs], { cwd: project, env: npmEnv }));
  if (!check(install.code === 0, 'the three tarballs install together into an empty project, offline')) throw new Error(install.stderr);

  // 4. Source maps point at shipped sources.
  for (const t of ours) {
    const dir = path.join(project, 'node_modules', t.name);
    const map = JSON.parse(fs.readFileSync(path.join(dir, 'dist', 'index.js.map'), 'utf8'));
    const missing = map.sources.filter((s) => !fs.existsSync(path.resolve(dir, 'dist', s)));
    check(missing.length === 0, `${t.name}: dist/index.js.map sources exist (${map.sources.join(', ')})`);
  }

  // 5. The README examples, run as a user would.
  for (const t of ours) {
    const readme = fs.readFileSync(path.join(project, 'node_modules', t.name, 'README.md'), 'utf8');
    const m = /## Example\n[\s\S]*?```js\n([\s\S]*?)```/.exec(readme);
    if (!check(m !== null, `${t.name}: README has an "## Example" with a js block`)) continue;
    const lines = m[1].trim().split('\n').length;
    check(lines <= 16, `${t.name}: README example is short (${lines} lines)`);
    const file = path.join(project, `example-${t.pkg}.js`);
    fs.writeFileSync(file, m[1]);
    const res = timed(`example:${t.pkg}`, () => run(process.execPath, [file], { cwd: project }));
    const printed = EXPECTED_OUTPUT[t.pkg].every((re) => re.test(res.stdout));
    check(res.code === 0 && printed, `${t.name}: README example runs and prints what it shows`);
    if (res.code !== 0 || !printed) log(`--- stdout\n${res.stdout}\n--- stderr\n${res.stderr}`);
    else log(res.stdout.trim().split('\n').map((l) => `     | ${l}`).join('\n'));
  }

  // 6. The types, through `exports`, as a TypeScript project with node16 resolution sees them.
  fs.writeFileSync(path.join(project, 'types-check.ts'), [
    "import { getModel, type ModelSpec } from '@mist/core';",
    "import { analyzePlan, contextFor, type Analysis } from '@mist/analyzer';",
    "import { tune, type TuneResult } from '@mist/tuner';",
    "const model: ModelSpec = getModel('gpt3-1.3b');",
    "const ctx = contextFor({ model, cluster: '1x2-l4', training: { globalBatch: 8, seqLen: 1024 } });",
    'export async function check(plan: unknown): Promise<[Analysis, TuneResult]> {',
    '  return [analyzePlan({ ...ctx, plan }).analysis, await tune(ctx)];',
    '}',
    '',
  ].join('\n'));
  const tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
  fs.writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { strict: true, noEmit: true, module: 'node16', moduleResolution: 'node16', target: 'es2022', types: [], skipLibCheck: false },
    files: ['types-check.ts'],
  }));
  const types = timed('typecheck', () => run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: project }));
  check(types.code === 0, 'types resolve through exports (tsc --moduleResolution node16, strict)');
  if (types.code !== 0) log(types.stdout + types.stderr);

  // 7. One package alone: npm must stop and name the missing @mist package, never guess.
  const alone = path.join(work, 'alone');
  fs.mkdirSync(alone);
  fs.writeFileSync(path.join(alone, 'package.json'), JSON.stringify({ name: 'mist-alone', version: '1.0.0', private: true }));
  const analyzer = ours.find((t) => t.pkg === 'analyzer');
  const single = timed('installAlone', () => run(npm, [...installArgs, analyzer.file, ...thirdTarballs], { cwd: alone, env: npmEnv }));
  check(single.code !== 0 && /@mist(\/|%2f)core/i.test(single.stderr), '@mist/analyzer alone fails, naming @mist/core');
} catch (err) {
  failures.push(String(err && err.stack ? err.stack : err));
  log(String(err && err.stack ? err.stack : err));
} finally {
  if (!args.has('--keep')) fs.rmSync(work, { recursive: true, force: true });
  else log(`kept ${work}`);
}

const summary = { ok: failures.length === 0, failures, seconds: (Date.now() - started) / 1000, timings };
if (args.has('--json')) console.log(JSON.stringify(summary));
else log(`${summary.ok ? 'all checks passed' : `${failures.length} check(s) failed`} in ${summary.seconds.toFixed(1)} s`);
process.exit(summary.ok ? 0 : 1);
