#!/usr/bin/env node
// Builds the native modules with node-gyp against the local Node headers (never downloads):
//  - packages/native (our addon), rebuilt when any of its sources is newer than the addon;
//  - better-sqlite3 (the coordinator's state store), built from its bundled SQLite sources when its
//    addon is missing — npm 11 does not run dependencies' install scripts, so we build it ourselves.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '../..');
const nodedir = process.env.MIST_NODEDIR || path.resolve(process.execPath, '../..');
const force = process.argv.includes('--force');

function newestSource(dir) {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (/\.(cc|h|hpp|gyp)$/.test(entry.name)) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

function gypRebuild(dir, label) {
  if (!fs.existsSync(path.join(nodedir, 'include/node/node_api.h'))) {
    console.error(`[mist] Node headers not found under ${nodedir}/include/node; set MIST_NODEDIR to the directory that holds include/node`);
    process.exit(1);
  }
  const gyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] });
  const jobs = String(Math.max(1, os.availableParallelism ? os.availableParallelism() : 2));
  console.log(`[mist] building ${label} (node-gyp, --nodedir=${nodedir}, -j ${jobs})`);
  const res = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`, '--release', '-j', jobs], {
    cwd: dir,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (res.status !== 0) process.exit(res.status ?? 1);
}

// Our addon.
const nativeDir = path.join(root, 'packages/native');
const addon = path.join(nativeDir, 'build/Release/mist_native.node');
const sourceTime = Math.max(
  newestSource(path.join(nativeDir, 'src')),
  fs.statSync(path.join(nativeDir, 'binding.gyp')).mtimeMs,
  fs.statSync(path.join(nativeDir, 'arch-flags.js')).mtimeMs,
);
if (!force && fs.existsSync(addon) && fs.statSync(addon).mtimeMs >= sourceTime) console.log('[mist] native addon is up to date');
else gypRebuild(nativeDir, 'the mist_native addon');

// better-sqlite3 (skipped when it is not installed, e.g. a subset install).
let sqliteDir;
try {
  sqliteDir = path.dirname(require.resolve('better-sqlite3/package.json', { paths: [path.join(root, 'packages/coordinator'), root] }));
} catch {
  sqliteDir = undefined;
}
if (sqliteDir) {
  if (!force && fs.existsSync(path.join(sqliteDir, 'build/Release/better_sqlite3.node'))) console.log('[mist] better-sqlite3 is built');
  else gypRebuild(sqliteDir, 'better-sqlite3 from its bundled SQLite sources (about a minute)');
}

// The CUDA kernels, after the addon: node-gyp rebuild clears build/, fatbinaries included.
require('./build-cuda-kernels').buildCudaKernels(nativeDir, { force }).catch((err) => {
  console.error(`[mist] building the CUDA kernels failed: ${err && err.message ? err.message : err}`);
  process.exit(1);
});
