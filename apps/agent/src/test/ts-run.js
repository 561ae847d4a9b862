// Test helper: runs a TypeScript entry of this repository under bare node (no build), the way the
// multi-process tests start real agent and coordinator processes:
//   node ts-run.js apps/agent/src/main.ts --coordinator ...
'use strict';
const path = require('node:path');

const root = path.resolve(__dirname, '../../../..');
require(path.join(root, 'tools/scripts/ts-register.js'));

const entry = path.resolve(root, process.argv[2]);
process.argv.splice(1, 2, entry);
require(entry);
