#!/usr/bin/env node
// `npm run bench`: builds, then runs every benchmark in tools/bench one after the other (each
// prints the figure its issue asks for). `npm run bench -- analyzer tuner` runs only those.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '../..');
const only = process.argv.slice(2);
const build = spawnSync(process.execPath, [path.join(root, 'tools/scripts/build.js')], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);

const benches = fs
  .readdirSync(__dirname)
  .filter((f) => f.endsWith('.js') && f !== 'run-all.js')
  .filter((f) => only.length === 0 || only.includes(path.basename(f, '.js')))
  .sort();
let failed = 0;
for (const file of benches) {
  console.log(`\n== ${file}`);
  const res = spawnSync(process.execPath, [path.join(__dirname, file)], { cwd: root, stdio: 'inherit' });
  if (res.status !== 0) {
    failed++;
    console.log(`!! ${file} exited with ${res.status}`);
  }
}
process.exitCode = failed > 0 ? 1 : 0;
