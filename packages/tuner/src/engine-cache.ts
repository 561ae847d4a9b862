// On-disk cache of the engine search's grid points (engine-search.ts), so that a re-tune of an engine
// space (the Megatron-LM and DeepSpeed baselines of `mist tune`, `mist tune --target ENGINE`) with
// another global batch re-costs every grid point from a few numbers instead of the analyzer.
//
// Why a point's result carries over: a grid point is one strategy for the whole model (pp, tp, cp,
// dp, ep, micro-batch, sp, ZeRO, offload, recompute mode); at another global batch the same point
// comes back with another G = batch / (b * dp). Each of its candidates (a partition and a chunk count
// v, with the least checkpointing that fits) costs, by the analyzer's iterationTime,
//   total(G) = alpha + G * S
// with S the bottleneck's steady time and alpha the rest (firsts, end-of-step work, the interleaved
// fill: both of iterationTime's forms for v > 1 have the slope S), as long as the stage estimates do
// not change with G: the cost columns do not read G (frontier-cache.ts dependsOnG, checked per tune)
// and every stage's in-flight count is its G-free maximum ("saturated" G below). The candidates that
// fit then fit at every saturated G, so a point keeps the lines of its candidates that are best for
// some G (no other has both a smaller alpha and a smaller S), and a re-tune takes the least line at
// its G. Interleaving is allowed only when pp divides G, so that fact is part of a point's key.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import type { AnalyzerContext } from '@mist/analyzer';
import { type EngineCapabilities, writeFileAtomic } from '@mist/core';
import { contextKey, FRONTIER_CACHE_VERSION } from './frontier-cache';
import type { SearchSpace } from './search-space';

/** One candidate of a grid point: total(G) = alpha + G * slope, with the partition and chunk count it came from. */
export interface PointLine {
  alpha: number;
  slope: number;
  /** Index in the point's engine partitions (engine-search.ts enginePartitions). */
  partition: number;
  v: number;
}

/**
 * Whether every stage of a pp-stage plan with v chunks per rank keeps its G-free in-flight count at G
 * (analyzer inFlightMicroBatches: min(pp - i, G) for v = 1, min(2 (pp - i - 1) + (v - 1) pp + 1, G v) / v
 * else; stage 0 needs the most).
 */
export function saturatedAt(G: number, pp: number, v: number): boolean {
  return v === 1 ? G >= pp : G * v >= 2 * (pp - 1) + (v - 1) * pp + 1;
}

/** The lines no other line beats at every G (a smaller or equal alpha and slope). */
export function usefulLines(lines: readonly PointLine[]): PointLine[] {
  const sorted = [...lines].sort((a, b) => a.slope - b.slope || a.alpha - b.alpha);
  const out: PointLine[] = [];
  let leastAlpha = Infinity;
  for (const l of sorted) {
    if (l.alpha < leastAlpha) {
      out.push(l);
      leastAlpha = l.alpha;
    }
  }
  return out;
}

/** The least total of a point's lines at G (Infinity without lines) and the line giving it. */
export function bestLineAt(lines: readonly PointLine[], G: number): { totalS: number; line: PointLine | null } {
  let totalS = Infinity;
  let line: PointLine | null = null;
  for (const l of lines) {
    const t = l.alpha + G * l.slope;
    if (t < totalS) {
      totalS = t;
      line = l;
    }
  }
  return { totalS, line };
}

interface EngineCacheFile {
  version: number;
  /** pointKey -> flat [alpha, slope, partition, v, ...]; an empty list: nothing of the point fits. */
  points: Record<string, number[]>;
}

/** Points kept per key (the newest); a first tune of gpt3-175b on 512 GPUs writes a few thousand. */
const MAX_POINTS = 200_000;

export class EngineCache {
  hits = 0;
  misses = 0;
  private points = new Map<string, number[]>();
  private dirty = false;

  private constructor(private readonly file: string) {}

  /**
   * Opens (or starts) the cache of an engine's grid under the analyzer context and space in `dir`;
   * an unreadable file starts empty.
   */
  static open(dir: string, ctx: AnalyzerContext, space: SearchSpace, caps: EngineCapabilities): EngineCache {
    // The frontier cache's context key leaves out what only the whole-plan grid reads.
    const key = crypto.createHash('sha256').update(JSON.stringify({
      context: contextKey(ctx, space), engine: caps.engine, engineVersion: caps.engineVersion,
      maxStages: space.maxStages, uniformPartition: space.uniformPartition, maxVirtualStages: space.maxVirtualStages ?? null,
    })).digest('hex').slice(0, 32);
    const cache = new EngineCache(path.join(dir, `${key}.engine.json`));
    try {
      const data = JSON.parse(fs.readFileSync(cache.file, 'utf8')) as EngineCacheFile;
      if (data.version === FRONTIER_CACHE_VERSION && data.points) for (const [k, v] of Object.entries(data.points)) cache.points.set(k, v);
    } catch {
      // no cache yet, or a damaged one: start empty (it is rewritten on save)
    }
    return cache;
  }

  get(pointKey: string): PointLine[] | null {
    const flat = this.points.get(pointKey);
    if (!flat) {
      this.misses++;
      return null;
    }
    this.hits++;
    const out: PointLine[] = [];
    for (let o = 0; o + 3 < flat.length; o += 4) out.push({ alpha: flat[o], slope: flat[o + 1], partition: flat[o + 2], v: flat[o + 3] });
    return out;
  }

  put(pointKey: string, lines: readonly PointLine[]): void {
    this.points.delete(pointKey);
    this.points.set(pointKey, lines.flatMap((l) => [l.alpha, l.slope, l.partition, l.v]));
    this.dirty = true;
  }

  /** Writes the file (atomically: core's writeFileAtomic), the newest MAX_POINTS points. */
  save(): void {
    if (!this.dirty) return;
    const entries = [...this.points.entries()];
    const kept = entries.slice(Math.max(0, entries.length - MAX_POINTS));
    writeFileAtomic(this.file, JSON.stringify({ version: FRONTIER_CACHE_VERSION, points: Object.fromEntries(kept) } satisfies EngineCacheFile));
    this.dirty = false;
  }
}
