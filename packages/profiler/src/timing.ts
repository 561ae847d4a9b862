// Timing with warm-up, repeats and the median: the one way every measurement of the profiler is
// taken. Sub-millisecond work is timed in groups of calls so the clock's resolution and the cost of
// reading it stay small against what is measured.
import { performance } from 'node:perf_hooks';
import { quantile } from '@mist/core';

export interface TimingOptions {
  /** Untimed runs first (caches, page faults, thread pool wake-up). */
  warmup: number;
  /** Timed samples; the result is their median. */
  repeats: number;
  /** A sample runs the work this many times and reports the time per run (default 1). */
  group?: number;
}

export interface Timing {
  /** Median seconds per run. */
  median: number;
  /** Seconds per run of every sample. */
  samples: number[];
}

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('median of no values');
  return quantile(values, 0.5);
}

export function nowSeconds(): number {
  return performance.now() / 1000;
}

/** Times `run` (asynchronous work, awaited) `warmup + repeats` times; median seconds per run. */
export async function timeAsync(run: (group: number) => Promise<void>, opts: TimingOptions): Promise<Timing> {
  const group = opts.group ?? 1;
  if (!(opts.repeats >= 1)) throw new RangeError(`repeats must be >= 1, got ${opts.repeats}`);
  for (let i = 0; i < opts.warmup; i++) await run(group);
  const samples: number[] = [];
  for (let i = 0; i < opts.repeats; i++) {
    const t0 = nowSeconds();
    await run(group);
    samples.push((nowSeconds() - t0) / group);
  }
  return { median: median(samples), samples };
}

/** Synchronous counterpart of timeAsync. */
export function timeSync(run: (group: number) => void, opts: TimingOptions): Timing {
  const group = opts.group ?? 1;
  if (!(opts.repeats >= 1)) throw new RangeError(`repeats must be >= 1, got ${opts.repeats}`);
  for (let i = 0; i < opts.warmup; i++) run(group);
  const samples: number[] = [];
  for (let i = 0; i < opts.repeats; i++) {
    const t0 = nowSeconds();
    run(group);
    samples.push((nowSeconds() - t0) / group);
  }
  return { median: median(samples), samples };
}

/**
 * How many runs to put in one sample so that it lasts about `targetSeconds`, from one probe run of
 * `probeSeconds` (at least 1, at most `maxGroup`).
 */
export function groupSize(probeSeconds: number, targetSeconds: number, maxGroup = 4096): number {
  if (!(probeSeconds > 0)) return maxGroup;
  return Math.max(1, Math.min(maxGroup, Math.round(targetSeconds / probeSeconds)));
}
