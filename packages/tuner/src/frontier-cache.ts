// On-disk cache of intra-stage Pareto sets, so that a re-tune with another global batch or node count
// reuses the stage groups it shares with an earlier tune.
//
// What a group's Pareto set depends on: the analyzer context except the cluster's node count (the
// cost model reads the cluster only through gpusPerNode, "more than one node" and the host memory
// per GPU: analyzer compile.ts derivedSymbols, host-memory.ts), the space's per-stage grid (tp limit,
// sp, micro-batch rule, ckpt mode, ZeRO levels, offload levels), and per group: position, layers,
// mesh, depth range (the pp its queries carry), in-flight range and the samples per micro-batch
// s = globalBatch / G (which fixes b = s / dp
// of every configuration). G itself enters the search's cost columns only if the analyzer says so:
// `dependsOnG` probes the kernel, and G joins the group key when it does. A re-tune with a doubled
// global batch therefore finds every group it searches at G' = 2G under the old key of G.
//
// A set is also cut by the search's cutoff C at G (points with imbalance = first + last and
// imbalance + (G - 1) * steady >= C are left out, intra-stage.ts). It stands for the set at (G', C')
// only when every left-out point is useless there too: imbalance + (G' - 1) * steady >= C' whenever
// imbalance + (G - 1) * steady >= C. The group's spec minima (lower bounds of every fitting point's
// steady time and imbalance, bounds.ts) make that provable for more (G', C') than non-negative times
// alone (cutoffCovers), and so does the least bottleneck of a plan at G' that uses the group (a
// left-out point's plans pay (G' - 1) times their bottleneck, not its own steady time: a stage that
// is not the bottleneck stays useless when G grows). Otherwise the group is searched again and the
// entry replaced.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type AnalyzerContext, type CompiledStageModel, IN, INPUT_WIDTH, OUT, OUTPUT_WIDTH } from '@mist/analyzer';
import { writeFileAtomic } from '@mist/core';
import type { StageGroupSpec } from './enumerate';
import { STRATEGY_WIDTH, type StrategyStore } from './intra-stage';
import { StagePareto } from './pareto';
import type { SearchSpace } from './search-space';

/**
 * Bumped whenever the search, the cache format or the analyzer's cost model changes what a stored set
 * means (the key hashes the inputs of a tune, not the model that costs them).
 */
export const FRONTIER_CACHE_VERSION = 10; // 10: loss_parallel memory (2026-12-06); 9: the 2026-12 cost model (besideExtra overlap, SP backward re-gather, eager GPT ops)
const POINT_WIDTH = 4 + STRATEGY_WIDTH; // steady, first, last, maxInFlight, then the strategy columns (ST)

interface Entry {
  G: number;
  cutoffS: number | null; // null: Infinity (no cutoff)
  points: number[];
}


/** The default folder: $MIST_CACHE_DIR, else ~/.cache/mist/tune. */
export function defaultCacheDir(): string {
  return process.env.MIST_CACHE_DIR ? path.join(process.env.MIST_CACHE_DIR, 'tune') : path.join(os.homedir(), '.cache', 'mist', 'tune');
}

/** Whether the cost columns the search reads change with G (checked on the given rows). */
export function dependsOnG(model: CompiledStageModel, rows: Float64Array, count: number): boolean {
  if (count === 0) return true;
  const a = rows.slice(0, count * INPUT_WIDTH);
  const b = a.slice();
  for (let r = 0; r < count; r++) b[r * INPUT_WIDTH + IN.GRAD_ACCUM] = a[r * INPUT_WIDTH + IN.GRAD_ACCUM] * 3 + 1;
  const oa = new Float64Array(count * OUTPUT_WIDTH);
  const ob = new Float64Array(count * OUTPUT_WIDTH);
  model.evaluateBatch(a, oa, count);
  model.evaluateBatch(b, ob, count);
  const columns = [OUT.STEADY, OUT.FIRST, OUT.LAST, OUT.PEAK_MEMORY, OUT.MEM_ACTIVATIONS, OUT.HOST_MEMORY, OUT.HOST_ACTIVATIONS,
    OUT.FITS, OUT.FITS_DEVICE, OUT.FITS_HOST];
  for (let r = 0; r < count; r++) {
    for (const c of columns) if (!Object.is(oa[r * OUTPUT_WIDTH + c], ob[r * OUTPUT_WIDTH + c])) return true;
  }
  return false;
}

/** Key of everything but the groups: the context without the node count, the per-stage grid. */
export function contextKey(ctx: AnalyzerContext, space: SearchSpace): string {
  const { cluster, ...profile } = ctx.profile;
  const { nodes, name: _name, ...clusterRest } = cluster;
  const data = {
    v: FRONTIER_CACHE_VERSION,
    model: ctx.model,
    training: {
      seqLen: ctx.training.seqLen, flashAttention: ctx.training.flashAttention,
      ...((ctx.training.flashAttentionKernel ?? 'flash2') !== 'flash2' ? { flashAttentionKernel: ctx.training.flashAttentionKernel } : {}),
      ...((ctx.training.fp8 ?? 'none') !== 'none' ? { fp8: ctx.training.fp8 } : {}),
      // Written only when on, so that the keys of tunes without them are unchanged.
      ...(ctx.training.tpCommOverlap ? { tpCommOverlap: true } : {}), ...(ctx.training.tpBackwardOverlap ? { tpBackwardOverlap: true } : {}),
      ...(ctx.training.paramGatherOverlap ? { paramGatherOverlap: true } : {}),
      ...(ctx.training.gradReduceOverlap === false ? { gradReduceOverlap: false } : {}),
      ...((ctx.training.crossEntropy ?? 'fused') !== 'fused' ? { crossEntropy: ctx.training.crossEntropy } : {}),
      ...((ctx.training.elementwise ?? 'fused') !== 'fused' ? { elementwise: ctx.training.elementwise } : {}),
      ...((ctx.training.sequenceParallelInput ?? 'sharded') !== 'sharded' ? { sequenceParallelInput: ctx.training.sequenceParallelInput } : {}),
      ...((ctx.training.gradAccumDtype ?? 'param') !== 'param' ? { gradAccumDtype: ctx.training.gradAccumDtype } : {}),
    },
    profile: { ...profile, cluster: { ...clusterRest, multiNode: nodes > 1 } },
    space: {
      maxTp: space.maxTp, maxCp: space.maxCp ?? 1, maxEp: space.maxEp ?? 1, sequenceParallel: space.sequenceParallel, microBatchPow2: space.microBatchPow2, ckpt: space.ckpt,
      selectiveRecompute: space.selectiveRecompute,
      zero: space.zero, offload: space.offload,
    },
  };
  return crypto.createHash('sha256').update(JSON.stringify(data)).digest('hex').slice(0, 32);
}

export function groupKey(spec: StageGroupSpec, samples: number, G: number | null): string {
  return `${spec.position}:${spec.layers}:${spec.mesh.nodes}x${spec.mesh.gpusPerNode}:pp${spec.ppMin}-${spec.ppMax}:` +
    `${spec.inFlightMin}-${spec.inFlightMax}:${samples}` +
    (G === null ? '' : `:G${G}`);
}

/** Lower bounds of every fitting point of a group (the bounds phase's spec minima, bounds.ts SpecMinima). */
export interface PointFloor {
  steady: number;
  imbalance: number;
  /**
   * A lower bound of the bottleneck (largest steady time) of every plan at the new G that uses the
   * group (bounds.ts specBottleneckS); the cutoff's rest is the other stages' firsts, so a plan with
   * a point p costs at least imb_p + rest + (G' - 1) max(steady_p, bottleneck).
   */
  bottleneck?: number;
}

/**
 * Whether a set cut at (G, C) stands for the set at (G', C') (see the header). A left-out point has
 * imb + (G - 1) s >= C; any plan at G' using it costs at least rest + imb + (G' - 1) max(s, B), with
 * B the plan's least bottleneck (floor.bottleneck, else 0), and C' = best - rest. With the group's
 * floors s >= s0 and imb >= i0, and m = max(s0, B), the point is useless at (G', C') when
 *   G' >= G: imb + (G' - 1) max(s, B) >= (imb + (G - 1) s) + (G' - G) m >= C + (G' - G) m >= C';
 *   G' <  G: imb + (G' - 1) max(s, B) >= max(r (imb + (G - 1) s) + (1 - r) imb, imb + (G' - 1) m)
 *            >= max(r C + (1 - r) i0, i0 + (G' - 1) m) >= C', with r = (G' - 1) / (G - 1).
 * Without floors (0) this is C' <= C * min(1, r).
 */
export function cutoffCovers(G: number, cutoffS: number, newG: number, newCutoffS: number, floor: PointFloor = { steady: 0, imbalance: 0 }): boolean {
  if (!Number.isFinite(cutoffS)) return true;
  const finite = (v: number | undefined): number => (v !== undefined && Number.isFinite(v) ? Math.max(0, v) : 0);
  const m = Math.max(finite(floor.steady), finite(floor.bottleneck));
  const i0 = finite(floor.imbalance);
  if (newG >= G) return newCutoffS <= cutoffS + (newG - G) * m;
  const r = (newG - 1) / (G - 1);
  return newCutoffS <= Math.max(r * cutoffS + (1 - r) * i0, i0 + (newG - 1) * m);
}

export class FrontierCache {
  hits = 0;
  misses = 0;
  private readonly entries = new Map<string, Entry>();
  private dirty = false;

  private constructor(private readonly file: string) {}

  /** Opens (or starts) the cache file of a context key in `dir`; an unreadable file starts empty. */
  static open(dir: string, key: string): FrontierCache {
    const cache = new FrontierCache(path.join(dir, `${key}.json`));
    try {
      const data = JSON.parse(fs.readFileSync(cache.file, 'utf8')) as { version: number; entries: Record<string, Entry> };
      if (data.version === FRONTIER_CACHE_VERSION) for (const [k, e] of Object.entries(data.entries)) cache.entries.set(k, e);
    } catch {
      // no cache yet, or a damaged one: start empty (it is rewritten on save)
    }
    return cache;
  }

  /**
   * The cached set of a group if it stands for the search at (G, cutoff), given lower bounds of its
   * points (`floor`); its strategies are added to `store`.
   */
  get(key: string, G: number, cutoffS: number, store: StrategyStore, floor?: PointFloor): StagePareto | null {
    const e = this.entries.get(key);
    if (!e || !cutoffCovers(e.G, e.cutoffS ?? Infinity, G, cutoffS, floor)) {
      this.misses++;
      return null;
    }
    this.hits++;
    const set = new StagePareto();
    const p = e.points;
    for (let o = 0; o < p.length; o += POINT_WIDTH) {
      set.insert(p[o], p[o + 1], p[o + 2], p[o + 3], store.addColumns(p, o + 4));
    }
    return set;
  }

  put(key: string, G: number, cutoffS: number, set: StagePareto, store: StrategyStore): void {
    const points: number[] = [];
    for (let i = 0; i < set.size; i++) {
      points.push(set.steady[i], set.first[i], set.last[i], set.maxInFlight[i]);
      for (let c = 0; c < STRATEGY_WIDTH; c++) points.push(store.get(set.ref[i], c));
    }
    this.entries.set(key, { G, cutoffS: Number.isFinite(cutoffS) ? cutoffS : null, points });
    this.dirty = true;
  }

  /** Writes the file (atomically: a tune reading it meanwhile sees the old file or the new one). */
  save(): void {
    if (!this.dirty) return;
    writeFileAtomic(this.file, JSON.stringify({ version: FRONTIER_CACHE_VERSION, entries: Object.fromEntries(this.entries) }));
    this.dirty = false;
  }
}
