// Mapping between a tensor's full (unsharded) layout and one TP rank's slice of it, the way the
// stage module's ParamStore slices (model/params.ts): 'cols' splits the output columns of [in, out]
// in tp contiguous blocks, 'rows' splits the input rows, 1-D tensors split in tp blocks.
import type { ParamDecl } from '../model';

/** What the mapping needs of a tensor: its full shape and how TP splits it. */
export type SlicedTensor = Pick<ParamDecl, 'shape' | 'shard'>;

/** Full-layout index of element i of TP rank `tpRank`'s slice. */
export function fullIndex(e: SlicedTensor, tp: number, tpRank: number, i: number): number {
  if (e.shard === 'none' || tp === 1) return i;
  if (e.shape.length === 1) return tpRank * (e.shape[0] / tp) + i;
  const [rows, cols] = e.shape;
  if (e.shard === 'rows') return tpRank * (rows / tp) * cols + i;
  const w = cols / tp;
  return Math.floor(i / w) * cols + tpRank * w + (i % w);
}

/** Copies `data`, local slice elements [localStart, localStart + data.length), into the full tensor. */
export function placeSlice(e: SlicedTensor, tp: number, tpRank: number, full: Float32Array, data: Float32Array, localStart = 0): void {
  if (e.shard === 'none' || tp === 1 || e.shape.length === 1 || e.shard === 'rows') {
    full.set(data, fullIndex(e, tp, tpRank, 0) + localStart);
    return;
  }
  for (let i = 0; i < data.length; i++) full[fullIndex(e, tp, tpRank, localStart + i)] = data[i];
}

/** TP rank `tpRank`'s slice of a full tensor. */
export function takeSlice(e: SlicedTensor, tp: number, tpRank: number, full: Float32Array, size: number): Float32Array {
  const out = new Float32Array(size);
  if (e.shard === 'none' || tp === 1 || e.shape.length === 1 || e.shard === 'rows') {
    const base = fullIndex(e, tp, tpRank, 0);
    out.set(full.subarray(base, base + size));
    return out;
  }
  for (let i = 0; i < size; i++) out[i] = full[fullIndex(e, tp, tpRank, i)];
  return out;
}
