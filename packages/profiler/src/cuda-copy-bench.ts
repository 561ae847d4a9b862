// Host<->device copies on the GPU: pinned host memory to and from device memory on the 'comm'
// stream (what an offloading executor does, beside its compute), both directions; and how much
// slower GEMMs on the 'compute' stream run while such copies stream beside them (the model is
// copy-bench.ts measureCopyOverlap: the same compute alone and beside copies, the ratio of the medians).
import type { TensorLike } from '@mist/native';
import { filledArray } from './compute-bench';
import { calibrateGroup, type CudaProbePoint, sampleRoundRobinSync } from './cuda-compute-bench';
import type { CudaProfileGrid } from './cuda-grids';
import type { CudaRuntime, StorageDType } from './cuda-runtime';
import type { CopyPoint } from './copy-bench';
import { type AlphaBetaFit, fitTransfer } from './fit';
import type { ProgressCounter } from './progress';
import { median } from './timing';

export interface CudaCopyMeasurements {
  toDevice: CopyPoint[];
  toHost: CopyPoint[];
}

/** Progress steps of measureCudaCopies. */
export function cudaCopySteps(grid: CudaProfileGrid): number {
  return 2 * grid.copyBytes.length * grid.repeats;
}

/** Pinned copies of every size of the grid, each direction, on the 'comm' stream (host-timed groups, round-robin). */
export function measureCudaCopies<T extends TensorLike>(rt: CudaRuntime<T>, grid: CudaProfileGrid, progress: ProgressCounter): CudaCopyMeasurements {
  const maxBytes = Math.max(...grid.copyBytes);
  const device = rt.upload(new Float32Array(maxBytes / 4), 'f32');
  const pinned = rt.pinned(maxBytes);
  try {
    rt.synchronize();
    const probes: CudaProbePoint[] = [];
    const sizes: { direction: 'toDevice' | 'toHost'; bytes: number }[] = [];
    for (const direction of ['toDevice', 'toHost'] as const) {
      for (const bytes of grid.copyBytes) {
        const view = rt.view(device, 0, bytes / 4);
        const run = (g: number): void => {
          for (let i = 0; i < g; i++) rt.copyAsync(direction, view, pinned, 'comm');
          rt.synchronize('comm');
        };
        probes.push({ name: `${direction === 'toDevice' ? 'host->device' : 'device->host'} copy ${bytes} B`, run, group: calibrateGroup(run, rt.now, grid.sampleSeconds) });
        sizes.push({ direction, bytes });
      }
    }
    const t = sampleRoundRobinSync(probes, grid, rt.now, progress);
    const points = sizes.map((s, i) => ({ ...s, seconds: t[i] }));
    const pick = (d: 'toDevice' | 'toHost'): CopyPoint[] => points.filter((p) => p.direction === d).map(({ bytes, seconds }) => ({ bytes, seconds }));
    return { toDevice: pick('toDevice'), toHost: pick('toHost') };
  } finally {
    rt.synchronize();
    rt.free(device);
  }
}

/** Per size, the mean time of the two directions (an offloading step moves data both ways). */
export function bothDirections(c: CudaCopyMeasurements): CopyPoint[] {
  return c.toDevice.map((p) => {
    const back = c.toHost.find((q) => q.bytes === p.bytes);
    return { bytes: p.bytes, seconds: back ? (p.seconds + back.seconds) / 2 : p.seconds };
  });
}

/** The alpha-beta fits of the copies: each direction and both together (the profile's hostToDevice link). */
export function copyFits(c: CudaCopyMeasurements): { toDevice: AlphaBetaFit; toHost: AlphaBetaFit; both: AlphaBetaFit } {
  return {
    toDevice: fitTransfer('host->device copy (pinned, comm stream): seconds = c0 + c1 * bytes', c.toDevice),
    toHost: fitTransfer('device->host copy (pinned, comm stream): seconds = c0 + c1 * bytes', c.toHost),
    both: fitTransfer('hostToDevice: pinned copies, mean of both directions: seconds = c0 + c1 * bytes', bothDirections(c)),
  };
}

export interface CudaCopyOverlap {
  aloneSeconds: number;
  besideSeconds: number;
  /** Copies of `copyBytes` queued on the 'comm' stream before each sample beside them. */
  copies: number;
  copyBytes: number;
  /** GEMMs per sample. */
  gemms: number;
  /** The least time the copy stream still ran after a sample's GEMMs had finished (> 0: the copies outlasted every sample). */
  minTail: number;
}

/**
 * The time of a group of GEMMs (grid.overlapMatmul, lasting about 2.5 samples) on the compute stream
 * alone, and while copies of the largest copy size run back to back on the comm stream, alternating
 * host->device and device->host; enough copies are queued (from `copy`, the fit of both directions)
 * to outlast the GEMMs by half, so the whole sample runs beside them.
 */
export function measureCudaCopyOverlap<T extends TensorLike>(
  rt: CudaRuntime<T>, grid: CudaProfileGrid, storage: StorageDType, copy: { alpha: number; beta: number }, progress: ProgressCounter,
): CudaCopyOverlap {
  const { m, n, k } = grid.overlapMatmul;
  const copyBytes = Math.max(...grid.copyBytes);
  const a = rt.upload(filledArray(m * k, 1), storage), b = rt.upload(filledArray(k * n, 2), storage), c = rt.upload(new Float32Array(m * n), storage);
  const device = rt.upload(new Float32Array(copyBytes / 4), 'f32');
  const pinnedIn = rt.pinned(copyBytes), pinnedOut = rt.pinned(copyBytes);
  try {
    const gemms = (g: number): void => {
      for (let i = 0; i < g; i++) rt.kernels.matmul({ c, a, b, m, n, k });
      rt.synchronize('compute');
    };
    const group = calibrateGroup(gemms, rt.now, 2.5 * grid.sampleSeconds);
    const timed = (): number => {
      const t0 = rt.now();
      gemms(group);
      return rt.now() - t0;
    };
    for (let i = 0; i < grid.warmup; i++) timed();
    const alone: number[] = [];
    for (let i = 0; i < grid.overlapRepeats; i++) alone.push(timed());
    const aloneSeconds = median(alone);
    const perCopy = Math.max(1e-7, copy.alpha + copy.beta * copyBytes);
    const copies = Math.min(100000, Math.ceil((1.5 * aloneSeconds) / perCopy) + 1);
    const beside: number[] = [];
    let minTail = Infinity;
    for (let i = 0; i < grid.overlapRepeats; i++) {
      rt.synchronize();
      for (let j = 0; j < copies; j++) rt.copyAsync(j % 2 === 0 ? 'toDevice' : 'toHost', device, j % 2 === 0 ? pinnedIn : pinnedOut, 'comm');
      beside.push(timed());
      const t1 = rt.now();
      rt.synchronize('comm');
      minTail = Math.min(minTail, rt.now() - t1);
    }
    progress.tick('compute beside host<->device copies');
    return { aloneSeconds, besideSeconds: median(beside), copies, copyBytes, gemms: group, minTail };
  } finally {
    rt.synchronize();
    for (const t of [a, b, c, device]) rt.free(t);
  }
}
