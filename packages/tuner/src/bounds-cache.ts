// On-disk cache of what the bounds phase derives (bounds.ts), and of the best plans found, so that a
// re-tune with another global batch skips most of the bounds phase and starts from a known plan.
//
// What is kept, per context key (frontier-cache.ts contextKey: the analyzer context without the node
// count, and the per-stage grid):
//   - per stage group and samples per micro-batch (boundsKey; with G when the cost columns read it):
//     the spec's minima (SpecMinima), lower bounds of every fitting point of the group. The bounds
//     evaluate a group's corners at its smallest in-flight count and its query depth only (bounds.ts
//     writeCorner), so the key holds those and not the group's in-flight range, which G caps: a
//     re-tune with a doubled global batch meets every (group, samples) of G at G' = 2G.
//   - the best plans of earlier tunes (a few, newest last): a re-tune adapts each to its global batch
//     (same samples per micro-batch, G' = batch' / samples) and, when it is a member of the space and
//     fits, takes the fastest as its first incumbent. An incumbent only raises the bar a plan must
//     beat, so the search stays exact.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Plan } from '@mist/core';
import type { SpecMinima } from './bounds';
import { queryPp, type StageGroupSpec } from './enumerate';
import { FRONTIER_CACHE_VERSION } from './frontier-cache';

/** Plans kept per context key (the newest). */
const MAX_PLANS = 8;
/**
 * Spec minima kept per context key (the newest): about 110 bytes each in the file, so some 30 MB,
 * parsed by every tune of the key (a first tune of gpt3-175b on 512 GPUs writes 65,000).
 */
const MAX_MINIMA = 300_000;

interface StoredPlan {
  devices: number;
  plan: Plan;
}

interface BoundsFile {
  version: number;
  /** groupKey -> [steady, first, imbalance], null for Infinity (JSON has no Infinity). */
  minima: Record<string, Array<number | null>>;
  plans: StoredPlan[];
}

/** What a spec's minima depend on besides the context key (see the header). */
export function boundsKey(spec: StageGroupSpec, samples: number, G: number | null): string {
  return `${spec.position}:${spec.layers}:${spec.mesh.nodes}x${spec.mesh.gpusPerNode}:pp${queryPp(spec)}:f${spec.inFlightMin}:${samples}` +
    (G === null ? '' : `:G${G}`);
}

const encode = (x: number): number | null => (Number.isFinite(x) ? x : null);
const decode = (x: number | null): number => (x === null ? Infinity : x);

export class BoundsCache {
  /** Specs whose minima were read from the cache, and derived then written. */
  hits = 0;
  writes = 0;
  private minima = new Map<string, SpecMinima>();
  private fresh = new Map<string, SpecMinima>();
  private plans: StoredPlan[] = [];
  private newPlans: StoredPlan[] = [];
  /** The file as read at open, and its size and mtime then (unchanged: no need to read it again to merge). */
  private data: BoundsFile | null = null;
  private stamp = '';

  private constructor(private readonly file: string, private readonly maxEntries: number) {}

  /** Opens (or starts) the bounds cache of a context key in `dir`; an unreadable file starts empty. */
  static open(dir: string, key: string, maxEntries = MAX_MINIMA): BoundsCache {
    const cache = new BoundsCache(path.join(dir, `${key}.bounds.json`), maxEntries);
    cache.stamp = fileStamp(cache.file);
    const data = readFile(cache.file);
    if (data) {
      cache.data = data;
      for (const [k, v] of Object.entries(data.minima)) cache.minima.set(k, { steady: decode(v[0]), first: decode(v[1]), imbalance: decode(v[2]) });
      cache.plans = data.plans;
    }
    return cache;
  }

  /** The minima of a spec from an earlier tune, or null. */
  get(key: string): SpecMinima | null {
    const m = this.minima.get(key) ?? null;
    if (m) this.hits++;
    return m;
  }

  put(key: string, m: SpecMinima): void {
    this.fresh.set(key, m);
    this.writes++;
  }

  /** Plans of earlier tunes over the same number of devices (newest first). */
  storedPlans(devices: number): Plan[] {
    return this.plans.filter((p) => p.devices === devices).map((p) => p.plan).reverse();
  }

  addPlan(plan: Plan, devices: number): void {
    this.newPlans.push({ devices, plan });
  }

  /**
   * Writes the file: what it holds now (another tune may have written it since this one opened it)
   * merged with what this tune derived, atomically (a temporary file renamed over it).
   */
  save(): void {
    if (this.fresh.size === 0 && this.newPlans.length === 0) return;
    const now = (this.data && fileStamp(this.file) === this.stamp ? this.data : readFile(this.file)) ??
      { version: FRONTIER_CACHE_VERSION, minima: {}, plans: [] };
    for (const [k, m] of this.fresh) {
      delete now.minima[k]; // re-inserted last: the newest entries stay when the file is trimmed
      now.minima[k] = [encode(m.steady), encode(m.first), encode(m.imbalance)];
    }
    const keys = Object.keys(now.minima);
    if (keys.length > this.maxEntries) {
      // The file is read whole by every tune: beyond the cap the oldest entries go (in insertion order).
      const kept: Record<string, Array<number | null>> = {};
      for (const k of keys.slice(keys.length - this.maxEntries)) kept[k] = now.minima[k];
      now.minima = kept;
    }
    const same = (a: StoredPlan, b: StoredPlan): boolean => a.devices === b.devices && JSON.stringify(a.plan) === JSON.stringify(b.plan);
    const plans = now.plans.filter((p) => !this.newPlans.some((q) => same(p, q)));
    now.plans = [...plans, ...this.newPlans].slice(-MAX_PLANS);
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(now));
    fs.renameSync(tmp, this.file);
    this.data = now;
    this.stamp = fileStamp(this.file);
    this.fresh.clear();
    this.newPlans = [];
  }
}

function fileStamp(file: string): string {
  try {
    const st = fs.statSync(file);
    return `${st.size}:${st.mtimeMs}`;
  } catch {
    return '';
  }
}

function readFile(file: string): BoundsFile | null {
  try {
    const data = JSON.parse(fs.readFileSync(file, 'utf8')) as BoundsFile;
    return data.version === FRONTIER_CACHE_VERSION && data.minima && Array.isArray(data.plans) ? data : null;
  } catch {
    return null; // no cache yet, or a damaged one: start empty (it is rewritten on save)
  }
}
