// Compute measurements on the GPU (device 0), the CUDA counterparts of compute-bench.ts: the GEMM
// grid in the compute dtype (event-timed on the device: cudaGemmBenchmark), the element-wise ops the
// CUDA executor runs under the analyzer's opTable names, causal flash attention forward and
// backward, device-memory copies (the achievable HBM bandwidth), the optimizer step, and the cost
// of one kernel launch from JavaScript.
//
// Everything but the GEMMs is timed the way the executor meets it: ops queued through KernelOps on
// the compute stream, a group of calls lasting at least `sampleSeconds` between two host clock
// readings, the second one after a synchronize (a 20 ms group makes the synchronize's ~10-20 us and
// the clock's resolution negligible). A group of kernels shorter than their launches is
// host-bound: its time per call is then the launch rate, as in a training step.
import type { KernelOps, TensorLike } from '@mist/native';
import { maskFloats } from '@mist/native';
import { filledArray, type MatmulPoint, type OpPoint } from './compute-bench';
import type { CudaOpShape, CudaProfileGrid } from './cuda-grids';
import type { CudaRuntime, StorageDType } from './cuda-runtime';
import type { AttentionCase } from './grids';
import type { ProgressCounter } from './progress';
import { median } from './timing';

/** A measurement ready to sample: `run(g)` queues g calls' worth of work and waits for it; seconds per call come back. */
export interface CudaProbePoint {
  name: string;
  group: number;
  run(group: number): void;
}

/** Groups above this many calls are not grown further (a launch-bound probe of 2 us per call reaches 20 ms at 10k). */
export const MAX_GROUP = 1 << 16;

/**
 * The group size at which one sample of `run` lasts about `target` seconds: after a first,
 * untimed call (module load, first touch of the memory), groups of 1, 4, 16, ... calls are timed
 * until one lasts at least half the target, and the group is scaled from it.
 */
export function calibrateGroup(run: (g: number) => void, now: () => number, target: number, maxGroup = MAX_GROUP): number {
  run(1);
  for (let g = 1; ; g = Math.min(maxGroup, g * 4)) {
    const t0 = now();
    run(g);
    const t = now() - t0;
    if (t >= target / 2 || g >= maxGroup) return Math.max(1, Math.min(maxGroup, Math.ceil((g * target) / Math.max(t, 1e-9))));
  }
}

/**
 * `grid.warmup` untimed samples of every probe, then `grid.repeats` rounds taking one sample of
 * each; the median seconds per call of every probe. Round-robin spreads a disturbance (clock
 * changes, another process on the GPU) over many points instead of all samples of one.
 */
export function sampleRoundRobinSync(
  probes: readonly CudaProbePoint[], grid: Pick<CudaProfileGrid, 'warmup' | 'repeats'>, now: () => number, progress?: ProgressCounter,
): number[] {
  for (const p of probes) for (let i = 0; i < grid.warmup; i++) p.run(p.group);
  const samples = probes.map(() => [] as number[]);
  for (let r = 0; r < grid.repeats; r++) {
    probes.forEach((p, i) => {
      const t0 = now();
      p.run(p.group);
      samples[i].push((now() - t0) / p.group);
      progress?.tick(`${p.name} (round ${r + 1}/${grid.repeats})`);
    });
  }
  return samples.map(median);
}

/**
 * Device tensors by slot, so that every op's probe can exist at once without holding one tensor
 * per probe: slot i of a dtype is one tensor of the largest size (deterministic values in
 * [-0.5, 0.5)), handed out as views.
 */
export class DevicePool<T extends TensorLike> {
  private readonly slots = new Map<string, T>();
  private host: Float32Array | undefined;
  private readonly owned: T[] = [];

  constructor(private readonly rt: CudaRuntime<T>, readonly maxElements: number) {}

  view(dtype: StorageDType, slot: number, n: number): T {
    if (n > this.maxElements) throw new RangeError(`device pool: ${n} elements requested, ${this.maxElements} available`);
    const key = `${dtype}:${slot}`;
    let t = this.slots.get(key);
    if (!t) {
      this.host ??= filledArray(this.maxElements, 7);
      t = this.rt.upload(this.host, dtype);
      this.slots.set(key, t);
    }
    return this.rt.view(t, 0, n);
  }

  /** A tensor of its own holding `n` deterministic values (small parameters, statistics). */
  own(dtype: StorageDType, n: number, seed: number): T {
    const t = this.rt.upload(filledArray(n, seed), dtype);
    this.owned.push(t);
    return t;
  }

  ints(data: Int32Array): T {
    const t = this.rt.upload(data, 'i32');
    this.owned.push(t);
    return t;
  }

  /** Drops the host copy of the slots' values (the device keeps them). */
  dropHostValues(): void {
    this.host = undefined;
  }

  free(): void {
    for (const t of [...this.slots.values(), ...this.owned]) this.rt.free(t);
    this.slots.clear();
    this.owned.length = 0;
  }
}

/** What an op case gets to build its call: storage-dtype and fp32 views, small tensors, the shapes. */
export interface CudaOpContext<T extends TensorLike> {
  /** A view of `n` elements of storage-dtype slot `slot`. */
  x(slot: number, n: number): T;
  /** A view of `n` elements of fp32 slot `slot`. */
  f(slot: number, n: number): T;
  /** A storage-dtype (or fp32 with `fp32`) tensor of its own of n values. */
  small(n: number, seed: number, fp32?: boolean): T;
  ints(data: Int32Array): T;
  shape: CudaOpShape;
}

export interface CudaOpCase {
  /** The analyzer's opTable name (ELEMENTWISE_TABLE_NAMES, or `<name>_backward`). */
  op: string;
  setup<T extends TensorLike>(n: number, c: CudaOpContext<T>): (k: KernelOps<T, T>) => void;
}

// Storage-dtype pool slots: 0-2 are inputs (never written), 3-5 outputs. fp32 slots 0-2 hold the
// optimizer's master weights and moments, 3 the dropout masks.
const X = 0, DY = 1, U = 2, OUT = 3, OUT2 = 4, OUT3 = 5;
const MASK = 3;
/** fp32 slots are numbered after the storage-dtype ones, so that with f32 storage the two never share a tensor. */
const FP32_SLOTS = 16;
/** Dropout of the probe: the usual residual/attention rate; the mask stream's key is arbitrary. */
const DROPOUT = { p: 0.1, keyHi: 0x9e3779b9, keyLo: 0x7f4a7c15 };

/**
 * The element-wise ops of the CUDA executor under the analyzer's names; `elements` is the op's
 * output as the analyzer counts it (op-graph.ts: outputs without masks). Where the executor runs
 * something else than the name says, the comment says what is timed. Not measured: the MoE ops
 * (moe_router, moe_permute, moe_sum), which the analyzer prices from the memory bandwidth.
 */
export const CUDA_OP_CASES: CudaOpCase[] = [
  { op: 'layernorm', setup: (n, c) => {
    const rows = n / c.shape.row, cols = c.shape.row;
    const mean = c.small(rows, 11, true), rstd = c.small(rows, 12, true), g = c.small(cols, 4), b = c.small(cols, 5);
    const x = c.x(X, n), y = c.x(OUT, n);
    return (k) => k.layerNorm(y, mean, rstd, x, g, b, rows, cols, 1e-5);
  } },
  { op: 'layernorm_backward', setup: (n, c) => {
    const rows = n / c.shape.row, cols = c.shape.row;
    const mean = c.small(rows, 11, true), rstd = c.small(rows, 12, true), g = c.small(cols, 4);
    const dg = c.small(cols, 6), db = c.small(cols, 7), x = c.x(X, n), dy = c.x(DY, n), dx = c.x(OUT, n);
    return (k) => k.layerNormBackward(dx, dg, db, dy, x, g, mean, rstd, rows, cols);
  } },
  { op: 'rmsnorm', setup: (n, c) => {
    const rows = n / c.shape.row, cols = c.shape.row;
    const rstd = c.small(rows, 12, true), g = c.small(cols, 4), x = c.x(X, n), y = c.x(OUT, n);
    return (k) => k.rmsNorm(y, rstd, x, g, rows, cols, 1e-5);
  } },
  { op: 'rmsnorm_backward', setup: (n, c) => {
    const rows = n / c.shape.row, cols = c.shape.row;
    const rstd = c.small(rows, 12, true), g = c.small(cols, 4), dg = c.small(cols, 6);
    const x = c.x(X, n), dy = c.x(DY, n), dx = c.x(OUT, n);
    return (k) => k.rmsNormBackward(dx, dg, dy, x, g, rstd, rows, cols);
  } },
  { op: 'add', setup: (n, c) => {
    const a = c.x(X, n), b = c.x(DY, n), out = c.x(OUT, n);
    return (k) => k.add(out, a, b);
  } },
  // The residual's backward in the executor (block-runner.ts): the stream's gradient is copied, the branch reads it in place.
  { op: 'add_backward', setup: (n, c) => {
    const g = c.x(DY, n), stream = c.x(OUT, n);
    return (k) => k.copy(stream, g);
  } },
  // Megatron-LM's fused residual: out = stream + dropout(branch), mask written.
  { op: 'dropout_add', setup: (n, c) => {
    const rows = n / c.shape.row, stream = c.x(X, n), branch = c.x(U, n), out = c.x(OUT, n), mask = c.f(MASK, maskFloats(n));
    return (k) => k.dropoutAdd(out, mask, stream, branch, rows, c.shape.row, 0, DROPOUT);
  } },
  // Its backward in the executor: the stream's gradient copied, the branch's through the mask.
  { op: 'dropout_add_backward', setup: (n, c) => {
    const g = c.x(DY, n), stream = c.x(OUT, n), branch = c.x(OUT2, n), mask = c.f(MASK, maskFloats(n));
    return (k) => {
      k.copy(stream, g);
      k.dropoutBackward(branch, mask, g, DROPOUT.p);
    };
  } },
  // Standalone dropout (the embedding's; the unfused attention's on the probabilities).
  { op: 'dropout', setup: (n, c) => {
    const rows = n / c.shape.row, x = c.x(X, n), out = c.x(OUT, n), mask = c.f(MASK, maskFloats(n));
    return (k) => k.dropout(out, mask, x, rows, c.shape.row, 0, DROPOUT);
  } },
  { op: 'dropout_backward', setup: (n, c) => {
    const dy = c.x(DY, n), dx = c.x(OUT, n), mask = c.f(MASK, maskFloats(n));
    return (k) => k.dropoutBackward(dx, mask, dy, DROPOUT.p);
  } },
  // The unfused attention's causal softmax over [rows, seq] scores (whole sequences of seq queries).
  { op: 'softmax', setup: (n, c) => {
    const seq = c.shape.seq, scores = c.x(X, n), probs = c.x(OUT, n);
    return (k) => k.causalSoftmax(probs, scores, n / seq, seq);
  } },
  { op: 'softmax_backward', setup: (n, c) => {
    const seq = c.shape.seq, probs = c.x(X, n), dprobs = c.x(DY, n), dscores = c.x(OUT, n);
    return (k) => k.causalSoftmaxBackward(dscores, dprobs, probs, n / seq, seq);
  } },
  { op: 'gelu', setup: (n, c) => {
    const x = c.x(X, n), y = c.x(OUT, n);
    return (k) => k.gelu(y, x);
  } },
  { op: 'gelu_backward', setup: (n, c) => {
    const x = c.x(X, n), dy = c.x(DY, n), dx = c.x(OUT, n);
    return (k) => k.geluBackward(dx, dy, x);
  } },
  { op: 'swiglu', setup: (n, c) => {
    const g = c.x(X, n), u = c.x(U, n), y = c.x(OUT, n);
    return (k) => k.swiglu(y, g, u);
  } },
  { op: 'swiglu_backward', setup: (n, c) => {
    const g = c.x(X, n), u = c.x(U, n), dy = c.x(DY, n), dg = c.x(OUT, n), du = c.x(OUT2, n);
    return (k) => k.swigluBackward(dg, du, dy, g, u);
  } },
  { op: 'squared_relu', setup: (n, c) => {
    const x = c.x(X, n), y = c.x(OUT, n);
    return (k) => k.squaredRelu(y, x);
  } },
  { op: 'squared_relu_backward', setup: (n, c) => {
    const x = c.x(X, n), dy = c.x(DY, n), dx = c.x(OUT, n);
    return (k) => k.squaredReluBackward(dx, dy, x);
  } },
  // Rotary embedding of [rows, row / headDim heads, headDim] (the analyzer counts q and k together).
  { op: 'rope', setup: (n, c) => {
    const { row, seq, headDim } = c.shape, x = c.x(X, n), y = c.x(OUT, n);
    return (k) => k.rope(y, x, n / row, seq, row / headDim, headDim);
  } },
  { op: 'rope_backward', setup: (n, c) => {
    const { row, seq, headDim } = c.shape, dy = c.x(DY, n), dx = c.x(OUT, n);
    return (k) => k.ropeBackward(dx, dy, n / row, seq, row / headDim, headDim);
  } },
  // Token + learned position embedding of rows x row from a vocab-row table.
  { op: 'embedding', setup: (n, c) => {
    const { row, seq, vocab } = c.shape, rows = n / row;
    const tokens = c.ints(Int32Array.from({ length: rows }, (_, i) => (i * 7919) % vocab));
    const wte = c.x(U, vocab * row), wpe = c.x(DY, seq * row), out = c.x(OUT, n);
    const shape = { rows, hidden: row, vocab, seq, maxPos: seq };
    return (k) => k.embedding(out, tokens, wte, wpe, shape);
  } },
  { op: 'embedding_backward', setup: (n, c) => {
    const { row, seq, vocab } = c.shape, rows = n / row;
    const tokens = c.ints(Int32Array.from({ length: rows }, (_, i) => (i * 7919) % vocab));
    const dwte = c.x(OUT, vocab * row), dwpe = c.x(OUT2, seq * row), dout = c.x(DY, n);
    const shape = { rows, hidden: row, vocab, seq, maxPos: seq };
    return (k) => k.embeddingBackward(dwte, dwpe, dout, tokens, shape);
  } },
  // Training-mode cross-entropy over rows x vocab logits: the loss and the logits' gradient in one
  // kernel, as the executor runs it in forward (head.ts); nothing is left for the backward.
  { op: 'cross_entropy', setup: (n, c) => {
    const vocab = c.shape.vocab, rows = n / vocab, loss = c.small(rows, 13, true), logits = c.x(OUT3, n);
    const targets = c.ints(Int32Array.from({ length: rows }, (_, i) => (i * 31) % vocab));
    return (k) => k.crossEntropy(loss, logits, targets, logits, rows, vocab, 1 / rows);
  } },
];

export interface CudaAttentionPoint extends AttentionCase {
  forwardSeconds: number;
  backwardSeconds: number;
  /** The analyzer's FLOP count of the forward: 4 * b * s^2 * heads * headDim (op-graph.ts, attention). */
  forwardFlops: number;
}

export interface CudaComputeMeasurements {
  matmuls: MatmulPoint[];
  /** The GEMM paths that ran ('cublaslt', 'own'). */
  gemmPaths: string[];
  ops: OpPoint[];
  attention: CudaAttentionPoint[];
  /** Device-memory copies in the storage dtype (bytes moved: 2 x elements x dtype bytes). */
  copy: OpPoint[];
  /** AdamW steps over `elements` parameters (fp32 master weights and moments, gradients in the storage dtype). */
  adamw: OpPoint[];
  /** Seconds per kernel launch: the slope of batches of few and of many tiny kernels. */
  kernelLaunch: number;
  /** A batch's fixed cost besides its launches: the synchronize and the clock readings. */
  synchronize: number;
}

/** Progress steps of measureCudaCompute: one per sample of every point. */
export function cudaComputeSteps(grid: CudaProfileGrid): number {
  const points = grid.matmul.length + CUDA_OP_CASES.length * grid.elementSizes.length + 2 * grid.attention.length + 2 * grid.streamSizes.length + 2;
  return points * grid.repeats;
}

/** GEMMs on the compute stream for about `seconds` before anything is timed (clocks up, kernels loaded). */
export function warmUpGpu<T extends TensorLike>(rt: CudaRuntime<T>, grid: CudaProfileGrid, storage: StorageDType): void {
  const { m, n, k } = grid.overlapMatmul;
  const a = rt.upload(filledArray(m * k, 1), storage), b = rt.upload(filledArray(k * n, 2), storage), c = rt.upload(new Float32Array(m * n), storage);
  try {
    const end = rt.now() + grid.warmupSeconds;
    do {
      rt.kernels.matmul({ c, a, b, m, n, k });
      rt.synchronize('compute');
    } while (rt.now() < end);
  } finally {
    for (const t of [a, b, c]) rt.free(t);
  }
}

/** Elements the pool's slots need: the largest element-wise or stream size, and the embedding's tables. */
function poolElements(grid: CudaProfileGrid): number {
  const { row, seq, vocab } = grid.opShape;
  return Math.max(...grid.elementSizes, ...grid.streamSizes, vocab * row, seq * row);
}

/**
 * The event-timed GEMM table: per shape, iterations chosen so that one timed run lasts about
 * `sampleSeconds`, then warm-up and repeats round-robin over the shapes (the median per shape).
 * `path` is MIST_GEMM's (the matmul op's own choice: cuBLASLt when it opened, else the own kernels).
 */
export function measureGemms<T extends TensorLike>(
  rt: CudaRuntime<T>, grid: CudaProfileGrid, storage: StorageDType, progress: ProgressCounter,
): { matmuls: MatmulPoint[]; gemmPaths: string[] } {
  const env = process.env.MIST_GEMM;
  const path = env === 'own' || env === 'cublaslt' ? env : 'auto';
  const paths = new Set<string>();
  // Device seconds per launch of shape i over `iterations` timed launches (CUDA events).
  const time = (i: number, iterations: number): number => {
    const { m, n, k } = grid.matmul[i];
    const r = rt.gemmBenchmark({ m, n, k, dtype: storage, path, iterations });
    paths.add(r.path);
    return r.ms / 1000;
  };
  const iterations = grid.matmul.map((_, i) => {
    const perLaunch = time(i, 3);
    return perLaunch > 0 ? Math.max(3, Math.min(100000, Math.ceil(grid.sampleSeconds / perLaunch))) : 1000;
  });
  for (let i = 0; i < grid.matmul.length; i++) for (let w = 0; w < grid.warmup; w++) time(i, iterations[i]);
  const samples = grid.matmul.map(() => [] as number[]);
  for (let r = 0; r < grid.repeats; r++) {
    grid.matmul.forEach(({ m, n, k }, i) => {
      samples[i].push(time(i, iterations[i]));
      progress.tick(`matmul ${m}x${n}x${k} (round ${r + 1}/${grid.repeats})`);
    });
  }
  return { matmuls: grid.matmul.map((s, i) => ({ ...s, seconds: median(samples[i]) })), gemmPaths: [...paths].sort() };
}

/**
 * Every compute point of the grid but the GEMMs (element-wise ops, attention, memory copies, the
 * optimizer step, launch overhead), host-timed round-robin (sampleRoundRobinSync).
 */
export function measureCudaCompute<T extends TensorLike>(
  rt: CudaRuntime<T>, grid: CudaProfileGrid, storage: StorageDType, progress: ProgressCounter,
): CudaComputeMeasurements {
  const gemms = measureGemms(rt, grid, storage, progress);
  const k = rt.kernels;
  const probes: CudaProbePoint[] = [];
  const add = (name: string, record: (ops: KernelOps<T, T>) => void): number => {
    const run = (g: number): void => {
      for (let i = 0; i < g; i++) record(k);
      rt.synchronize('compute');
    };
    return probes.push({ name, run, group: calibrateGroup(run, rt.now, grid.sampleSeconds) }) - 1;
  };

  const pool = new DevicePool(rt, poolElements(grid));
  const temps: T[] = [];
  try {
    const ctx: CudaOpContext<T> = {
      x: (slot, n) => pool.view(storage, slot, n),
      f: (slot, n) => pool.view('f32', FP32_SLOTS + slot, n),
      small: (n, seed, fp32) => pool.own(fp32 ? 'f32' : storage, n, seed),
      ints: (data) => pool.ints(data),
      shape: grid.opShape,
    };
    const opIdx: { op: string; elements: number; i: number }[] = [];
    for (const oc of CUDA_OP_CASES) {
      for (const elements of grid.elementSizes) opIdx.push({ op: oc.op, elements, i: add(`${oc.op} ${elements}`, oc.setup(elements, ctx)) });
    }

    const attnIdx: { a: AttentionCase; fwd: number; bwd: number }[] = [];
    for (const at of grid.attention) {
      const n = at.batch * at.seq * at.heads * at.headDim;
      const shape = { batch: at.batch, seq: at.seq, heads: at.heads, kvHeads: at.heads, headDim: at.headDim };
      const t = (seed: number): T => {
        const x = rt.upload(filledArray(n, seed), storage);
        temps.push(x);
        return x;
      };
      const q = t(3), kk = t(4), v = t(5), o = t(6), dout = t(7), dq = t(8), dk = t(9), dv = t(10);
      const lse = rt.upload(new Float32Array(at.batch * at.heads * at.seq), 'f32');
      temps.push(lse);
      const fwd = add(`attention b${at.batch} s${at.seq} ${at.heads}x${at.headDim}`, (ops) => ops.attention(o, lse, q, kk, v, shape));
      const bwd = add(`attention backward b${at.batch} s${at.seq} ${at.heads}x${at.headDim}`,
        (ops) => ops.attentionBackward(dq, dk, dv, dout, q, kk, v, o, lse, shape));
      attnIdx.push({ a: at, fwd, bwd });
    }

    const streamIdx: { n: number; copy: number; adamw: number }[] = [];
    for (const n of grid.streamSizes) {
      const src = ctx.x(X, n), dst = ctx.x(OUT, n);
      const copy = add(`copy ${n}`, (ops) => ops.copy(dst, src));
      // fp32 master weights and moments; with a 16-bit dtype the kernel also writes the compute copy.
      const args = {
        param: ctx.f(0, n), grad: ctx.x(DY, n), m: ctx.f(1, n), v: ctx.f(2, n),
        ...(storage === 'f32' ? {} : { copy: ctx.x(OUT2, n) }),
        step: 1, lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01,
      };
      streamIdx.push({ n, copy, adamw: add(`adamw ${n}`, (ops) => ops.adamw(args)) });
    }
    pool.dropHostValues();

    // Launch overhead: batches of few and of many tiny kernels, each batch ended by a synchronize.
    // The slope is the cost per launch; the intercept, the synchronize's.
    const tiny = ctx.small(16, 17);
    // A "call" here is a batch: the group counts batches, each followed by its own synchronize.
    const batchProbe = (calls: number): number => {
      const run = (g: number): void => {
        for (let b = 0; b < g; b++) {
          for (let i = 0; i < calls; i++) k.fill(tiny, 1);
          rt.synchronize('compute');
        }
      };
      return probes.push({ name: `kernel launch x${calls}`, run, group: calibrateGroup(run, rt.now, grid.sampleSeconds) }) - 1;
    };
    const fewIdx = batchProbe(grid.dispatchFew);
    const manyIdx = batchProbe(grid.dispatchMany);

    const t = sampleRoundRobinSync(probes, grid, rt.now, progress);

    const kernelLaunch = Math.max(0, (t[manyIdx] - t[fewIdx]) / (grid.dispatchMany - grid.dispatchFew));
    return {
      ...gemms,
      ops: opIdx.map((o) => ({ op: o.op, elements: o.elements, seconds: t[o.i] })),
      attention: attnIdx.map(({ a, fwd, bwd }) => ({
        ...a, forwardSeconds: t[fwd], backwardSeconds: t[bwd], forwardFlops: 4 * a.batch * a.seq * a.seq * a.heads * a.headDim,
      })),
      copy: streamIdx.map((s) => ({ op: 'copy', elements: s.n, seconds: t[s.copy] })),
      adamw: streamIdx.map((s) => ({ op: 'adamw', elements: s.n, seconds: t[s.adamw] })),
      kernelLaunch,
      synchronize: Math.max(0, t[fewIdx] - grid.dispatchFew * kernelLaunch),
    };
  } finally {
    rt.synchronize();
    for (const x of temps) rt.free(x);
    pool.free();
  }
}
