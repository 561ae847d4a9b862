// Compiles the CUDA kernels (packages/native/src/cuda/kernels/*.cu) into fatbinaries next to the
// addon (build/Release/cuda-kernels/<name>.fatbin) when this machine has nvcc: SASS for sm_80, sm_86,
// sm_89 and sm_90 and PTX for newer GPUs, which the addon loads at run time with the driver's
// module API. Without nvcc nothing is compiled and the addon reports that its CUDA backend has no
// kernels; the host code never needs the CUDA toolkit.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

// SASS per architecture the project supports (A100, A10/RTX 30, L4/L40/RTX 40, H100/H200) and PTX of
// the newest one, which the driver JIT-compiles for later GPUs.
const SASS = [80, 86, 89, 90];
const PTX = 90;
const GENCODE = SASS.flatMap((cc) => ['-gencode', `arch=compute_${cc},code=${cc === PTX ? `[sm_${cc},compute_${cc}]` : `sm_${cc}`}`]);

// cuda-kernels/manifest.txt tells the addon's probe what the images hold, so it can say that a GPU or a
// driver cannot run them before anything is launched: "cuda <version code of the nvcc>", "sass <cc>...",
// "ptx <cc>" (the driver JIT-compiles PTX for newer GPUs only when it is at least as new as the nvcc).
function writeManifest(outDir, version) {
  const [major, minor] = version.replace('release ', '').split('.').map(Number);
  const code = major * 1000 + (minor || 0) * 10;
  fs.writeFileSync(path.join(outDir, 'manifest.txt'), `cuda ${code}\nsass ${SASS.join(' ')}\nptx ${PTX}\n`);
}

function findNvcc() {
  if (process.env.MIST_NO_CUDA === '1') return { reason: 'MIST_NO_CUDA=1' };
  const candidates = [process.env.MIST_NVCC, 'nvcc', '/usr/local/cuda/bin/nvcc'].filter(Boolean);
  for (const candidate of candidates) {
    const res = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
    if (res.status === 0) return { nvcc: candidate, version: (res.stdout.match(/release [0-9.]+/) || ['?'])[0] };
  }
  return { reason: 'nvcc not found (set MIST_NVCC or put it on the PATH)' };
}

function newestOf(files) {
  return Math.max(0, ...files.map((f) => fs.statSync(f).mtimeMs));
}

function compile(nvcc, source, output) {
  return new Promise((resolve) => {
    // Kernels include their own directory's headers and, from src/, headers shared with the CPU
    // kernels (e.g. kernels/dropout_hash.h: both backends draw the same dropout masks).
    const args = ['-std=c++17', '-O3', '-fatbin', ...GENCODE, '-I', path.dirname(source), '-I', path.resolve(path.dirname(source), '../..'), '-o', output, source];
    const child = spawn(nvcc, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('close', (code) => resolve(code ?? 1));
  });
}

async function buildCudaKernels(nativeDir, { force = false } = {}) {
  const kernelsDir = path.join(nativeDir, 'src/cuda/kernels');
  const outDir = path.join(nativeDir, 'build/Release/cuda-kernels');
  if (!fs.existsSync(kernelsDir)) return;
  const found = findNvcc();
  if (!found.nvcc) {
    fs.rmSync(outDir, { recursive: true, force: true });
    console.log(`[mist] ${found.reason}: the addon is built without CUDA kernels (the CPU backend is unaffected; backends() says why CUDA is unavailable)`);
    return;
  }
  const sources = fs.readdirSync(kernelsDir).filter((f) => f.endsWith('.cu')).sort();
  const headers = [
    ...fs.readdirSync(kernelsDir).filter((f) => f.endsWith('.cuh')).map((f) => path.join(kernelsDir, f)),
    path.join(nativeDir, 'src/kernels/dropout_hash.h'),
  ].filter((f) => fs.existsSync(f));
  const headerTime = newestOf(headers);
  fs.mkdirSync(outDir, { recursive: true });
  for (const stale of fs.readdirSync(outDir)) {
    if (stale !== 'manifest.txt' && !sources.includes(stale.replace(/\.fatbin$/, '.cu'))) fs.rmSync(path.join(outDir, stale), { force: true });
  }
  writeManifest(outDir, found.version);
  const todo = sources.filter((s) => {
    const out = path.join(outDir, s.replace(/\.cu$/, '.fatbin'));
    if (force || !fs.existsSync(out)) return true;
    return fs.statSync(out).mtimeMs < Math.max(headerTime, fs.statSync(path.join(kernelsDir, s)).mtimeMs);
  });
  if (todo.length === 0) {
    console.log(`[mist] CUDA kernels are up to date (${sources.length} fatbinaries)`);
    return;
  }
  const jobs = Math.max(1, os.availableParallelism ? os.availableParallelism() : 2);
  console.log(`[mist] compiling ${todo.length} CUDA kernel file(s) with ${found.nvcc} (${found.version}; sm_80/86/89/90 + PTX, ${jobs} at a time)`);
  const started = Date.now();
  let failed = [];
  const queue = [...todo];
  async function worker() {
    for (let s = queue.shift(); s !== undefined; s = queue.shift()) {
      const out = path.join(outDir, s.replace(/\.cu$/, '.fatbin'));
      const code = await compile(found.nvcc, path.join(kernelsDir, s), out);
      if (code !== 0) {
        fs.rmSync(out, { force: true });
        failed.push(s);
      } else {
        console.log(`[mist]   ${s} -> cuda-kernels/${path.basename(out)} (${(fs.statSync(out).size / 1024).toFixed(0)} KiB)`);
      }
    }
  }
  await Promise.all(Array.from({ length: jobs }, worker));
  if (failed.length > 0) {
    console.error(`[mist] nvcc failed on ${failed.join(', ')}`);
    process.exit(1);
  }
  console.log(`[mist] CUDA kernels compiled in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

module.exports = { buildCudaKernels };
