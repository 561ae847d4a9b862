// Compute measurements on the CPU kernels of @mist/native: the matmul grid, the element-wise ops
// under the analyzer's table names, fused attention, the memory bandwidth, the optimizer step and
// the per-kernel dispatch cost. Kernels run the way the executor runs them: recorded into a
// KernelBatch and executed off the JavaScript thread, so per-call costs match a training step.
import type { FitReport } from '@mist/core';
import { KernelBatch, type KernelOps } from '@mist/native';
import { fitLineRelative, fitReport, fitTransfer } from './fit';
import type { AttentionCase, ProfileGrid } from './grids';
import type { ProgressCounter } from './progress';
import { groupSize, median, nowSeconds } from './timing';

export interface MatmulPoint {
  m: number;
  n: number;
  k: number;
  seconds: number;
}
export interface OpPoint {
  op: string;
  elements: number;
  seconds: number;
}

/** Deterministic values in [-0.5, 0.5): no zeros or denormals that could take a faster path. */
export function filledArray(n: number, seed = 1): Float32Array {
  const a = new Float32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    a[i] = x / 4294967296 - 0.5;
  }
  return a;
}

/** A kernel measurement ready to sample: `run(g)` records g calls into a batch and runs it. */
export interface Probe {
  name: string;
  group: number;
  run(group: number): Promise<void>;
}

/** Wraps one call's worth of kernels; groups small work so that one sample lasts about `sampleSeconds`. */
export async function makeProbe(name: string, record: (k: KernelOps) => void, sampleSeconds: number): Promise<Probe> {
  const batch = new KernelBatch();
  const run = async (g: number): Promise<void> => {
    for (let i = 0; i < g; i++) record(batch);
    await batch.run();
  };
  await run(1); // first touch of the buffers
  const t0 = nowSeconds();
  await run(1);
  return { name, run, group: groupSize(nowSeconds() - t0, sampleSeconds) };
}

/**
 * Warm-up, then `repeats` rounds that each take one sample of every probe, then the median per
 * probe (seconds per call). Round-robin spreads each point's samples over the whole measurement, so
 * a burst of load from another process spoils one sample of many points, not every sample of one.
 */
export async function sampleRoundRobin(probes: readonly Probe[], grid: Pick<ProfileGrid, 'warmup' | 'repeats'>, progress?: ProgressCounter): Promise<number[]> {
  for (const p of probes) for (let i = 0; i < grid.warmup; i++) await p.run(p.group);
  const samples = probes.map(() => [] as number[]);
  for (let r = 0; r < grid.repeats; r++) {
    for (let i = 0; i < probes.length; i++) {
      const p = probes[i];
      const t0 = nowSeconds();
      await p.run(p.group);
      samples[i].push((nowSeconds() - t0) / p.group);
      progress?.tick(`${p.name} (round ${r + 1}/${grid.repeats})`);
    }
  }
  return samples.map(median);
}

/**
 * Shared float buffers by slot, so that every op's probe can exist at once without holding
 * gigabytes: slot i is one array of the largest size, handed out as views.
 */
export class BufferPool {
  private readonly slots: Float32Array[] = [];

  constructor(private readonly maxElements: number) {}

  f32(slot: number, n: number): Float32Array {
    if (n > this.maxElements) throw new RangeError(`buffer pool: ${n} elements requested, ${this.maxElements} available`);
    this.slots[slot] ??= filledArray(this.maxElements, slot + 3);
    return this.slots[slot].subarray(0, n);
  }
}

/**
 * Runs GEMMs for about `seconds` before anything is timed: the kernel pool's threads, the libuv
 * thread that runs batches and the CPU clock all need to be awake, or the first points come out slow.
 */
export async function warmUpKernels(seconds: number): Promise<void> {
  const n = 256, a = filledArray(n * n, 1), b = filledArray(n * n, 2), c = new Float32Array(n * n);
  const batch = new KernelBatch();
  const end = nowSeconds() + seconds;
  while (nowSeconds() < end) {
    batch.matmul({ c, a, b, m: n, n, k: n });
    await batch.run();
  }
}

/** Width of the rows of the element-wise ops (norms, embedding, bias): a mid-size hidden. */
const ROW = 256;
const SEQ = 64;
const HEAD_DIM = 64;
const VOCAB = 1024;

// Pool slots: 0-2 are inputs (never written), 3-5 outputs.
const X = 0, DY = 1, U = 2, OUT = 3, OUT2 = 4, OUT3 = 5;

interface OpCase {
  /** The analyzer's opTable name (ELEMENTWISE_TABLE_NAMES, or `<name>_backward`). */
  op: string;
  /** Views for `elements` elements of the op's main tensor, and the recording of one call. */
  setup(n: number, pool: BufferPool): (k: KernelOps) => void;
}

/**
 * The element-wise ops of the CPU backend under the analyzer's names. `elements` is the op's main
 * tensor as the analyzer counts it (op-graph.ts). Where the backend runs something else than the
 * name says, the comment says what is timed. No CPU kernel exists for a standalone softmax or
 * dropout (the executor fuses the softmax into attention and applies no dropout): not measured.
 */
export const OP_CASES: OpCase[] = [
  { op: 'layernorm', setup: (n, p) => {
    const rows = n / ROW, mean = new Float32Array(rows), rstd = new Float32Array(rows), g = filledArray(ROW, 4), b = filledArray(ROW, 5);
    const x = p.f32(X, n), y = p.f32(OUT, n);
    return (k) => k.layerNorm(y, mean, rstd, x, g, b, rows, ROW, 1e-5);
  } },
  { op: 'layernorm_backward', setup: (n, p) => {
    const rows = n / ROW, mean = filledArray(rows, 7), rstd = new Float32Array(rows).fill(1), g = filledArray(ROW, 4);
    const dg = new Float32Array(ROW), db = new Float32Array(ROW), x = p.f32(X, n), dy = p.f32(DY, n), dx = p.f32(OUT, n);
    return (k) => k.layerNormBackward(dx, dg, db, dy, x, g, mean, rstd, rows, ROW);
  } },
  { op: 'rmsnorm', setup: (n, p) => {
    const rows = n / ROW, rstd = new Float32Array(rows), g = filledArray(ROW, 4), x = p.f32(X, n), y = p.f32(OUT, n);
    return (k) => k.rmsNorm(y, rstd, x, g, rows, ROW, 1e-5);
  } },
  { op: 'rmsnorm_backward', setup: (n, p) => {
    const rows = n / ROW, rstd = new Float32Array(rows).fill(1), g = filledArray(ROW, 4), dg = new Float32Array(ROW);
    const x = p.f32(X, n), dy = p.f32(DY, n), dx = p.f32(OUT, n);
    return (k) => k.rmsNormBackward(dx, dg, dy, x, g, rstd, rows, ROW);
  } },
  { op: 'add', setup: (n, p) => {
    const a = p.f32(X, n), b = p.f32(DY, n), out = p.f32(OUT, n);
    return (k) => k.add(out, a, b);
  } },
  // Residual backward: the branch gradient added into the residual's (read 2, write 1).
  { op: 'add_backward', setup: (n, p) => {
    const dst = p.f32(OUT, n), src = p.f32(DY, n);
    return (k) => k.accumulate(dst, src, 1);
  } },
  // The CPU backend's bias + residual add (no dropout): biasAdd then add.
  { op: 'dropout_add', setup: (n, p) => {
    const rows = n / ROW, bias = filledArray(ROW, 5), y = p.f32(OUT2, n), x = p.f32(X, n), out = p.f32(OUT, n);
    return (k) => {
      k.biasAdd(y, bias, rows, ROW);
      k.add(out, x, y);
    };
  } },
  // Its backward on the CPU backend: the bias gradient (sum over rows); the residual passes through.
  { op: 'dropout_add_backward', setup: (n, p) => {
    const rows = n / ROW, db = new Float32Array(ROW), dy = p.f32(DY, n);
    return (k) => k.biasGrad(db, dy, rows, ROW);
  } },
  { op: 'gelu', setup: (n, p) => {
    const x = p.f32(X, n), y = p.f32(OUT, n);
    return (k) => k.gelu(y, x);
  } },
  { op: 'gelu_backward', setup: (n, p) => {
    const x = p.f32(X, n), dy = p.f32(DY, n), dx = p.f32(OUT, n);
    return (k) => k.geluBackward(dx, dy, x);
  } },
  { op: 'swiglu', setup: (n, p) => {
    const g = p.f32(X, n), u = p.f32(U, n), y = p.f32(OUT, n);
    return (k) => k.swiglu(y, g, u);
  } },
  { op: 'swiglu_backward', setup: (n, p) => {
    const g = p.f32(X, n), u = p.f32(U, n), dy = p.f32(DY, n), dg = p.f32(OUT, n), du = p.f32(OUT2, n);
    return (k) => k.swigluBackward(dg, du, dy, g, u);
  } },
  // Rotary embedding of [rows, heads, 64] with 64-token sequences (the analyzer counts q and k together).
  { op: 'rope', setup: (n, p) => {
    const heads = ROW / HEAD_DIM, rows = n / ROW, x = p.f32(X, n), y = p.f32(OUT, n);
    return (k) => k.rope(y, x, rows, SEQ, heads, HEAD_DIM);
  } },
  { op: 'rope_backward', setup: (n, p) => {
    const heads = ROW / HEAD_DIM, rows = n / ROW, dy = p.f32(DY, n), dx = p.f32(OUT, n);
    return (k) => k.ropeBackward(dx, dy, rows, SEQ, heads, HEAD_DIM);
  } },
  // Token + learned position embedding of rows x 256 from a 1024-token vocabulary.
  { op: 'embedding', setup: (n, p) => {
    const rows = n / ROW, tokens = Int32Array.from({ length: rows }, (_, i) => (i * 7919) % VOCAB);
    const wte = filledArray(VOCAB * ROW, 3), wpe = filledArray(SEQ * ROW, 4), out = p.f32(OUT, n);
    const shape = { rows, hidden: ROW, vocab: VOCAB, seq: SEQ, maxPos: SEQ };
    return (k) => k.embedding(out, tokens, wte, wpe, shape);
  } },
  { op: 'embedding_backward', setup: (n, p) => {
    const rows = n / ROW, tokens = Int32Array.from({ length: rows }, (_, i) => (i * 7919) % VOCAB);
    const dwte = new Float32Array(VOCAB * ROW), dwpe = new Float32Array(SEQ * ROW), dout = p.f32(DY, n);
    const shape = { rows, hidden: ROW, vocab: VOCAB, seq: SEQ, maxPos: SEQ };
    return (k) => k.embeddingBackward(dwte, dwpe, dout, tokens, shape);
  } },
  // Training-mode cross-entropy over rows x 1024 logits: the loss and its gradient in one fused
  // kernel, as the executor runs it in forward (nothing is left for the backward).
  { op: 'cross_entropy', setup: (n, p) => {
    const rows = n / VOCAB, loss = new Float32Array(rows), logits = p.f32(OUT3, n);
    const targets = Int32Array.from({ length: rows }, (_, i) => (i * 31) % VOCAB);
    return (k) => k.crossEntropy(loss, logits, targets, logits, rows, VOCAB, 1 / rows);
  } },
];

export interface AttentionPoint extends AttentionCase {
  forwardSeconds: number;
  backwardSeconds: number;
  /** The analyzer's FLOP count of the forward: 4 * b * s^2 * heads * headDim (op-graph.ts, attn.flash). */
  forwardFlops: number;
}

export interface StreamMeasurements {
  /** kernels.copy points (bytes moved = 8 per element: one read, one write). */
  copy: OpPoint[];
  /** AdamW steps over `elements` parameters. */
  adamw: OpPoint[];
  /** Memory bandwidth, bytes/s: 1 / beta of the alpha-beta fit of the copies. */
  memoryBandwidth: number;
  copyFit: FitReport;
  /**
   * Bytes/s of the optimizer step counted as the analyzer counts it for fp32 training
   * (weights + grads + 2 x optim = 4 + 4 + 16 bytes per parameter; stage-model.ts optStep).
   */
  optimizerBandwidth: number;
}

const FP32_OPTIMIZER_BYTES_PER_PARAM = 4 + 4 + 2 * 8;

export interface ComputeMeasurements {
  matmuls: MatmulPoint[];
  ops: OpPoint[];
  attention: AttentionPoint[];
  streams: StreamMeasurements;
  /** Per-kernel cost of a tiny kernel recorded in a batch: dispatch, argument checks, no work. */
  kernelLaunch: number;
  /** Cost of running one batch beside its kernels: the hand-off to the kernel thread and back. */
  batchDispatch: number;
}

const DISPATCH_FEW = 8;
const DISPATCH_MANY = 264;
const DISPATCH_BATCHES_PER_SAMPLE = 8;

/** Progress steps of measureCompute: one per sample of every point. */
export function computeSteps(grid: ProfileGrid): number {
  const points = grid.matmul.length + OP_CASES.length * grid.elementSizes.length + 2 * grid.attention.length + 2 * grid.streamSizes.length + 2;
  return points * grid.repeats;
}

/**
 * Every compute point of the grid (matmul shapes, element-wise ops, attention, memory streams, the
 * optimizer step, kernel dispatch), sampled round-robin (sampleRoundRobin).
 */
export async function measureCompute(grid: ProfileGrid, progress: ProgressCounter): Promise<ComputeMeasurements> {
  const probes: Probe[] = [];
  const add = async (name: string, record: (k: KernelOps) => void, sampleSeconds = grid.sampleSeconds): Promise<number> =>
    probes.push(await makeProbe(name, record, sampleSeconds)) - 1;

  const maxA = Math.max(...grid.matmul.map((s) => s.m * s.k));
  const maxB = Math.max(...grid.matmul.map((s) => s.k * s.n));
  const maxC = Math.max(...grid.matmul.map((s) => s.m * s.n));
  const a = filledArray(maxA, 1), b = filledArray(maxB, 2), c = new Float32Array(maxC);
  const matmulIdx: number[] = [];
  for (const { m, n, k } of grid.matmul) {
    const args = { c: c.subarray(0, m * n), a: a.subarray(0, m * k), b: b.subarray(0, k * n), m, n, k };
    matmulIdx.push(await add(`matmul ${m}x${n}x${k}`, (ops) => ops.matmul(args)));
  }

  const pool = new BufferPool(Math.max(...grid.elementSizes, ...grid.streamSizes));
  const opIdx: { op: string; elements: number; i: number }[] = [];
  for (const oc of OP_CASES) {
    for (const elements of grid.elementSizes) opIdx.push({ op: oc.op, elements, i: await add(`${oc.op} ${elements}`, oc.setup(elements, pool)) });
  }

  const attnIdx: { a: AttentionCase; fwd: number; bwd: number }[] = [];
  for (const at of grid.attention) {
    const rows = at.batch * at.seq, width = at.heads * at.headDim;
    const shape = { batch: at.batch, seq: at.seq, heads: at.heads, kvHeads: at.heads, headDim: at.headDim };
    const q = filledArray(rows * width, 3), kk = filledArray(rows * width, 4), v = filledArray(rows * width, 5);
    const o = new Float32Array(rows * width), lse = new Float32Array(at.batch * at.heads * at.seq);
    const dout = filledArray(rows * width, 6), dq = new Float32Array(rows * width), dk = new Float32Array(rows * width), dv = new Float32Array(rows * width);
    const fwd = await add(`attention b${at.batch} s${at.seq} ${at.heads}x${at.headDim}`, (k) => k.attention(o, lse, q, kk, v, shape));
    const bwd = await add(`attention backward b${at.batch} s${at.seq}`, (k) => k.attentionBackward(dq, dk, dv, dout, q, kk, v, o, lse, shape));
    attnIdx.push({ a: at, fwd, bwd });
  }

  const streamIdx: { n: number; copy: number; adamw: number }[] = [];
  for (const n of grid.streamSizes) {
    const src = pool.f32(X, n), dst = pool.f32(OUT, n);
    const copy = await add(`copy ${n}`, (k) => k.copy(dst, src));
    const args = {
      param: pool.f32(OUT, n), grad: pool.f32(DY, n), m: pool.f32(OUT2, n), v: pool.f32(OUT3, n),
      step: 1, lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01,
    };
    streamIdx.push({ n, copy, adamw: await add(`adamw ${n}`, (k) => k.adamw(args)) });
  }
  // Dispatch: batches of a few and of many empty kernels. The slope is the cost per kernel
  // (recording, argument checks, the call); the intercept is the batch's hand-off to the kernel
  // thread and back, which the executor pays once per module pass (measured there, runtime-bench.ts).
  const tiny = new Float32Array(16);
  const dispatchProbe = (calls: number): Probe => {
    const batch = new KernelBatch();
    return {
      name: `kernel dispatch x${calls}`, group: DISPATCH_BATCHES_PER_SAMPLE,
      async run(batches: number) {
        for (let r = 0; r < batches; r++) {
          for (let i = 0; i < calls; i++) batch.fill(tiny, 1);
          await batch.run();
        }
      },
    };
  };
  const fewIdx = probes.push(dispatchProbe(DISPATCH_FEW)) - 1;
  const manyIdx = probes.push(dispatchProbe(DISPATCH_MANY)) - 1;

  const t = await sampleRoundRobin(probes, grid, progress);

  const matmuls = grid.matmul.map((s, j) => ({ ...s, seconds: t[matmulIdx[j]] }));
  const ops = opIdx.map((o) => ({ op: o.op, elements: o.elements, seconds: t[o.i] }));
  const attention = attnIdx.map(({ a: at, fwd, bwd }) => ({
    ...at, forwardSeconds: t[fwd], backwardSeconds: t[bwd], forwardFlops: 4 * at.batch * at.seq * at.seq * at.heads * at.headDim,
  }));
  const copy = streamIdx.map((x) => ({ op: 'copy', elements: x.n, seconds: t[x.copy] }));
  const adamw = streamIdx.map((x) => ({ op: 'adamw', elements: x.n, seconds: t[x.adamw] }));
  const copyFit = fitTransfer('device memory copy: seconds = c0 + c1 * bytes (read + write)', copy.map((p) => ({ bytes: 8 * p.elements, seconds: p.seconds })));
  // Per-parameter time of the step: the median over sizes (robust to one disturbed point).
  const perParam = median(adamw.map((p) => p.seconds / p.elements));
  const kernelLaunch = Math.max(0, (t[manyIdx] - t[fewIdx]) / (DISPATCH_MANY - DISPATCH_FEW));
  return {
    matmuls, ops, attention, kernelLaunch, batchDispatch: Math.max(0, t[fewIdx] - DISPATCH_FEW * kernelLaunch),
    streams: {
      copy, adamw, copyFit: copyFit.report, memoryBandwidth: 1 / copyFit.beta,
      optimizerBandwidth: FP32_OPTIMIZER_BYTES_PER_PARAM / perParam,
    },
  };
}

/** Line fits of the matmul table (x = FLOPs) and of every op (x = elements), with their errors. */
export function computeFits(matmuls: readonly MatmulPoint[], ops: readonly OpPoint[], kernelLaunch: number): Record<string, FitReport> {
  const fits: Record<string, FitReport> = {};
  const mm = matmuls.map((p) => ({ x: 2 * p.m * p.n * p.k, y: p.seconds }));
  const line = fitLineRelative(mm);
  if (line) {
    // The analyzer charges max(c0, kernelLaunch) per GEMM: halfFlops = max(0, c0 - launch) * rate plus the launch.
    fits.matmul = fitReport('matmul: seconds = c0 + c1 * FLOPs (FLOPs = 2mnk)', Math.max(line.c0, kernelLaunch), line.c1, mm);
  }
  const names = [...new Set(ops.map((o) => o.op))];
  for (const name of names) {
    const pts = ops.filter((o) => o.op === name).map((o) => ({ x: o.elements, y: o.seconds }));
    const l = fitLineRelative(pts);
    // The analyzer keeps c0 >= 0 (hardware-cost.ts computeRates).
    if (l) fits[`op:${name}`] = fitReport(`${name}: seconds = c0 + c1 * elements`, Math.max(0, l.c0), l.c1, pts);
  }
  return fits;
}
