// Test helper: runs a TypeScript entry of this repository under bare node (no build), the way the
// multi-process tests start real agent and coordinator processes:
//   node ts-run.js apps/agent/src/main.ts --coordinator ...
// `.ts` files are transpiled with typescript.transpileModule (cached in the OS temp dir), and
// `@mist/<name>` imports resolve to the packages' src/index.ts, as vitest.config.ts aliases them.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const Module = require('node:module');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '../../../..');
const alias = new Map();
for (const dir of ['packages', 'apps']) {
  for (const entry of fs.readdirSync(path.join(root, dir))) {
    const pj = path.join(root, dir, entry, 'package.json');
    if (fs.existsSync(pj)) alias.set(JSON.parse(fs.readFileSync(pj, 'utf8')).name, path.join(root, dir, entry, 'src/index.ts'));
  }
}

const originalResolve = Module._resolveFilename;
Module._resolveFilename = function resolve(request, parent, ...rest) {
  const target = alias.get(request);
  if (target) return target;
  if (parent && parent.filename && parent.filename.endsWith('.ts') && request.startsWith('.')) {
    const base = path.resolve(path.dirname(parent.filename), request);
    for (const f of [`${base}.ts`, path.join(base, 'index.ts')]) if (fs.existsSync(f)) return f;
  }
  return originalResolve.call(this, request, parent, ...rest);
};

let ts;
const cacheDir = path.join(os.tmpdir(), 'mist-ts-run-cache');
fs.mkdirSync(cacheDir, { recursive: true });
require.extensions['.ts'] = (module, filename) => {
  const source = fs.readFileSync(filename, 'utf8');
  const hash = crypto.createHash('sha1').update(filename).update(source).digest('hex');
  const cached = path.join(cacheDir, `${hash}.js`);
  let output;
  if (fs.existsSync(cached)) output = fs.readFileSync(cached, 'utf8');
  else {
    ts ??= require('typescript');
    output = ts.transpileModule(source, {
      fileName: filename,
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true, sourceMap: false },
    }).outputText;
    const tmp = `${cached}.${process.pid}`;
    fs.writeFileSync(tmp, output);
    fs.renameSync(tmp, cached);
  }
  module._compile(output, filename);
};

const entry = path.resolve(root, process.argv[2]);
process.argv.splice(1, 2, entry);
require(entry);
