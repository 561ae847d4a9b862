// The 1F1B pipeline schedule of one stage, shared by the executor (which runs it), the plan pictures
// of @mist/viz (which draw it) and their tests: one order of forwards, backwards and p2p messages.
//
// The 1F1B pipeline schedule of one stage (Narayanan et al. 2021, "PipeDream-Flush"; Megatron-LM's
// forward_backward_pipelining_without_interleaving): `warmup = min(pp - stage - 1, G)` forwards, then
// one forward + one backward until every forward is done, then the remaining backwards.
// Communication is paired the way Megatron-LM pairs it (send_forward_recv_backward and
// send_backward_recv_forward), and the runner issues the two halves of a pair concurrently, so a
// stage never waits on a send while its neighbour waits on a send the other way: no deadlock even
// when sends do not buffer.

export type CommOp =
  | { op: 'recvForward'; microBatch: number }
  | { op: 'sendForward'; microBatch: number }
  | { op: 'recvBackward'; microBatch: number }
  | { op: 'sendBackward'; microBatch: number };

export type ScheduleStep =
  | { kind: 'forward'; microBatch: number }
  | { kind: 'backward'; microBatch: number }
  /** Communication ops issued together and awaited together. */
  | { kind: 'comm'; ops: CommOp[] };

export interface ScheduleShape {
  stage: number;
  pp: number;
  gradAccumSteps: number;
}

export function oneFOneBSchedule({ stage, pp, gradAccumSteps: m }: ScheduleShape): ScheduleStep[] {
  if (!(stage >= 0 && stage < pp)) throw new Error(`stage ${stage} is outside the pipeline of ${pp} stages`);
  if (m < 1) throw new Error(`gradAccumSteps must be at least 1, got ${m}`);
  const first = stage === 0;
  const last = stage === pp - 1;
  const steps: ScheduleStep[] = [];
  const comm = (...ops: Array<CommOp | null>): void => {
    const present = ops.filter((o): o is CommOp => o !== null);
    if (present.length > 0) steps.push({ kind: 'comm', ops: present });
  };
  const recvF = (mb: number): CommOp | null => (first ? null : { op: 'recvForward', microBatch: mb });
  const sendF = (mb: number): CommOp | null => (last ? null : { op: 'sendForward', microBatch: mb });
  const recvB = (mb: number): CommOp | null => (last ? null : { op: 'recvBackward', microBatch: mb });
  const sendB = (mb: number): CommOp | null => (first ? null : { op: 'sendBackward', microBatch: mb });

  const warmup = Math.min(pp - stage - 1, m);
  const steady = m - warmup;
  for (let k = 0; k < warmup; k++) {
    comm(recvF(k));
    steps.push({ kind: 'forward', microBatch: k });
    comm(sendF(k));
  }
  if (steady > 0) comm(recvF(warmup));
  for (let j = 0; j < steady; j++) {
    const fwd = warmup + j;
    steps.push({ kind: 'forward', microBatch: fwd });
    comm(sendF(fwd), recvB(j));
    steps.push({ kind: 'backward', microBatch: j });
    if (j === steady - 1) comm(sendB(j));
    else comm(sendB(j), recvF(fwd + 1));
  }
  for (let k = steady; k < m; k++) {
    comm(recvB(k));
    steps.push({ kind: 'backward', microBatch: k });
    comm(sendB(k));
  }
  return steps;
}

/** Largest number of micro-batches whose activations a stage holds at once (forwards not yet backwarded). */
export function maxInFlight(steps: ScheduleStep[]): number {
  let live = 0;
  let peak = 0;
  for (const s of steps) {
    if (s.kind === 'forward') peak = Math.max(peak, ++live);
    else if (s.kind === 'backward') live--;
  }
  return peak;
}
