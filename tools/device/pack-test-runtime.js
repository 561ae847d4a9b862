#!/usr/bin/env node
// Copies what the GPU host needs to run the CUDA test files with vitest, without a network and
// without carrying all of node_modules (the device tool carries at most 64 MiB): vitest's installed
// dependency closure and the addon loader `bindings`, packed as .device/test-runtime.tar.gz (about
// 15 MB; .device is ignored by git: name it in the device tool's `carry`). The device script
// unpacks it into node_modules.
//
// Usage: node tools/device/pack-test-runtime.js   (prints the size it packed)
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '../..');
const { spawnSync } = require('node:child_process');

const stage = path.join(root, '.device/stage');
const out = path.join(stage, 'node_modules');
const archive = path.join(root, '.device/test-runtime.tar.gz');
// vitest, the addon's loader, and the external dependencies of the packages the GPU tests import (core, tuner).
const ROOTS = ['vitest', 'bindings', 'zod', 'yaml', 'highs'];

// Node's resolution of `name` from a package directory: the nearest node_modules/name above it.
function resolvePackage(name, fromDir) {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', name);
    if (fs.existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (dir === root || dir === path.dirname(dir)) return undefined;
  }
}

const seen = new Set();
function visit(dir) {
  const real = fs.realpathSync(dir);
  if (seen.has(real)) return;
  seen.add(real);
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const deps = { ...pkg.dependencies, ...pkg.optionalDependencies, ...pkg.peerDependencies };
  for (const name of Object.keys(deps)) {
    const found = resolvePackage(name, dir);
    if (found) visit(found); // optional and peer dependencies that are not installed are skipped
  }
}

for (const name of ROOTS) {
  const dir = resolvePackage(name, root);
  if (!dir) throw new Error(`${name} is not installed: run npm ci first`);
  visit(dir);
}

fs.rmSync(out, { recursive: true, force: true });
let bytes = 0;
function copyTree(src, dst) {
  fs.mkdirSync(dst, { recursive: true });
  for (const entry of fs.readdirSync(src, { withFileTypes: true })) {
    const s = path.join(src, entry.name);
    const d = path.join(dst, entry.name);
    if (entry.isDirectory()) copyTree(s, d);
    else if (entry.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(s), d);
    else {
      fs.copyFileSync(s, d);
      bytes += fs.statSync(s).size;
    }
  }
}
const nodeModules = path.join(root, 'node_modules');
for (const dir of seen) {
  const rel = path.relative(nodeModules, dir);
  if (rel.startsWith('..')) throw new Error(`${dir} is outside node_modules`);
  // Nested node_modules are copied as their own packages when they are in the closure.
  copyTree(dir, path.join(out, rel));
  const nested = path.join(out, rel, 'node_modules');
  for (const entry of fs.existsSync(nested) ? fs.readdirSync(nested) : []) {
    const nestedDir = path.join(dir, 'node_modules', entry);
    if (![...seen].some((s) => s === nestedDir || s.startsWith(nestedDir + path.sep))) fs.rmSync(path.join(nested, entry), { recursive: true, force: true });
  }
}
const tar = spawnSync('tar', ['czf', archive, '-C', stage, 'node_modules'], { stdio: 'inherit' });
if (tar.status !== 0) throw new Error(`tar exited with ${tar.status}`);
fs.rmSync(stage, { recursive: true, force: true });
const packed = fs.statSync(archive).size;
console.log(`packed ${seen.size} packages (${(bytes / 2 ** 20).toFixed(1)} MiB) into ${path.relative(root, archive)} (${(packed / 2 ** 20).toFixed(1)} MiB)`);
