// All-to-all over a communicator, built from its grouped point-to-point sends and receives (the CPU
// collectives have no all-to-all of their own): rank r sends send[p] to every rank p and receives
// recv[p] from it, its own part copied locally. The lengths must agree pairwise (send[p] on rank r
// is as long as recv[r] on rank p); empty parts are not sent, on both sides alike. All pairs run as
// one group, so no order of the ranks' calls can deadlock. Used by expert parallelism's token
// dispatch and combine (model/moe.ts; Megatron-Core's MoEAlltoAllTokenDispatcher does the same with
// torch.distributed.all_to_all_single of per-rank split sizes).
import type { Communicator, GroupOp } from '@mist/native';
import type { ExpertGroup } from '../model';
import type { StepTimer } from './timer';

export async function allToAll(comm: Communicator<Float32Array>, send: readonly Float32Array[], recv: readonly Float32Array[]): Promise<void> {
  const n = comm.worldSize, me = comm.rank;
  if (send.length !== n || recv.length !== n) throw new Error(`all-to-all: got ${send.length} send and ${recv.length} receive parts; allowed: one per rank (${n})`);
  if (send[me].length !== recv[me].length) throw new Error(`all-to-all: rank ${me} sends itself ${send[me].length} floats but receives ${recv[me].length}`);
  recv[me].set(send[me]);
  const ops: GroupOp<Float32Array>[] = [];
  for (let p = 0; p < n; p++) {
    if (p === me) continue;
    if (send[p].length > 0) ops.push({ kind: 'send', buffer: send[p], peer: p });
    if (recv[p].length > 0) ops.push({ kind: 'recv', buffer: recv[p], peer: p });
  }
  if (ops.length > 0) await comm.group(ops);
}

/** The expert-parallel group of a stage on its communicator; the time spent waiting counts as communication. */
export function commExpertGroup(comm: Communicator<Float32Array>, timer: StepTimer): ExpertGroup {
  return { ep: comm.worldSize, rank: comm.rank, allToAll: (send, recv) => timer.wait(allToAll(comm, send, recv)) };
}
