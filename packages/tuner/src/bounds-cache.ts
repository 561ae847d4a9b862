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
//     (same samples per micro-batch, G' = batch' / samples) and node count (replan.ts rescalePlan: every
//     stage's dp and nodes scaled alike) and, when it is a member of the space and fits, takes the
//     fastest as its first incumbent. An incumbent only raises the bar a plan must
//     beat, so the search stays exact.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Plan, writeFileAtomic } from '@mist/core';
import type { SpecMinima } from './bounds';
import { queryPp, type StageGroupSpec } from './enumerate';
import { FRONTIER_CACHE_VERSION } from './frontier-cache';

/** Plans kept per context key (the newest). */
const MAX_PLANS = 8;
/**
 * Spec minima kept per context key (the newest): about 70 bytes each in the file, so some 20 MB,
 * read by every tune of the key (a first tune of gpt3-175b on 512 GPUs writes 65,000).
 */
const MAX_MINIMA = 300_000;

interface StoredPlan {
  devices: number;
  plan: Plan;
}

/** The file's contents: minima in insertion order (the oldest first), plans newest last. */
interface BoundsFile {
  minima: Map<string, SpecMinima>;
  plans: StoredPlan[];
}

/**
 * What a spec's minima depend on besides the context key (see the header): the group's own part
 * (specKeyPart), the samples part (samplesKeyPart: samples per micro-batch, and G when the cost
 * columns read it), then its in-flight count.
 */
export function boundsKey(spec: StageGroupSpec, samples: number, G: number | null): string {
  return `${specKeyPart(spec)}:${samplesKeyPart(samples, G)}:f${spec.inFlightMin}`;
}

/**
 * The key of a spec's fast-corner minima (bounds.ts derivedWeak): lower bounds of its minima at every
 * in-flight count (they read no memory, and times do not read the in-flight count).
 */
export function fastBoundsKey(spec: StageGroupSpec, samples: number, G: number | null): string {
  return `${specKeyPart(spec)}:${samplesKeyPart(samples, G)}:fast`;
}

/** The group's part of its keys: position, layers, mesh and query depth (four fields). */
export function specKeyPart(spec: StageGroupSpec): string {
  return `${spec.position}:${spec.layers}:${spec.mesh.nodes}x${spec.mesh.gpusPerNode}:pp${queryPp(spec)}`;
}

export function samplesKeyPart(samples: number, G: number | null): string {
  return G === null ? `${samples}` : `${samples}:G${G}`;
}

/** The kept minima of one (group part, samples part): per in-flight count, and the fast-corner ones. */
interface KeptMinima {
  inFlight: number[];
  minima: SpecMinima[];
  fast: SpecMinima | null;
}

/**
 * The minima kept for one samples part, looked up by each group's key part (the same string objects
 * for every G, so that their hashes are computed once: tens of thousands of lookups per tune).
 */
export interface BoundsView {
  /** The minima of the group at this in-flight count, or null. */
  exact(specPart: string, inFlight: number): SpecMinima | null;
  /**
   * Lower bounds of them when they are not kept (bounds.ts knownWeak): the minima at the largest
   * smaller in-flight count (fewer configurations fit at more in flight, and times do not read it),
   * else the fast-corner minima; null when neither is kept.
   */
  weaker(specPart: string, inFlight: number): SpecMinima | null;
}

export class BoundsCache {
  /** Specs whose minima were read from the cache, and derived then written. */
  hits = 0;
  writes = 0;
  private minima = new Map<string, SpecMinima>();
  /** The file's minima by samples part, then group part (built on the first view). */
  private index: Map<string, Map<string, KeptMinima>> | null = null;
  private fresh = new Map<string, SpecMinima>();
  private plans: StoredPlan[] = [];
  private newPlans: StoredPlan[] = [];
  /** The file as read at open, and its size and mtime then (unchanged: no need to read it again to merge). */
  private data: BoundsFile | null = null;
  private stamp = '';

  private constructor(private readonly file: string, private readonly maxEntries: number) {}

  /** Opens (or starts) the bounds cache of a context key in `dir`; an unreadable file starts empty. */
  static open(dir: string, key: string, maxEntries = MAX_MINIMA): BoundsCache {
    const cache = new BoundsCache(path.join(dir, `${key}.bounds.bin`), maxEntries);
    cache.stamp = fileStamp(cache.file);
    const data = readFile(cache.file);
    if (data) {
      cache.data = data;
      cache.minima = data.minima;
      cache.plans = data.plans;
    }
    return cache;
  }

  /** Minima the file held when opened (0: no earlier tune of the key). */
  get heldAtOpen(): number {
    return this.data ? this.data.minima.size : 0;
  }

  /** The minima of a spec from an earlier tune, or null. */
  get(key: string): SpecMinima | null {
    const m = this.minima.get(key) ?? null;
    if (m) this.hits++;
    return m;
  }

  /** The file's minima of one samples part (see BoundsView). */
  view(samples: number, G: number | null): BoundsView {
    const bySpec = this.buildIndex().get(samplesKeyPart(samples, G));
    const none: BoundsView = { exact: () => null, weaker: () => null };
    if (!bySpec) return none;
    return {
      exact: (specPart, inFlight) => {
        const kept = bySpec.get(specPart);
        const i = kept ? kept.inFlight.indexOf(inFlight) : -1;
        if (!kept || i < 0) return null;
        this.hits++;
        return kept.minima[i];
      },
      weaker: (specPart, inFlight) => {
        const kept = bySpec.get(specPart);
        if (!kept) return null;
        let at = -1;
        kept.inFlight.forEach((f, i) => { if (f < inFlight && (at < 0 || f > kept.inFlight[at])) at = i; });
        const m = at >= 0 ? kept.minima[at] : kept.fast;
        if (m) this.hits++;
        return m;
      },
    };
  }

  /** The file's keys split into (samples part, group part, in-flight count or fast); once, some milliseconds. */
  private buildIndex(): Map<string, Map<string, KeptMinima>> {
    if (this.index) return this.index;
    const index = new Map<string, Map<string, KeptMinima>>();
    for (const [k, m] of this.minima) {
      let at = -1;
      for (let field = 0; field < 4; field++) at = k.indexOf(':', at + 1);
      const tail = k.lastIndexOf(':');
      if (at < 0 || tail <= at) continue;
      const specPart = k.slice(0, at);
      const samplesPart = k.slice(at + 1, tail);
      const last = k.slice(tail + 1);
      let bySpec = index.get(samplesPart);
      if (!bySpec) index.set(samplesPart, (bySpec = new Map()));
      let kept = bySpec.get(specPart);
      if (!kept) bySpec.set(specPart, (kept = { inFlight: [], minima: [], fast: null }));
      if (last === 'fast') kept.fast = m;
      else {
        const f = Number(last.slice(1));
        if (last[0] !== 'f' || !Number.isInteger(f)) continue;
        kept.inFlight.push(f);
        kept.minima.push(m);
      }
    }
    this.index = index;
    return index;
  }

  put(key: string, m: SpecMinima): void {
    this.fresh.set(key, m);
    this.writes++;
  }

  /** Plans of earlier tunes over the same number of devices (newest first). */
  storedPlans(devices: number): Plan[] {
    return this.plans.filter((p) => p.devices === devices).map((p) => p.plan).reverse();
  }

  /** Plans of earlier tunes over other numbers of devices (newest first). */
  storedPlansElsewhere(devices: number): Plan[] {
    return this.plans.filter((p) => p.devices !== devices).map((p) => p.plan).reverse();
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
    const now = (this.data && fileStamp(this.file) === this.stamp ? this.data : readFile(this.file)) ?? { minima: new Map(), plans: [] };
    for (const [k, m] of this.fresh) {
      now.minima.delete(k); // re-inserted last: the newest entries stay when the file is trimmed
      now.minima.set(k, m);
    }
    // The file is read whole by every tune: beyond the cap the oldest entries go (in insertion order).
    for (const k of now.minima.keys()) {
      if (now.minima.size <= this.maxEntries) break;
      now.minima.delete(k);
    }
    const same = (a: StoredPlan, b: StoredPlan): boolean => a.devices === b.devices && JSON.stringify(a.plan) === JSON.stringify(b.plan);
    const plans = now.plans.filter((p) => !this.newPlans.some((q) => same(p, q)));
    now.plans = [...plans, ...this.newPlans].slice(-MAX_PLANS);
    writeFileAtomic(this.file, encodeFile(now));
    this.data = now;
    this.stamp = fileStamp(this.file);
    this.fresh.clear();
    this.newPlans = [];
  }
}

/** A file's size and mtime ('' when it does not exist): unchanged, a cache need not read it again to merge. */
export function fileStamp(file: string): string {
  try {
    const st = fs.statSync(file);
    return `${st.size}:${st.mtimeMs}`;
  } catch {
    return '';
  }
}

/**
 * The file: "MSTB", a uint32 (little endian) header length, the header (JSON: version, the number of
 * minima, the byte length of their keys, the plans), the keys joined by newlines, zero padding to a
 * multiple of 8, then three float64 per key (steady, first, imbalance; Infinity as itself). Binary
 * because every tune of the key reads the file whole: tens of thousands of minima parse in
 * milliseconds this way, a hundred times slower as JSON.
 */
const MAGIC = 'MSTB';

function encodeFile(data: BoundsFile): Buffer {
  const keys = Buffer.from([...data.minima.keys()].join('\n'), 'utf8');
  const header = Buffer.from(JSON.stringify({ version: FRONTIER_CACHE_VERSION, count: data.minima.size, keyBytes: keys.length, plans: data.plans }), 'utf8');
  const before = 8 + header.length + keys.length;
  const pad = (8 - (before % 8)) % 8;
  const values = new Float64Array(3 * data.minima.size);
  let i = 0;
  for (const m of data.minima.values()) {
    values[i++] = m.steady;
    values[i++] = m.first;
    values[i++] = m.imbalance;
  }
  const head = Buffer.alloc(8);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(header.length, 4);
  return Buffer.concat([head, header, keys, Buffer.alloc(pad), Buffer.from(values.buffer, values.byteOffset, values.byteLength)]);
}

function readFile(file: string): BoundsFile | null {
  try {
    const buf = fs.readFileSync(file);
    if (buf.length < 8 || buf.toString('latin1', 0, 4) !== MAGIC) return null;
    const headerEnd = 8 + buf.readUInt32LE(4);
    const header = JSON.parse(buf.toString('utf8', 8, headerEnd)) as { version: number; count: number; keyBytes: number; plans: StoredPlan[] };
    if (header.version !== FRONTIER_CACHE_VERSION || !Array.isArray(header.plans) || !Number.isInteger(header.count)) return null;
    const keysEnd = headerEnd + header.keyBytes;
    const valuesAt = keysEnd + ((8 - (keysEnd % 8)) % 8);
    if (buf.length !== valuesAt + 24 * header.count) return null;
    const keys = header.count === 0 ? [] : buf.toString('utf8', headerEnd, keysEnd).split('\n');
    if (keys.length !== header.count) return null;
    // Copied out: the file buffer's offset need not be 8-aligned.
    const values = new Float64Array(buf.buffer.slice(buf.byteOffset + valuesAt, buf.byteOffset + buf.length));
    const minima = new Map<string, SpecMinima>();
    for (let k = 0; k < keys.length; k++) minima.set(keys[k], { steady: values[3 * k], first: values[3 * k + 1], imbalance: values[3 * k + 2] });
    return { minima, plans: header.plans };
  } catch {
    return null; // no cache yet, or a damaged one: start empty (it is rewritten on save)
  }
}
