// A simulated GPU behind the CudaRuntime interface, for the tests of the CUDA profiler on hosts
// without one. It keeps a virtual host clock and the time at which each stream's queued work ends:
// every op call costs the host `hostLaunch` and queues device work after the stream's earlier work
// (a roofline of its buffers' bytes, GEMM and attention FLOPs), a synchronize moves the host clock to
// the stream's end, copies queue on the comm stream, and compute kernels that start while the comm
// stream is busy run `copySlowdown` times longer. The profiler's fits should recover these
// parameters from its measurements, which tests the measuring code's orchestration and arithmetic.
// With `signatures` (cudaOps() of @mist/native) every call is also checked against the CUDA op's
// buffer signature (launch.h: x storage, f fp32, i int32, m mask words, * any float; upper case optional).
import type { CudaGpu, CudaProbe, GemmBenchmarkOptions, GemmBenchmarkResult } from '@mist/native';
import { KernelOps } from '@mist/native';
import type { CudaRuntime, ExecutorProbeRequest, StorageDType } from '../cuda-runtime';
import { STORAGE_BYTES } from '../cuda-runtime';

export class SimTensor {
  constructor(readonly length: number, readonly dtype: StorageDType | 'i32') {}
}

export interface SimulatedGpu {
  gpu: CudaGpu;
  /** GEMM FLOP/s and the device's fixed time per GEMM. */
  matmulRate: number;
  matmulOverhead: number;
  /** Bytes/s of every other kernel (its buffers' bytes, each counted once) and its fixed device time. */
  memoryBandwidth: number;
  kernelOverhead: number;
  /** Causal attention: half of 4 b s^2 h d FLOPs (2.5x backward) at matmulRate * attentionEfficiency. */
  attentionEfficiency: number;
  /** Host seconds per op call or copy, and per synchronize. */
  hostLaunch: number;
  synchronizeCost: number;
  /** Pinned copies: seconds = alpha + beta * bytes. */
  copyAlpha: number;
  copyBeta: number;
  /** Compute kernels starting while the comm stream is busy take this many times longer. */
  copySlowdown: number;
  /** Seconds of one step of the executor probe (trainSteps). */
  stepSeconds: number;
  /** Device memory outside the allocator (context). */
  contextBytes: number;
}

/**
 * An H100 by name and shape whose rates are scaled down (10 GFLOP/s, 20 GB/s) so that the smoke
 * grid's tiny points take longer on the device than their launches: their times then follow the
 * simulated model instead of the host's launch rate, and the fits can be checked against it.
 */
export const SIMULATED_GPU: SimulatedGpu = {
  gpu: { ordinal: 0, name: 'NVIDIA H100 80GB HBM3', memoryBytes: 85e9, computeCapability: 90, multiprocessors: 132, clockKHz: 1980000, maxSharedPerBlock: 232448 },
  matmulRate: 1e10,
  matmulOverhead: 4e-6,
  memoryBandwidth: 2e10,
  kernelOverhead: 2e-6,
  attentionEfficiency: 0.4,
  hostLaunch: 5e-6,
  synchronizeCost: 15e-6,
  copyAlpha: 10e-6,
  copyBeta: 1 / 20e9,
  copySlowdown: 1.08,
  stepSeconds: 0.012,
  contextBytes: 600e6,
};

type Signatures = ReadonlyMap<string, string>;

function checkSignature(op: string, sig: string | undefined, buffers: Array<SimTensor | null>): void {
  if (sig === undefined) throw new Error(`simulated GPU: no CUDA op named '${op}'`);
  if (buffers.length > sig.length) throw new Error(`${op}: ${buffers.length} buffers, the signature '${sig}' has ${sig.length}`);
  let storage: string | undefined;
  for (let i = 0; i < sig.length; i++) {
    const ch = sig[i], b = buffers[i] ?? null;
    if (b === null) {
      if (ch === ch.toLowerCase()) throw new Error(`${op}: buffer ${i} ('${ch}') is required`);
      continue;
    }
    const kind = ch.toLowerCase();
    const ok = kind === 'x' || kind === '*' ? b.dtype !== 'i32' : kind === 'i' ? b.dtype === 'i32' : b.dtype === 'f32';
    if (!ok) throw new Error(`${op}: buffer ${i} ('${ch}') has dtype ${b.dtype}`);
    if (kind === 'x') {
      storage ??= b.dtype;
      if (b.dtype !== storage) throw new Error(`${op}: buffer ${i} has dtype ${b.dtype}, the call's storage is ${storage}`);
    }
  }
}

/** The CudaRuntime of a simulated GPU (see the header). */
export function simulatedCudaRuntime(sim: SimulatedGpu = SIMULATED_GPU, signatures?: Signatures): CudaRuntime<SimTensor> & { calls: Map<string, number> } {
  let host = 0, compute = 0, comm = 0;
  const calls = new Map<string, number>();
  const bytesOf = (t: SimTensor | null): number => (t === null ? 0 : t.length * (t.dtype === 'i32' ? 4 : STORAGE_BYTES[t.dtype]));
  const deviceSeconds = (op: string, buffers: Array<SimTensor | null>, ints: number[]): number => {
    if (op === 'matmul') return (2 * ints[0] * ints[1] * ints[2]) / sim.matmulRate + sim.matmulOverhead;
    if (op === 'attention' || op === 'attentionBackward') {
      const [batch, seq, heads, , headDim] = ints;
      const flops = 0.5 * 4 * batch * seq * seq * heads * headDim * (op === 'attention' ? 1 : 2.5);
      return flops / (sim.matmulRate * sim.attentionEfficiency) + sim.kernelOverhead;
    }
    return buffers.reduce((s, b) => s + bytesOf(b), 0) / sim.memoryBandwidth + sim.kernelOverhead;
  };
  class SimKernels extends KernelOps<SimTensor, SimTensor> {
    protected override emit(op: string, buffers: Array<SimTensor | null>, ints: number[]): void {
      if (signatures) checkSignature(op, signatures.get(op), buffers);
      calls.set(op, (calls.get(op) ?? 0) + 1);
      host += sim.hostLaunch;
      const start = Math.max(host, compute);
      compute = start + deviceSeconds(op, buffers, ints) * (comm > start ? sim.copySlowdown : 1);
    }
  }
  const probe: CudaProbe = {
    available: true, driverAvailable: true, driverVersion: 13000, devices: [sim.gpu],
    kernels: { directory: '(simulated)', files: [] }, cublasLt: { available: false, reason: 'simulated' },
  };
  return {
    calls,
    probe: () => probe,
    kernels: new SimKernels(),
    upload: (data, dtype) => {
      // An upload waits for the compute stream, like the addon's (pageable source).
      host = Math.max(host, compute) + data.length * 4e-10;
      return new SimTensor(data.length, dtype);
    },
    view: (t, begin, end) => new SimTensor(Math.max(0, Math.min(end, t.length) - begin), t.dtype),
    free: () => undefined,
    synchronize: (stream) => {
      host += sim.synchronizeCost;
      if (stream !== 'comm') host = Math.max(host, compute);
      if (stream !== 'compute') host = Math.max(host, comm);
    },
    pinned: (bytes) => new ArrayBuffer(Math.min(bytes, 16)),
    copyAsync: (_direction, t) => {
      calls.set('copyAsync', (calls.get('copyAsync') ?? 0) + 1);
      host += sim.hostLaunch;
      comm = Math.max(host, comm) + sim.copyAlpha + sim.copyBeta * bytesOf(t);
    },
    gemmBenchmark: (o: GemmBenchmarkOptions): GemmBenchmarkResult => {
      const it = o.iterations ?? 20;
      const perLaunch = (2 * o.m * o.n * o.k) / sim.matmulRate + sim.matmulOverhead;
      host = Math.max(host, compute) + (it + 3) * perLaunch;
      compute = host;
      return {
        path: 'simulated', m: o.m, n: o.n, k: o.k, dtype: o.dtype ?? 'bf16', transA: false, transB: false, iterations: it,
        ms: perLaunch * 1e3, tflops: (2 * o.m * o.n * o.k) / perLaunch / 1e12,
      };
    },
    memory: () => ({ deviceTotal: sim.gpu.memoryBytes, deviceFree: sim.gpu.memoryBytes - sim.contextBytes - 1e6, reserved: 1e6 }),
    emptyCache: () => undefined,
    now: () => host,
    trainSteps: async (r: ExecutorProbeRequest) => {
      host = Math.max(host, compute) + r.steps * sim.stepSeconds;
      return Array.from({ length: r.steps }, () => sim.stepSeconds);
    },
  };
}
