// Gradient reduction of a stage with expert parallelism (flat gradients, ZeRO 0): the experts'
// weights (one parameter per expert, model/moe.ts) are summed over the expert-data-parallel group,
// the ranks holding the same experts; every other weight over the usual data-parallel group
// (Megatron-Core keeps the experts' gradients in their own buffers reduced over the
// expert-data-parallel group: megatron/core/distributed/distributed_data_parallel.py, the
// expert_parallel buffers, with parallel_state.get_expert_data_parallel_group). Each set is packed
// into one buffer for one all-reduce.
import type { Communicator } from '@mist/native';
import { isExpertParam, type ParamUnit } from '../model';
import type { MemoryPools } from '../memory/pools';
import type { StepTimer } from './timer';
import type { ExpertSync } from './unit-memory';

/** Contiguous ranges [lo, hi) of the flat vector holding the entries `pick` accepts (adjacent ones merged). */
export function entryRanges(units: readonly ParamUnit[], pick: (name: string) => boolean): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const u of units) {
    for (const e of u.entries) {
      if (!pick(e.name) || e.size === 0) continue;
      const last = out[out.length - 1];
      if (last && last[1] === e.offset) last[1] += e.size;
      else out.push([e.offset, e.offset + e.size]);
    }
  }
  return out;
}

async function reducePacked(grads: Float32Array, ranges: Array<[number, number]>, comm: Communicator<Float32Array>, pools: MemoryPools, timer: StepTimer): Promise<void> {
  const n = ranges.reduce((t, [a, b]) => t + b - a, 0);
  if (n === 0) return;
  const buf = pools.tensor('transient', n);
  let at = 0;
  for (const [a, b] of ranges) {
    buf.set(grads.subarray(a, b), at);
    at += b - a;
  }
  await timer.wait(comm.allReduce(buf, 'sum'));
  at = 0;
  for (const [a, b] of ranges) {
    grads.set(buf.subarray(at, at + b - a), a);
    at += b - a;
  }
  pools.release(buf);
}

/** Sums the dense weights' gradients over the DP group (dp ranks) and the experts' over their group. */
export async function syncExpertSplit(
  grads: Float32Array, units: readonly ParamUnit[], dpComm: Communicator<Float32Array>, dp: number, ex: ExpertSync, pools: MemoryPools, timer: StepTimer,
): Promise<void> {
  if (dp > 1) await reducePacked(grads, entryRanges(units, (n) => !isExpertParam(n)), dpComm, pools, timer);
  if (ex.edp > 1) {
    if (!ex.comm) throw new Error(`expert gradients: an expert-data-parallel group of ${ex.edp} ranks needs its communicator`);
    await reducePacked(grads, entryRanges(units, isExpertParam), ex.comm, pools, timer);
  }
}
