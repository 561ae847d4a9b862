#!/usr/bin/env node
// The whole build: the native addon (node-gyp) and every TypeScript project (tsc -b). Run by
// `npm ci` (postinstall) and `npm run build`.
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '../..');
function run(args) {
  const res = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (res.status !== 0) process.exit(res.status ?? 1);
}
run([path.join(__dirname, 'build-native.js')]);
// @mist/rpc's TypeScript types are generated from protos/ (gitignored) before tsc sees them.
run([path.join(root, 'packages/rpc/scripts/gen.js')]);
run([require.resolve('typescript/bin/tsc', { paths: [root] }), '-b', 'tsconfig.build.json']);
console.log('[mist] build complete');
