// Parameters of a stage: one flat Float32Array for the values and one for the gradients, with a
// named, typed view per tensor. Tensors are declared with their FULL (unsharded) shape and how
// tensor parallelism splits them; each rank keeps its slice:
//   'none' replicated (norms, row-parallel biases, embeddings)
//   'cols' column-parallel: the output columns of [in, out] are split in tp contiguous blocks
//   'rows' row-parallel: the input rows of [in, out] are split in tp contiguous blocks
// Values come from the full tensor's deterministic stream (see rng.ts), so any tp gives the same model.
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

export class ParamStore {
  readonly entries: ParamEntry[] = [];
  readonly params: Float32Array;
  readonly grads: Float32Array;
  private readonly byName = new Map<string, ParamEntry>();

  constructor(decls: ParamDecl[], opts: { seed: number; tp: number; tpRank: number }) {
    let offset = 0;
    for (const d of decls) {
      if (this.byName.has(d.name)) throw new Error(`parameter ${d.name} declared twice`);
      const ls = localShape(d, opts.tp);
      const e: ParamEntry = { ...d, localShape: ls, offset, size: count(ls) };
      offset += e.size;
      this.entries.push(e);
      this.byName.set(d.name, e);
    }
    this.params = new Float32Array(offset);
    this.grads = new Float32Array(offset);
    for (const e of this.entries) initSlice(e, opts.seed, opts.tp, opts.tpRank, this.param(e.name));
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  entry(name: string): ParamEntry {
    const e = this.byName.get(name);
    if (!e) throw new Error(`no parameter named ${name}`);
    return e;
  }

  /** This rank's values of a tensor (a view into `params`). */
  param(name: string): Float32Array {
    const e = this.entry(name);
    return this.params.subarray(e.offset, e.offset + e.size);
  }

  /** This rank's gradient of a tensor (a view into `grads`). */
  grad(name: string): Float32Array {
    const e = this.entry(name);
    return this.grads.subarray(e.offset, e.offset + e.size);
  }

  zeroGrads(): void {
    this.grads.fill(0);
  }
}
