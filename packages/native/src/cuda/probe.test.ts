// What the CUDA backend reports, on any machine: on one without a GPU (CI) it is unavailable with the
// driver loader's reason and every device entry point throws that reason instead of crashing; on a
// GPU host it names the GPU with its memory. The conversions an upload applies need no GPU.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { loadAddon } from '../addon';
import { backends } from '../collectives';
import type { KernelAddon } from '../kernels/addon-kernels';
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
      expect(op.signature, op.name).toMatch(/^[xfi*XFI]+$/);
      if (op.name !== 'cast') expect(cpu.has(op.name), op.name).toBe(true);
    }
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
