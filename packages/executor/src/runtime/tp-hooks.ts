// The stage module's tensor-parallel points backed by the TP sub-communicator (Megatron-LM,
// Shoeybi et al. 2019: "g" all-reduce after the row-parallel matmul in forward, "f" all-reduce of
// the column-parallel input gradient in backward). Under sequenceParallel the same sum is done as
// reduce-scatter followed by all-gather (Korthikanti et al. 2022, section 4.2.2): the collectives
// sequence parallelism uses, with the same result as the all-reduce.
import type { Communicator } from '@mist/native';
import { siteOp, type TpHooks } from '../model';
import type { MemoryPools } from '../memory/pools';
import type { StepTimer } from './timer';

export function commTpHooks(tp: Communicator<Float32Array>, sequenceParallel: boolean, timer: StepTimer, pools: MemoryPools): TpHooks {
  if (!sequenceParallel) {
    return { allReduce: (buffer, site) => timer.wait(tp.allReduce(buffer, siteOp(site))) };
  }
  return {
    async allReduce(buffer, site) {
      // The loss's per-token scalars are no sequence-split activations: plain all-reduces.
      if (site.point === 'loss-max' || site.point === 'loss-sum') return timer.wait(tp.allReduce(buffer, siteOp(site)));
      const n = tp.worldSize;
      if (buffer.length % n !== 0) throw new Error(`sequence parallelism: ${buffer.length} activations do not split over tp=${n}`);
      const shard = pools.f32('transient', buffer.length / n);
      try {
        await timer.wait(tp.reduceScatter(buffer, shard, 'sum'));
        await timer.wait(tp.allGather(shard, buffer));
      } finally {
        pools.release(shard);
      }
    },
  };
}
