// The stage module's tensor-parallel points backed by the TP sub-communicator (Megatron-LM,
// Shoeybi et al. 2019: "g" all-reduce after the row-parallel matmul in forward, "f" all-reduce of
// the column-parallel input gradient in backward). Under sequence parallelism the stage module
// calls the all-gather and reduce-scatter instead at the regions' borders (Korthikanti et al.
// 2022, Sec. 4.2.2), so the norms, dropout and residuals hold b*s/t tokens per rank.
import type { CommBuffer, Communicator } from '@mist/native';
import { siteOp, type TpHooks } from '../model';
import type { StepTimer } from './timer';

/** F: the device's tensor type, which the TP communicator moves (Float32Array on the CPU). */
export function commTpHooks<F extends CommBuffer>(tp: Communicator<F>, timer: StepTimer): TpHooks<F> {
  return {
    allReduce: (buffer, site) => timer.wait(tp.allReduce(buffer, siteOp(site))),
    allGather: (shard, full) => timer.wait(tp.allGather(shard, full)),
    reduceScatter: (full, shard) => timer.wait(tp.reduceScatter(full, shard, 'sum')),
  };
}
