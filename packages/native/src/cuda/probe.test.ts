// What the CUDA backend reports, on any machine: on one without a GPU (CI) it is unavailable with the
// driver loader's reason and every device entry point throws that reason instead of crashing; on a
// GPU host it names the GPU with its memory. The conversions an upload applies need no GPU.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { loadAddon } from '../addon';
import { backends } from '../collectives';
import type { KernelAddon } from '../kernels/addon-kernels';
import { cudaAddon } from './addon-cuda';
import { CudaTensor, cudaMemoryStats, cudaOps, cudaProbe, roundToDType } from './index';

const probe = cudaProbe();

describe('CUDA backend probe', () => {
  it('is listed by backends() with the same verdict as cudaProbe()', () => {
    const cuda = backends().find((b) => b.name === 'cuda');
    expect(cuda).toBeDefined();
    expect(cuda?.available).toBe(probe.available);
    if (!probe.available) expect(cuda?.reason).toBe(probe.reason);
  });

  it.skipIf(probe.driverAvailable)('says why the driver is unusable and device calls throw that reason', () => {
    expect(probe.reason).toMatch(/libcuda\.so\.1|cuInit|no CUDA device/);
    expect(() => CudaTensor.empty(4, 'f32')).toThrow(/CUDA backend unavailable: /);
    expect(() => cudaMemoryStats()).toThrow(/CUDA backend unavailable: /);
  });

  it.skipIf(probe.driverAvailable)('searches MIST_CUDA_DRIVER_PATH and names it in the reason', () => {
    const moduleRoot = path.resolve(__dirname, '../..');
    const script = `console.log(JSON.stringify(require('bindings')({ bindings: 'mist_native', module_root: ${JSON.stringify(moduleRoot)} }).cudaProbe()))`;
    const out = spawnSync(process.execPath, ['-e', script], {
      env: { ...process.env, MIST_CUDA_DRIVER_PATH: '/nonexistent/driver' },
      encoding: 'utf8',
      cwd: moduleRoot,
    });
    expect(out.status).toBe(0);
    expect((JSON.parse(out.stdout) as { reason: string }).reason).toMatch(/MIST_CUDA_DRIVER_PATH: \/nonexistent\/driver/);
  });

  it.runIf(probe.driverAvailable)('names every GPU with its memory and compute capability', () => {
    expect(probe.devices.length).toBeGreaterThan(0);
    for (const gpu of probe.devices) {
      expect(gpu.name.length).toBeGreaterThan(0);
      expect(gpu.memoryBytes).toBeGreaterThan(1 << 30);
      expect(gpu.computeCapability).toBeGreaterThanOrEqual(50);
    }
    const cuda = backends().find((b) => b.name === 'cuda');
    expect(cuda?.gpus?.[0]?.name).toBe(probe.devices[0].name);
  });

  it('reports whether kernel images were built, and where', () => {
    expect(probe.kernels.directory).toMatch(/cuda-kernels$/);
    if (probe.kernels.files.length === 0) expect(probe.kernels.reason).toMatch(/without CUDA kernels|no \*\.fatbin/);
    else for (const f of probe.kernels.files) expect(f).toMatch(/\.fatbin$/);
  });

  it('declares a signature for every CUDA op, and each op but cast exists on the CPU under the same name', () => {
    const cpu = new Set(loadAddon<KernelAddon>().kernelOpNames());
    for (const op of cudaOps()) {
      expect(op.signature, op.name).toMatch(/^[xfim*XFIM]+$/);
      if (op.name !== 'cast') expect(cpu.has(op.name), op.name).toBe(true);
    }
  });
});

describe('kernel images against a GPU and a driver', () => {
  it('names a driver older than the nvcc and a GPU the images hold no code for', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-kernels-'));
    fs.writeFileSync(path.join(dir, 'a.fatbin'), 'not read by the check');
    fs.writeFileSync(path.join(dir, 'manifest.txt'), 'cuda 13000\nsass 80 86 89 90\nptx 90\n');
    const saved = process.env.MIST_CUDA_KERNELS_DIR;
    process.env.MIST_CUDA_KERNELS_DIR = dir;
    try {
      const check = cudaAddon().cudaKernelCompatibility;
      expect(check({ name: 'NVIDIA H200', computeCapability: 90 }, 13000)).toBeNull();
      expect(check({ name: 'NVIDIA B200', computeCapability: 100 }, 13000)).toBeNull(); // PTX 9.0 JIT-compiles
      expect(check({ name: 'NVIDIA H200', computeCapability: 90 }, 12040)).toMatch(/built by CUDA 13\.0 and this driver supports CUDA 12\.4/);
      expect(check({ name: 'Tesla T4', computeCapability: 75 }, 13000)).toMatch(/Tesla T4 is sm_75; the CUDA kernels hold code for sm_80, sm_86, sm_89, sm_90 and PTX for sm_90 and newer/);
      fs.rmSync(path.join(dir, 'manifest.txt'));
      expect(check({ name: 'Tesla T4', computeCapability: 75 }, 13000)).toBeNull(); // no manifest: the module loader decides
    } finally {
      if (saved === undefined) delete process.env.MIST_CUDA_KERNELS_DIR;
      else process.env.MIST_CUDA_KERNELS_DIR = saved;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(cudaProbe().kernels.files.length === 0)('the build wrote a manifest of what its images hold', () => {
    const k = cudaProbe().kernels;
    expect(k.cudaVersion).toBeGreaterThanOrEqual(11000);
    expect(k.sass).toEqual([80, 86, 89, 90]);
    expect(k.ptx).toBe(90);
  });
});

describe('roundToDType (what an upload stores)', () => {
  it('rounds to nearest even for bf16 and f16 and keeps f32', () => {
    const v = new Float32Array([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 65504, 65520, 2 ** -25, 3 * 2 ** -26, -0.1, Infinity]);
    expect([...roundToDType(v, 'bf16')]).toEqual([1, 1, 1 + 2 ** -6, 65536, 65536, 2 ** -25, 3 * 2 ** -26, Math.fround(-0.10009765625), Infinity]);
    expect([...roundToDType(v, 'f16')]).toEqual([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 65504, Infinity, 0, 2 ** -24, Math.fround(-0.0999755859375), Infinity]);
    expect(roundToDType(v, 'f32')).toEqual(v);
  });
});
