// ZeRO partitioning over a rank's DP group (Rajbhandari et al. 2020), unit by unit as DeepSpeed's
// ZeRO-3 partitions parameter by parameter: a unit (embedding, layer, head) of n elements starting
// at flat index `base` is cut in dp contiguous shards of S = ceil(n / dp) elements (the last one
// shorter); DP rank d owns [base + d*S, base + min((d+1)*S, n)). Collectives work on the padded
// dp*S length, so a layer can be gathered or its gradients reduce-scattered on its own.
import type { ParamEntry } from '../model';

export interface DpShard {
  /** Owned range [lo, hi) of the flat vector. */
  lo: number;
  hi: number;
  /** Shard length S (padded); dp * S >= n. */
  shardSize: number;
  padded: number;
}

export function dpShard(n: number, dp: number, dpIndex: number, base = 0): DpShard {
  const shardSize = Math.ceil(n / dp);
  const lo = Math.min(n, dpIndex * shardSize);
  const hi = Math.min(n, lo + shardSize);
  return { lo: base + lo, hi: base + hi, shardSize, padded: shardSize * dp };
}

/** A contiguous range of the flat vector inside one tensor. */
export interface Segment {
  lo: number;
  hi: number;
  entry: ParamEntry;
}

/** The tensors' pieces inside [lo, hi), in order. */
export function segments(entries: readonly ParamEntry[], lo: number, hi: number): Segment[] {
  const out: Segment[] = [];
  for (const e of entries) {
    const a = Math.max(lo, e.offset), b = Math.min(hi, e.offset + e.size);
    if (a < b) out.push({ lo: a, hi: b, entry: e });
  }
  return out;
}
