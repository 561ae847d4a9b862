// Host<->device copies. On a CPU host "device" memory is host memory, so the copy an offloading
// executor does is a memcpy between two host buffers (Float32Array.prototype.set); that is what is
// timed and labelled (hostToDevice, "memcpy on a CPU host"). With NCCL/CUDA the device-memory
// helpers of @mist/native (copyToDevice/copyToHost) would be timed instead; not available here.
// Also: the slowdown of compute while such copies run beside it on another thread.
import { Worker } from 'node:worker_threads';
import { KernelBatch } from '@mist/native';
import { filledArray } from './compute-bench';
import { type AlphaBetaFit, fitTransfer } from './fit';
import type { MatmulShape, ProfileGrid } from './grids';
import type { ProgressCounter } from './progress';
import { median, nowSeconds, timeSync } from './timing';

export interface CopyPoint {
  bytes: number;
  seconds: number;
}

export async function measureCopies(grid: ProfileGrid, progress: ProgressCounter): Promise<{ points: CopyPoint[]; fit: AlphaBetaFit }> {
  const max = Math.max(...grid.copyBytes) / 4;
  const src = filledArray(max, 9), dst = new Float32Array(max);
  const points: CopyPoint[] = [];
  for (const bytes of grid.copyBytes) {
    const n = bytes / 4, s = src.subarray(0, n), d = dst.subarray(0, n);
    d.set(s);
    const t0 = nowSeconds();
    d.set(s);
    const group = Math.max(1, Math.min(4096, Math.round(grid.sampleSeconds / Math.max(1e-7, nowSeconds() - t0))));
    const t = timeSync((g) => {
      for (let i = 0; i < g; i++) d.set(s);
    }, { warmup: grid.warmup, repeats: grid.repeats, group });
    points.push({ bytes, seconds: t.median });
    progress.tick(`host<->device copy ${bytes} B`);
  }
  const fit = fitTransfer('hostToDevice (memcpy on a CPU host): seconds = c0 + c1 * bytes', points);
  return { points, fit };
}

/** The copy thread: copies `bytes` back and forth until the shared flag turns 1. */
const COPY_THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const flag = new Int32Array(workerData.flag);
const src = new Float32Array(workerData.bytes / 4).fill(1.5);
const dst = new Float32Array(workerData.bytes / 4);
dst.set(src);
parentPort.postMessage('started');
let copies = 0;
while (Atomics.load(flag, 0) === 0) { dst.set(src); copies++; }
parentPort.postMessage(copies);
`;

/** Compute time of a GEMM batch alone and while a copy thread streams `copyBytes` buffers beside it. */
export async function measureCopyOverlap(
  grid: ProfileGrid, shape: MatmulShape, count: number, copyBytes: number, progress: ProgressCounter,
): Promise<{ aloneSeconds: number; besideSeconds: number }> {
  const { m, n, k } = shape;
  const a = filledArray(m * k, 1), b = filledArray(k * n, 2), c = new Float32Array(m * n);
  const batch = new KernelBatch();
  const run = async (): Promise<number> => {
    const t0 = nowSeconds();
    for (let i = 0; i < count; i++) batch.matmul({ c, a, b, m, n, k });
    await batch.run();
    return nowSeconds() - t0;
  };
  for (let i = 0; i < grid.warmup; i++) await run();
  const alone: number[] = [];
  for (let i = 0; i < grid.overlapRepeats; i++) alone.push(await run());

  const flag = new SharedArrayBuffer(4);
  const worker = new Worker(COPY_THREAD, { eval: true, workerData: { flag, bytes: copyBytes } });
  const done = new Promise<number>((resolve, reject) => {
    worker.on('error', reject);
    worker.on('message', (msg: unknown) => {
      if (typeof msg === 'number') resolve(msg);
    });
  });
  await new Promise<void>((resolve, reject) => {
    worker.once('error', reject);
    worker.once('message', () => resolve());
  });
  const beside: number[] = [];
  try {
    for (let i = 0; i < grid.overlapRepeats; i++) beside.push(await run());
  } finally {
    Atomics.store(new Int32Array(flag), 0, 1);
    await done;
    await worker.terminate();
  }
  progress.tick('compute beside copies');
  return { aloneSeconds: median(alone), besideSeconds: median(beside) };
}
