// Parameters of a stage, with a named, typed view per tensor. Tensors are laid out in one logical
// flat vector (each has an `offset`) cut into units (the embedding, each layer, the head): the
// pieces ZeRO-3 gathers and frees one at a time. Storage is either 'flat' (one Float32Array for the
// whole vector, every unit always resident: single-process training, ZeRO 0-2 without offload) or
// 'units' (each unit's buffer attached by its owner just before use and detached after: the
// runtime's ZeRO-3 gathers and offload fetches). Tensors are declared with their FULL (unsharded) shape and how
// tensor parallelism splits them; each rank keeps its slice:
//   'none' replicated (norms, row-parallel biases, embeddings)
//   'cols' column-parallel: the output columns of [in, out] are split in tp contiguous blocks
//   'rows' row-parallel: the input rows of [in, out] are split in tp contiguous blocks
// Values come from the full tensor's deterministic stream (see rng.ts), so any tp gives the same model.
import type { TensorLike } from '@mist/native';
import { cpuDevice } from '../device/cpu-device';
import type { Device } from '../device/device';
import { Rng } from './rng';

export type ShardKind = 'none' | 'cols' | 'rows';
export type ParamInit = { kind: 'normal'; std: number } | { kind: 'const'; value: number };

export interface ParamDecl {
  /** Global name, e.g. `layers.3.attn.wq`; it keys the initialisation stream. */
  name: string;
  /** Full shape: [n] for vectors, [rows, cols] for matrices (row-major). */
  shape: [number] | [number, number];
  shard: ShardKind;
  init: ParamInit;
  /** AdamW decays matrices, not norms or biases. */
  weightDecay: boolean;
}

export interface ParamEntry extends ParamDecl {
  /** Shape of this rank's slice. */
  localShape: [number] | [number, number];
  offset: number;
  size: number;
}

function localShape(d: ParamDecl, tp: number): [number] | [number, number] {
  if (d.shard === 'none' || tp === 1) return d.shape;
  const split = (n: number, what: string): number => {
    if (n % tp !== 0) throw new Error(`${d.name}: ${what} ${n} is not divisible by tp=${tp}`);
    return n / tp;
  };
  if (d.shape.length === 1) return [split(d.shape[0], 'length')];
  const [r, c] = d.shape;
  return d.shard === 'cols' ? [r, split(c, 'columns')] : [split(r, 'rows'), c];
}

const count = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

/** Fills `out` with this rank's slice of the full tensor's deterministic values. */
function initSlice(d: ParamDecl, seed: number, tp: number, rank: number, out: Float32Array): void {
  if (d.init.kind === 'const') {
    out.fill(d.init.value);
    return;
  }
  const std = d.init.std;
  const rng = Rng.forKey(seed, d.name);
  const full = new Float32Array(count(d.shape));
  for (let i = 0; i < full.length; i++) full[i] = rng.normal() * std;
  if (d.shard === 'none' || tp === 1) {
    out.set(full);
    return;
  }
  if (d.shape.length === 1) {
    const n = d.shape[0] / tp;
    out.set(full.subarray(rank * n, (rank + 1) * n));
    return;
  }
  const [rows, cols] = d.shape;
  if (d.shard === 'rows') {
    const n = rows / tp;
    out.set(full.subarray(rank * n * cols, (rank + 1) * n * cols));
  } else {
    const n = cols / tp;
    for (let r = 0; r < rows; r++) out.set(full.subarray(r * cols + rank * n, r * cols + (rank + 1) * n), r * n);
  }
}

export type StorageMode = 'flat' | 'units';

/** A contiguous range [lo, hi) of the flat vector holding whole tensors: what is gathered and freed together. */
export interface ParamUnit {
  index: number;
  /** 'embed', 'layers.<i>', 'head', or 'all' for a store built without groups. */
  name: string;
  lo: number;
  hi: number;
  entries: ParamEntry[];
}

export interface ParamStoreOptions {
  seed: number;
  tp: number;
  tpRank: number;
  /** Consecutive decls per unit (default: one unit 'all'). */
  groups?: Array<{ name: string; count: number }>;
  /** Storage of the values and of the gradients (default 'flat' both). */
  params?: StorageMode;
  grads?: StorageMode;
}

/** F: the device's float tensor type (Float32Array on the CPU); `device` holds the values (default the CPU). */
export class ParamStore<F extends TensorLike = Float32Array> {
  readonly entries: ParamEntry[] = [];
  readonly units: ParamUnit[] = [];
  /** Elements of the whole flat vector. */
  readonly size: number;
  readonly paramMode: StorageMode;
  readonly gradMode: StorageMode;
  private readonly flatParams: F | null;
  private readonly flatGrads: F | null;
  private readonly unitParams: Array<F | null>;
  private readonly unitGrads: Array<F | null>;
  private readonly byName = new Map<string, ParamEntry>();
  private readonly unitOf = new Map<string, number>();

  constructor(
    decls: ParamDecl[],
    private readonly opts: ParamStoreOptions,
    readonly device: Device<F, unknown> = cpuDevice as unknown as Device<F, unknown>,
  ) {
    const groups = opts.groups ?? [{ name: 'all', count: decls.length }];
    if (groups.reduce((a, g) => a + g.count, 0) !== decls.length) throw new Error('parameter groups do not cover the declarations');
    let offset = 0, d = 0;
    for (const g of groups) {
      const unit: ParamUnit = { index: this.units.length, name: g.name, lo: offset, hi: offset, entries: [] };
      for (let i = 0; i < g.count; i++, d++) {
        const decl = decls[d];
        if (this.byName.has(decl.name)) throw new Error(`parameter ${decl.name} declared twice`);
        const ls = localShape(decl, opts.tp);
        const e: ParamEntry = { ...decl, localShape: ls, offset, size: count(ls) };
        offset += e.size;
        this.entries.push(e);
        unit.entries.push(e);
        this.byName.set(decl.name, e);
        this.unitOf.set(decl.name, unit.index);
      }
      unit.hi = offset;
      this.units.push(unit);
    }
    this.size = offset;
    this.paramMode = opts.params ?? 'flat';
    this.gradMode = opts.grads ?? 'flat';
    this.flatParams = this.paramMode === 'flat' ? device.zeros(offset) : null;
    this.flatGrads = this.gradMode === 'flat' ? device.zeros(offset) : null;
    const views = (flat: F | null): Array<F | null> => this.units.map((u) => (flat ? device.view(flat, u.lo, u.hi) : null));
    this.unitParams = views(this.flatParams);
    this.unitGrads = views(this.flatGrads);
    if (this.flatParams) {
      for (const u of this.units) {
        const buf = this.unitParams[u.index];
        if (buf) device.write(buf, this.initialValues(u));
      }
    }
  }

  /** A fresh host array with a unit's initial values (deterministic from the seed, this rank's TP slices). */
  initialValues(u: ParamUnit): Float32Array {
    const out = new Float32Array(u.hi - u.lo);
    for (const e of u.entries) initSlice(e, this.opts.seed, this.opts.tp, this.opts.tpRank, out.subarray(e.offset - u.lo, e.offset - u.lo + e.size));
    return out;
  }

  /** The whole parameter vector ('flat' storage only). */
  get params(): F {
    if (!this.flatParams) throw new Error('the parameters are stored per unit (ZeRO-3 / offload): there is no flat vector');
    return this.flatParams;
  }

  /** The whole gradient vector ('flat' storage only). */
  get grads(): F {
    if (!this.flatGrads) throw new Error('the gradients are stored per unit (ZeRO-2/3 / offload): there is no flat vector');
    return this.flatGrads;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  entry(name: string): ParamEntry {
    const e = this.byName.get(name);
    if (!e) throw new Error(`no parameter named ${name}`);
    return e;
  }

  /** The unit holding a tensor. */
  unit(name: string): ParamUnit {
    return this.units[this.unitOf.get(this.entry(name).name) as number];
  }

  private view(buffers: Array<F | null>, name: string, what: string): F {
    const e = this.entry(name);
    const u = this.units[this.unitOf.get(name) as number];
    const b = buffers[u.index];
    if (!b) throw new Error(`${what} of ${name} (unit ${u.name}) are not resident: the owner must attach them before use`);
    return this.device.view(b, e.offset - u.lo, e.offset - u.lo + e.size);
  }

  /** This rank's values of a tensor (a view into its unit's buffer). */
  param(name: string): F {
    return this.view(this.unitParams, name, 'the parameters');
  }

  /** This rank's gradient of a tensor (a view into its unit's gradient buffer). */
  grad(name: string): F {
    return this.view(this.unitGrads, name, 'the gradients');
  }

  /** 'units' storage: gives a unit its values buffer (at least hi - lo elements) or takes it away (null). */
  attachParams(u: ParamUnit, buf: F | null): void {
    if (this.paramMode !== 'units') throw new Error('attachParams needs per-unit parameter storage');
    this.unitParams[u.index] = buf ? this.device.view(buf, 0, u.hi - u.lo) : null;
  }

  attachGrads(u: ParamUnit, buf: F | null): void {
    if (this.gradMode !== 'units') throw new Error('attachGrads needs per-unit gradient storage');
    this.unitGrads[u.index] = buf ? this.device.view(buf, 0, u.hi - u.lo) : null;
  }

  zeroGrads(): void {
    if (this.flatGrads) this.device.zero(this.flatGrads);
    else for (const g of this.unitGrads) if (g) this.device.zero(g);
  }
}
