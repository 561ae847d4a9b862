#!/usr/bin/env node
// Builds packages/native's addon with node-gyp against the local Node headers (never downloads).
// Skips the build when the addon is newer than every source file, so `npm test` stays fast.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const nativeDir = path.resolve(__dirname, '../../packages/native');
const addon = path.join(nativeDir, 'build/Release/mist_native.node');
const nodedir = process.env.MIST_NODEDIR || path.resolve(process.execPath, '../..');

function newestSource(dir) {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (/\.(cc|h|hpp|gyp)$/.test(entry.name)) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

const sourceTime = Math.max(newestSource(path.join(nativeDir, 'src')), fs.statSync(path.join(nativeDir, 'binding.gyp')).mtimeMs);
if (fs.existsSync(addon) && fs.statSync(addon).mtimeMs >= sourceTime && !process.argv.includes('--force')) {
  console.log('[mist] native addon is up to date');
  process.exit(0);
}
if (!fs.existsSync(path.join(nodedir, 'include/node/node_api.h'))) {
  console.error(`[mist] Node headers not found under ${nodedir}/include/node; set MIST_NODEDIR to the directory that holds include/node`);
  process.exit(1);
}
const gyp = require.resolve('node-gyp/bin/node-gyp.js');
const jobs = String(Math.max(1, require('node:os').availableParallelism?.() ?? 2));
console.log(`[mist] building native addon (node-gyp, --nodedir=${nodedir}, -j ${jobs})`);
const res = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`, '--release', '-j', jobs], { cwd: nativeDir, stdio: 'inherit' });
process.exit(res.status ?? 1);
