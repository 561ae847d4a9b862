// On-disk cache of the bounds of each G (bounds.ts GBounds: the lower bound of every plan at G and,
// per stage group, of every plan using it, its least bottleneck and the least rest of the other
// stages), so that a re-tune with a larger G over the same groups at the same samples per
// micro-batch (a doubled global batch meets every (group, samples) of G at 2G) derives its bounds
// from them (bounds.ts boundsFromEarlierG) instead of the partition relaxation, some milliseconds per
// G (gpt3-175b on 512 GPUs: 6-10 ms each).
//
// A record is kept per (samples part, devices, groups): the groups are the stage groups of the G in
// order, identified by a fingerprint of their key parts (bounds-cache.ts specKeyPart), since the
// per-group arrays are read by index. Only records of complete relaxations are kept (a G the quick
// bound settled has weak per-group values). Values are stored as float32 rounded down: each is a
// lower bound, and stays one.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '@mist/core';
import type { EarlierGBounds } from './bounds';
import { fileStamp } from './bounds-cache';
import { FRONTIER_CACHE_VERSION } from './frontier-cache';

/** Records kept per context key (the newest): 12 bytes per group each, 50 KB for 4,000 groups. */
const MAX_RECORDS = 64;
/**
 * The largest record kept (groups): the file is read whole by every re-tune of the key, and a G of a
 * cluster of thousands of GPUs has hundreds of thousands of groups (gpt3-175b on 16,384 GPUs: 582K
 * specs before the per-G filter), 7 MB a record; such G values are relaxed again instead.
 */
const MAX_RECORD_GROUPS = 65_536;
/** The file's bytes at most (the newest records that fit are kept). */
const MAX_FILE_BYTES = 24 << 20;

export interface GBoundsRecord extends EarlierGBounds {
  samplesPart: string;
  devices: number;
  fingerprint: string;
  specLowerBoundS: Float32Array;
  specBottleneckS: Float32Array;
  specRestS: Float32Array;
}

interface RecordHeader {
  samplesPart: string;
  devices: number;
  fingerprint: string;
  G: number;
  lowerBoundS: number | null;
  n: number;
}

const MAGIC = 'MSTG';

export class GBoundsCache {
  private records: GBoundsRecord[] | null = null;
  /** The file's size and mtime when read (unchanged at save: no need to read it again to merge). */
  private stamp = '';
  private fresh: GBoundsRecord[] = [];

  private constructor(private readonly file: string) {}

  /** The cache of a context key in `dir` (read on the first lookup). */
  static open(dir: string, key: string): GBoundsCache {
    return new GBoundsCache(path.join(dir, `${key}.gbounds.bin`));
  }

  /**
   * The kept record of these groups at the largest G0 < G, or null. Not G itself: a tune at the same
   * batch again reads the frontier cache, whose cuts were made with the relaxation's own values (the
   * float32 copies here are a little lower, and a cut is reused only where it provably holds).
   */
  find(samplesPart: string, devices: number, fingerprint: string, G: number): GBoundsRecord | null {
    if (!this.records) {
      this.stamp = fileStamp(this.file);
      this.records = readFile(this.file) ?? [];
    }
    let best: GBoundsRecord | null = null;
    for (const r of this.records) {
      if (r.samplesPart !== samplesPart || r.devices !== devices || r.fingerprint !== fingerprint || r.G >= G) continue;
      if (!best || r.G > best.G) best = r;
    }
    return best;
  }

  /** Keeps the bounds of a G (a complete relaxation's), to be written by save(). */
  put(samplesPart: string, devices: number, fingerprint: string, G: number, b: EarlierGBounds, n: number): void {
    if (n > MAX_RECORD_GROUPS) return;
    this.fresh.push({
      samplesPart, devices, fingerprint, G, lowerBoundS: b.lowerBoundS,
      specLowerBoundS: roundedDown(b.specLowerBoundS, n), specBottleneckS: roundedDown(b.specBottleneckS, n), specRestS: roundedDown(b.specRestS, n),
    });
  }

  /** Writes the file: what it holds now merged with this tune's records (the newest kept), atomically. */
  save(): void {
    if (this.fresh.length === 0) return;
    const same = (a: GBoundsRecord, b: GBoundsRecord): boolean =>
      a.samplesPart === b.samplesPart && a.devices === b.devices && a.fingerprint === b.fingerprint && a.G === b.G;
    const held = this.records && fileStamp(this.file) === this.stamp ? this.records : readFile(this.file) ?? [];
    const now = held.filter((r) => !this.fresh.some((f) => same(r, f)));
    const all = [...now, ...this.fresh].slice(-MAX_RECORDS);
    // Beyond the byte cap the oldest records go.
    let bytes = all.reduce((a, r) => a + 12 * r.specLowerBoundS.length, 0);
    while (all.length > 0 && bytes > MAX_FILE_BYTES) bytes -= 12 * (all.shift() as GBoundsRecord).specLowerBoundS.length;
    writeFileAtomic(this.file, encodeFile(all));
    this.records = all;
    this.stamp = fileStamp(this.file);
    this.fresh = [];
  }
}

/**
 * A fingerprint of the stage groups of one G: the groups of the tune (their key parts, hashed once per
 * tune: `base`) and the indexes of those the G has. 64 bits of two FNV-1a style hashes, and the count.
 */
export function groupsFingerprint(base: string, indexes: readonly number[]): string {
  let a = 0x811c9dc5;
  let b = 0x5bd1e995;
  for (const k of indexes) {
    a = Math.imul(a ^ k, 0x01000193);
    b = Math.imul(b ^ k, 0x01000193) ^ (b >>> 13);
  }
  return `${base}/${indexes.length}:${(a >>> 0).toString(16)}:${(b >>> 0).toString(16)}`;
}

/** The hash of a tune's stage groups, in order (their key parts), for groupsFingerprint. */
export function groupsBase(parts: readonly string[]): string {
  let a = 0x811c9dc5;
  let b = 0x5bd1e995;
  for (const p of parts) {
    for (let i = 0; i < p.length; i++) {
      const c = p.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x01000193) ^ (b >>> 13);
    }
    a = Math.imul(a ^ 0x2c, 0x01000193); // a separator between parts
    b = Math.imul(b ^ 0x3b, 0x01000193);
  }
  return `${parts.length}:${(a >>> 0).toString(16)}:${(b >>> 0).toString(16)}`;
}

/** Float32 copies rounded toward -Infinity (each value a lower bound). */
function roundedDown(values: ArrayLike<number>, n: number): Float32Array {
  const out = new Float32Array(n);
  const bits = new Int32Array(out.buffer);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    out[i] = v;
    if (out[i] > v) {
      // One float32 step down: for a positive value the bit pattern less one, for a negative one plus one.
      if (out[i] > 0) bits[i] -= 1;
      else if (out[i] < 0) bits[i] += 1;
      else out[i] = -1.401298464324817e-45;
    }
  }
  return out;
}

/**
 * The file: "MSTG", a uint32 (little endian) header length, the header (JSON: version, the records'
 * fields but their arrays), zero padding to a multiple of 4, then per record its three float32 arrays
 * (lower bound, bottleneck, rest; n values each).
 */
function encodeFile(records: readonly GBoundsRecord[]): Buffer {
  const headers: RecordHeader[] = records.map((r) => ({
    samplesPart: r.samplesPart, devices: r.devices, fingerprint: r.fingerprint, G: r.G,
    lowerBoundS: Number.isFinite(r.lowerBoundS) ? r.lowerBoundS : null, n: r.specLowerBoundS.length,
  }));
  const header = Buffer.from(JSON.stringify({ version: FRONTIER_CACHE_VERSION, records: headers }), 'utf8');
  const pad = (4 - ((8 + header.length) % 4)) % 4;
  const head = Buffer.alloc(8);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(header.length, 4);
  const arrays = records.flatMap((r) => [r.specLowerBoundS, r.specBottleneckS, r.specRestS].map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength)));
  return Buffer.concat([head, header, Buffer.alloc(pad), ...arrays]);
}

function readFile(file: string): GBoundsRecord[] | null {
  try {
    const buf = fs.readFileSync(file);
    if (buf.length < 8 || buf.toString('latin1', 0, 4) !== MAGIC) return null;
    const headerEnd = 8 + buf.readUInt32LE(4);
    const header = JSON.parse(buf.toString('utf8', 8, headerEnd)) as { version: number; records: RecordHeader[] };
    if (header.version !== FRONTIER_CACHE_VERSION || !Array.isArray(header.records)) return null;
    let at = headerEnd + ((4 - (headerEnd % 4)) % 4);
    const total = header.records.reduce((a, r) => a + 12 * r.n, 0);
    if (buf.length !== at + total) return null;
    // Copied out: the file buffer's offset need not be 4-aligned.
    const floats = new Float32Array(buf.buffer.slice(buf.byteOffset + at, buf.byteOffset + buf.length));
    at = 0;
    const take = (n: number): Float32Array => {
      const a = floats.subarray(at, at + n);
      at += n;
      return a;
    };
    return header.records.map((r) => ({
      samplesPart: r.samplesPart, devices: r.devices, fingerprint: r.fingerprint, G: r.G, lowerBoundS: r.lowerBoundS ?? Infinity,
      specLowerBoundS: take(r.n), specBottleneckS: take(r.n), specRestS: take(r.n),
    }));
  } catch {
    return null; // no cache yet, or a damaged one: start empty (it is rewritten on save)
  }
}
