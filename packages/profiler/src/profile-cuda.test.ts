// `mist profile --device cuda` without a GPU: the grids, the fits and the assembly of a profile from
// measurement records, the whole measuring run on a simulated GPU (whose parameters the fits must
// recover, every op call checked against the CUDA ops' signatures), and the element-wise cases' shapes
// checked by the CPU kernels (same names and shape rules). On a GPU host the last block measures
// the real device on the smoke grid; elsewhere it is skipped with the probe's reason.
import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compileStageModel } from '@mist/analyzer';
import { getModel, type HardwareProfile, parseHardwareProfile, parseTrainingSpec } from '@mist/core';
import { cudaOps, cudaProbe, kernels, maskFloats } from '@mist/native';
import { filledArray } from './compute-bench';
import { calibrateGroup, CUDA_OP_CASES, type CudaOpContext } from './cuda-compute-bench';
import { checkCudaGrid, CUDA_SMOKE_GRID, cudaProfileGrid, type CudaProfileGrid } from './cuda-grids';
import { SIMULATED_GPU, simulatedCudaRuntime } from './testing/cuda-simulated-runtime';
import {
  assembleCudaProfile, attentionEfficiencyFit, catalogGpu, type CudaMeasurements, cudaMachineKind, cudaUnavailableReason, derivedPeakFlops,
  profileCuda,
} from './profile-cuda';
import type { ProfileProgress } from './progress';

describe('CUDA profile grids', () => {
  it('the quick, full and smoke grids fit the op shapes', () => {
    for (const g of [cudaProfileGrid(true), cudaProfileGrid(false), CUDA_SMOKE_GRID]) expect(() => checkCudaGrid(g)).not.toThrow();
    expect(cudaProfileGrid(false).sampleSeconds).toBeGreaterThanOrEqual(0.02);
  });

  it('names the field of a grid that does not fit', () => {
    const bad = (patch: Partial<CudaProfileGrid>): CudaProfileGrid => ({ ...CUDA_SMOKE_GRID, ...patch });
    expect(() => checkCudaGrid(bad({ elementSizes: [4096 + 64] }))).toThrow(/elementSizes must be multiples of opShape\.row 64, opShape\.vocab 256/);
    expect(() => checkCudaGrid(bad({ attention: [{ batch: 1, seq: 64, heads: 2, headDim: 48 }] }))).toThrow(/attention\.headDim must be 16, 32, 64 or 128/);
    expect(() => checkCudaGrid(bad({ matmul: [{ m: 8, n: 8, k: 8 }] }))).toThrow(/at least 2 points/);
    expect(() => checkCudaGrid(bad({ dispatchMany: 4 }))).toThrow(/dispatchMany must be an integer above dispatchFew 4/);
  });
});

describe('CUDA profile: pure parts', () => {
  it('calibrateGroup sizes a group to the target duration from a clock', () => {
    let clock = 0;
    const run = (g: number): void => {
      clock += 20e-6 + g * 3e-6; // a synchronize, then 3 us per call
    };
    const g = calibrateGroup(run, () => clock, 0.02);
    expect(g * 3e-6 + 20e-6).toBeGreaterThan(0.015);
    expect(g * 3e-6 + 20e-6).toBeLessThan(0.03);
    // A clock that never moves gives the largest group instead of dividing by zero.
    expect(calibrateGroup(() => undefined, () => 0, 0.02, 1000)).toBe(1000);
  });

  it('derives the datasheet peaks from SMs, clock and architecture', () => {
    const a100 = derivedPeakFlops({ computeCapability: 80, multiprocessors: 108, clockKHz: 1410000 });
    expect(a100.bf16 / 1e12).toBeCloseTo(311.9, 0);
    expect(a100.fp32 / 1e12).toBeCloseTo(19.5, 1);
    const h100 = derivedPeakFlops({ computeCapability: 90, multiprocessors: 132, clockKHz: 1830000 });
    expect(h100.fp16 / 1e12).toBeCloseTo(989.5, 0);
    // Volta: no bf16 tensor cores; an architecture between known ones takes the older one's rates.
    const v100 = derivedPeakFlops({ computeCapability: 70, multiprocessors: 80, clockKHz: 1530000 });
    expect(v100.bf16).toBe(v100.fp32);
    expect(derivedPeakFlops({ computeCapability: 87, multiprocessors: 16, clockKHz: 1e6 }).fp16).toBe(16 * 1e9 * 1024);
  });

  it('finds catalog GPUs by their driver names and describes the machine kind', () => {
    expect(catalogGpu('NVIDIA H200')?.name).toBe('h200');
    expect(catalogGpu('NVIDIA A100-SXM4-80GB')?.name).toBe('a100-80gb');
    expect(catalogGpu('NVIDIA GeForce RTX 4090')).toBeNull();
    expect(cudaMachineKind({ name: 'NVIDIA  H200 ', computeCapability: 90, multiprocessors: 132 })).toBe('NVIDIA H200 (sm_90, 132 SMs)');
  });

  it('says why a host cannot be profiled', () => {
    const base = { driverAvailable: false, devices: [], kernels: { directory: '', files: [] }, cublasLt: { available: false } };
    expect(cudaUnavailableReason({ ...base, available: false, reason: 'libcuda.so.1: cannot open shared object file' })).toMatch(/libcuda/);
    expect(cudaUnavailableReason({ ...base, available: true })).toMatch(/no CUDA device/);
    expect(cudaUnavailableReason({ ...base, available: true, devices: [SIMULATED_GPU.gpu] })).toBeNull();
  });

  it('recovers the attention efficiency of exact points', () => {
    const rate = 500e12, eff = 0.45, launch = 5e-6, work = 0.5;
    const points = [512, 1024, 4096].map((seq) => {
      const f = 4 * 2 * seq * seq * 16 * 128;
      return { batch: 2, seq, heads: 16, headDim: 128, forwardFlops: f, forwardSeconds: launch + (work * f) / (rate * eff), backwardSeconds: launch + (2.5 * work * f) / (rate * eff) };
    });
    const fit = attentionEfficiencyFit(points, rate, launch, work);
    expect(fit.efficiency).toBeCloseTo(eff, 10);
    expect(fit.report.maxRelError).toBeLessThan(1e-9);
    expect(fit.report.points).toBe(6);
  });
});

/** Measurement records of a GPU that follows linear models exactly. */
function records(dtype: 'bf16' | 'fp32'): CudaMeasurements {
  const rate = 600e12, bw = 3e12, launch = 4e-6, bytes = dtype === 'bf16' ? 2 : 4;
  const matmuls = CUDA_SMOKE_GRID.matmul.map((s) => ({ ...s, seconds: 8e-6 + (2 * s.m * s.n * s.k) / rate }));
  const ops = ['layernorm', 'gelu', 'gelu_backward', 'cross_entropy'].flatMap((op) =>
    [1 << 20, 1 << 24].map((elements) => ({ op, elements, seconds: launch + (3 * bytes * elements) / bw })));
  const attention = cudaProfileGrid(true).attention.map((a) => {
    const f = 4 * a.batch * a.seq * a.seq * a.heads * a.headDim;
    return { ...a, forwardFlops: f, forwardSeconds: launch + (0.5 * f) / (rate * 0.5), backwardSeconds: launch + (1.25 * f) / (rate * 0.5) };
  });
  const sizes = [1 << 20, 1 << 24, 1 << 26];
  const state = dtype === 'bf16' ? 2 + 2 + 24 : 4 + 4 + 16;
  return {
    dtype, quick: true, gpu: { ...SIMULATED_GPU.gpu, name: 'NVIDIA H200', memoryBytes: 150e9 }, devices: 1, driverVersion: 13000,
    compute: {
      matmuls, gemmPaths: ['cublaslt'], ops, attention,
      copy: sizes.map((n) => ({ op: 'copy', elements: n, seconds: 3e-6 + (2 * bytes * n) / bw })),
      // The optimizer at 80% of the copy bandwidth, counted as the analyzer counts its bytes.
      adamw: sizes.map((n) => ({ op: 'adamw', elements: n, seconds: (state * n) / (0.8 * bw) })),
      kernelLaunch: launch, synchronize: 15e-6,
    },
    copies: {
      toDevice: [1 << 16, 1 << 22, 1 << 26].map((b) => ({ bytes: b, seconds: 8e-6 + b / 50e9 })),
      toHost: [1 << 16, 1 << 22, 1 << 26].map((b) => ({ bytes: b, seconds: 8e-6 + b / 50e9 })),
    },
    copyOverlap: { aloneSeconds: 0.05, besideSeconds: 0.052, copies: 100, copyBytes: 1 << 26, gemms: 40, minTail: 0.01 },
    contextBytes: 700e6,
    executor: { ran: true, model: 'llama-tiny', seq: 64, microBatch: 4, gradAccumSteps: 4, passesPerStep: 49, stepSeconds: [0.011, 0.012, 0.013] },
    seconds: 42,
  };
}

describe('assembleCudaProfile', () => {
  it('turns exact measurement records into a measured profile with their rates', () => {
    const p = assembleCudaProfile(records('bf16'));
    expect(parseHardwareProfile(JSON.parse(JSON.stringify(p)))).toEqual(p);
    expect(p.source).toBe('measured');
    expect(p.machineKind).toBe('NVIDIA H200 (sm_90, 132 SMs)');
    expect(p.cluster.gpu.name).toBe('h200');
    expect(p.cluster.name).toBe('1x1-h200');
    expect(p.cluster.gpu.memoryBytes).toBe(150e9);
    expect(p.compute.peakFlops).toBe(989e12);
    const rel = (x: number, want: number): number => Math.abs(x - want) / want;
    expect(rel(p.compute.peakFlops * p.compute.matmulEfficiency, 600e12)).toBeLessThan(1e-6);
    expect(rel(p.compute.matmulHalfEfficiencyFlops, (8e-6 - 4e-6) * 600e12)).toBeLessThan(1e-6);
    expect(rel(p.compute.attentionEfficiency, 0.5)).toBeLessThan(1e-6);
    expect(p.compute.attentionWorkFraction).toBe(0.5);
    expect(rel(p.compute.memoryBandwidth, 3e12)).toBeLessThan(1e-6);
    expect(rel(p.compute.memoryEfficiency, 0.8)).toBeLessThan(1e-6);
    expect(p.compute.kernelLaunch).toBe(4e-6);
    expect(rel(p.links.hostToDevice.beta, 1 / 50e9)).toBeLessThan(1e-6);
    expect(rel(p.links.hostToDevice.alpha, 8e-6)).toBeLessThan(1e-6);
    expect(rel(p.overlap.offloadSlowdown, 1.04)).toBeLessThan(1e-9);
    expect(p.memory.cudaContextBytes).toBe(700e6);
    // One GPU: no collectives; what stands in for them is named.
    expect(p.collectives).toBeUndefined();
    expect(p.collectiveTable).toBeUndefined();
    expect(p.overlapTable?.map((o) => o.beside)).toEqual(['copy']);
    expect(p.unmeasured?.collectives).toMatch(/NCCL needs two GPUs/);
    expect(p.unmeasured?.['overlap.commSlowdown']).toMatch(/datasheet/);
    expect(p.backend).toBeUndefined();
    expect(p.unmeasured?.backend).toMatch(/no cuda kind/);
    expect(String(p.host?.['backend.cuda.executorProbe'])).toMatch(/llama-tiny.*median step 12\.00 ms over 3 steps, 49 module passes/);
    expect(p.opTable?.filter((o) => o.op === 'attention')).toHaveLength(3);
    for (const f of ['matmul', 'attention', 'memory:copy', 'link:hostToDevice', 'link:hostToDevice:toHost', 'op:gelu']) expect(p.fits?.[f], f).toBeDefined();
    expect(p.fits?.matmul.maxRelError).toBeLessThan(1e-6);
  });

  it('prices the optimizer by the dtype\'s bytes and names a failed executor probe', () => {
    const r = records('fp32');
    const p = assembleCudaProfile({ ...r, executor: { ran: false, reason: 'trainSingleProcess on the GPU failed: out of memory' } });
    expect(Math.abs(p.compute.memoryEfficiency - 0.8)).toBeLessThan(1e-6);
    expect(p.compute.peakFlops).toBe(67e12);
    expect(p.unmeasured?.backend).toMatch(/did not run \(trainSingleProcess on the GPU failed: out of memory\)/);
    expect(p.host?.['backend.cuda.stepSeconds']).toBeUndefined();
  });

  it('derives the peaks of a GPU the catalog does not know, and refuses a table without a rate', () => {
    const r = records('bf16');
    const p = assembleCudaProfile({ ...r, gpu: { ...r.gpu, name: 'NVIDIA Imaginary X9', computeCapability: 90, multiprocessors: 100, clockKHz: 2e6 } });
    expect(p.cluster.gpu.name).toBe('nvidia-imaginary-x9');
    expect(p.compute.peakFlops).toBe(100 * 2e9 * 4096);
    expect(p.unmeasured?.['cluster.gpu.peakFlops']).toMatch(/not in the GPU catalog/);
    const flat = { ...r.compute, matmuls: r.compute.matmuls.map((x) => ({ ...x, seconds: 1e-3 })) };
    expect(() => assembleCudaProfile({ ...r, compute: flat })).toThrow(/no positive rate/);
  });

  it('drives the analyzer: a bf16 stage of gpt-tiny gets finite, positive times', () => {
    const profile = assembleCudaProfile(records('bf16'));
    const training = parseTrainingSpec({ globalBatch: 8, seqLen: 64, paramDtype: 'bf16', computeDtype: 'bf16' });
    const model = compileStageModel({ model: getModel('gpt-tiny'), training, profile });
    const est = model.estimate({
      layers: 2, position: 'first', inFlight: 2, pp: 2, mesh: { nodes: 1, gpusPerNode: 1 }, microBatchSize: 2,
      gradAccumSteps: 4, dp: 1, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 0,
      offload: { weights: 0, grads: 0, optim: 0, activations: 0 },
    });
    expect(Number.isFinite(est.steadyTimeS) && est.steadyTimeS > 0).toBe(true);
  });
});

/** The CUDA ops' buffer signatures, from the addon's registry (no GPU needed). */
function signatures(): Map<string, string> {
  return new Map(cudaOps().map((o) => [o.name, o.signature]));
}

describe('profileCuda on a simulated GPU', () => {
  let run: Promise<{ profile: HardwareProfile; events: ProfileProgress[]; calls: Map<string, number> }> | undefined;
  const simulated = (): NonNullable<typeof run> => {
    run ??= (async () => {
      const rt = simulatedCudaRuntime(SIMULATED_GPU, signatures());
      const events: ProfileProgress[] = [];
      const profile = await profileCuda({ runtime: rt, grid: CUDA_SMOKE_GRID, dtype: 'bf16', onProgress: (e) => events.push(e) });
      return { profile, events, calls: rt.calls };
    })();
    return run;
  };

  it('measures every part, each call matching its CUDA op\'s signature, with progress to the total', async () => {
    const { profile: p, events, calls } = await simulated();
    expect(parseHardwareProfile(JSON.parse(JSON.stringify(p)))).toEqual(p);
    expect(p.machineKind).toBe('NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)');
    expect(p.cluster.gpu.name).toBe('h100-sxm');
    expect(p.matmulTable).toHaveLength(CUDA_SMOKE_GRID.matmul.length);
    const names = new Set(p.opTable?.map((o) => o.op));
    for (const c of CUDA_OP_CASES) expect(names.has(c.op), c.op).toBe(true);
    for (const op of ['attention', 'attention_backward', 'copy', 'adamw']) expect(names.has(op), op).toBe(true);
    expect(p.opTable?.filter((o) => o.op === 'layernorm').map((o) => o.elements)).toEqual(CUDA_SMOKE_GRID.elementSizes);
    expect(p.copyTable?.map((c) => c.bytes)).toEqual(CUDA_SMOKE_GRID.copyBytes);
    for (const op of ['matmul', 'attention', 'attentionBackward', 'adamw', 'dropoutAdd', 'crossEntropy', 'embeddingBackward', 'fill']) {
      expect(calls.get(op) ?? 0, op).toBeGreaterThan(0);
    }
    expect(calls.get('copyAsync') ?? 0).toBeGreaterThan(0);
    expect(events.at(-1)?.done).toBe(events.at(-1)?.total);
    expect(events.every((e, i) => e.done === i + 1)).toBe(true);
  });

  it('recovers the simulated device\'s rates from its measurements', async () => {
    const { profile: p } = await simulated();
    const s = SIMULATED_GPU;
    const rel = (x: number, want: number): number => Math.abs(x - want) / want;
    expect(rel(p.compute.peakFlops * p.compute.matmulEfficiency, s.matmulRate)).toBeLessThan(1e-6);
    expect(rel(p.compute.kernelLaunch, s.hostLaunch)).toBeLessThan(0.02);
    expect(rel(p.compute.memoryBandwidth, s.memoryBandwidth)).toBeLessThan(0.05);
    expect(rel(p.compute.attentionEfficiency, s.attentionEfficiency)).toBeLessThan(0.05);
    expect(rel(1 / p.links.hostToDevice.beta, 1 / s.copyBeta)).toBeLessThan(0.05);
    expect(rel(p.overlap.offloadSlowdown, s.copySlowdown)).toBeLessThan(0.02);
    expect(p.memory.cudaContextBytes).toBe(s.contextBytes);
    expect(p.host?.['backend.cuda.stepSeconds']).toBe(s.stepSeconds);
    expect(p.compute.memoryEfficiency).toBeLessThanOrEqual(1);
  });

  it('refuses a host without a usable GPU, naming the reason', async () => {
    const rt = simulatedCudaRuntime();
    const none = { ...rt, probe: () => ({ ...rt.probe(), available: false, reason: 'no CUDA device (cuDeviceGetCount: 0)' }) };
    await expect(profileCuda({ runtime: none, grid: CUDA_SMOKE_GRID })).rejects.toThrow(/no usable GPU here: no CUDA device/);
  });
});

describe('the CUDA element-wise cases on the CPU kernels', () => {
  // The CUDA ops take the CPU kernels' buffers and shapes, and the CPU kernels check every length:
  // each case's call runs there at the smoke grid's sizes (fp32 buffers; int32 tokens and targets).
  it.each(CUDA_OP_CASES.map((c) => c.op))('%s', (op) => {
    const oc = CUDA_OP_CASES.find((c) => c.op === op)!;
    const g = CUDA_SMOKE_GRID;
    const max = Math.max(...g.elementSizes, g.opShape.vocab * g.opShape.row);
    const slots = new Map<string, Float32Array>();
    const slot = (key: string, n: number): Float32Array => {
      let a = slots.get(key);
      if (!a) slots.set(key, (a = filledArray(max, 7)));
      return a.subarray(0, n);
    };
    const ctx: CudaOpContext<Float32Array | Int32Array> = {
      x: (i, n) => slot(`x${i}`, n), f: (i, n) => slot(`f${i}`, n), small: (n, seed) => filledArray(n, seed),
      ints: (data) => data, shape: g.opShape,
    };
    for (const n of g.elementSizes) {
      expect(maskFloats(n)).toBeLessThanOrEqual(max);
      const call = oc.setup(n, ctx);
      expect(() => call(kernels as never)).not.toThrow();
    }
  });
});

const probe = cudaProbe();
const gpuDescribe = probe.available ? describe : describe.skip;
gpuDescribe(`profileCuda on this host's GPU${probe.available ? '' : ` (skipped: ${probe.reason ?? 'CUDA unavailable'})`}`, () => {
  it.each(['bf16', 'fp32'] as const)('measures the smoke grid in %s', async (dtype) => {
    const p = await profileCuda({ grid: CUDA_SMOKE_GRID, dtype });
    expect(parseHardwareProfile(JSON.parse(JSON.stringify(p)))).toEqual(p);
    expect(p.machineKind).toMatch(/\(sm_\d+, \d+ SMs\)$/);
    expect(p.compute.kernelLaunch).toBeGreaterThan(0);
    expect(p.compute.kernelLaunch).toBeLessThan(1e-3);
    expect(p.compute.memoryBandwidth).toBeGreaterThan(1e10);
    expect(1 / p.links.hostToDevice.beta).toBeGreaterThan(1e9);
    expect(p.overlap.offloadSlowdown).toBeGreaterThanOrEqual(1);
    expect(p.memory.cudaContextBytes).toBeGreaterThan(0);
    expect(p.host?.['compute.gemmPath']).toMatch(/cublaslt|own/);
    expect(p.host?.['backend.cuda.stepSeconds'], String(p.unmeasured?.backend)).toBeGreaterThan(0);
  }, 300_000);

  // The device script (tools/device/cuda-checks.sh) keeps a quick bf16 profile of the GPU for the
  // checks that predict with it (apps/cli/src/gpu-checks).
  it.runIf(Boolean(process.env.MIST_CUDA_PROFILE_OUT))('writes a quick bf16 profile to MIST_CUDA_PROFILE_OUT', async () => {
    const p = await profileCuda({ grid: cudaProfileGrid(true), dtype: 'bf16' });
    writeFileSync(process.env.MIST_CUDA_PROFILE_OUT as string, JSON.stringify(p, null, 1) + '\n');
    expect(parseHardwareProfile(JSON.parse(JSON.stringify(p)))).toEqual(p);
  }, 300_000);
});
