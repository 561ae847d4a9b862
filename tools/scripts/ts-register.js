// Lets a process run from the TypeScript sources (under vitest, or a source checkout without
// a build): .ts files are transpiled on require (typescript.transpileModule) and `@mist/<pkg>`
// resolves to packages/<pkg>/src/index.ts, as the shared vitest config aliases it. Transpiled files
// are cached in the OS temp folder by path, size and mtime, so typescript itself (about a second
// to load) is only required when a source changed.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const Module = require('node:module');

const repoRoot = path.resolve(__dirname, '../..');
const sources = new Map();
for (const dir of ['packages', 'apps']) {
  for (const entry of fs.readdirSync(path.join(repoRoot, dir))) {
    const pj = path.join(repoRoot, dir, entry, 'package.json');
    if (!fs.existsSync(pj)) continue;
    sources.set(JSON.parse(fs.readFileSync(pj, 'utf8')).name, path.join(repoRoot, dir, entry, 'src/index.ts'));
  }
}

// Node's resolver hook (internal, not in @types/node).
const internal = /** @type {{ _resolveFilename: (request: string, ...rest: unknown[]) => string }} */ (/** @type {unknown} */ (Module));
const resolve = internal._resolveFilename;
internal._resolveFilename = function (request, ...rest) {
  const src = sources.get(request);
  return resolve.call(this, src ?? request, ...rest);
};

const cacheDir = path.join(os.tmpdir(), `mist-ts-register-${process.getuid ? process.getuid() : 'user'}`);
let ts;

function transpile(filename) {
  const st = fs.statSync(filename);
  const key = crypto.createHash('sha1').update(`${filename}\0${st.size}\0${st.mtimeMs}`).digest('hex');
  const cached = path.join(cacheDir, `${key}.js`);
  try {
    return fs.readFileSync(cached, 'utf8');
  } catch {
    // not cached yet
  }
  ts ??= require('typescript');
  const { outputText } = ts.transpileModule(fs.readFileSync(filename, 'utf8'), {
    fileName: filename,
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
  });
  try {
    fs.mkdirSync(cacheDir, { recursive: true });
    const tmp = `${cached}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, outputText);
    fs.renameSync(tmp, cached); // atomic: concurrent workers never read a half-written file
  } catch {
    // a read-only temp folder only costs the cache
  }
  return outputText;
}

require.extensions['.ts'] = (module, filename) => {
  module._compile(transpile(filename), filename);
};
