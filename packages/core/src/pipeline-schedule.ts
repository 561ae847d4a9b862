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

// `chunk` (absent: 0) is the rank's model chunk the step runs or the message belongs to; only the
// interleaved schedule sets it (interleavedSchedule).
export type CommOp =
  | { op: 'recvForward'; microBatch: number; chunk?: number }
  | { op: 'sendForward'; microBatch: number; chunk?: number }
  | { op: 'recvBackward'; microBatch: number; chunk?: number }
  | { op: 'sendBackward'; microBatch: number; chunk?: number };

export type ScheduleStep =
  | { kind: 'forward'; microBatch: number; chunk?: number }
  | { kind: 'backward'; microBatch: number; chunk?: number }
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

export interface InterleavedShape extends ScheduleShape {
  /** Model chunks per rank (virtualStages), at least 1. */
  chunks: number;
}

/**
 * Where a message of rank `stage`'s chunk `chunk` goes: the neighbour in the pipeline of pp * v
 * virtual stages, virtual stage j = chunk * pp + stage living on rank j % pp (Megatron-LM's layout).
 * `null` past either end of the pipeline.
 */
export function virtualNeighbour(stage: number, chunk: number, pp: number, chunks: number, dir: 'next' | 'prev'): { stage: number; chunk: number } | null {
  const j = chunk * pp + stage + (dir === 'next' ? 1 : -1);
  if (j < 0 || j >= pp * chunks) return null;
  return { stage: j % pp, chunk: Math.floor(j / pp) };
}

/**
 * Megatron-LM's interleaved 1F1B schedule of one rank holding `chunks` model chunks
 * (forward_backward_pipelining_with_interleaving; Narayanan et al. 2021, Sec. 2.2). The rank runs
 * G * v forward units, each a (micro-batch, chunk) pair in the order of Megatron's schedule table
 * with microbatch_group_size_per_vp_stage = pp: micro-batches in groups of pp, each group through
 * chunk 0, then chunk 1, ...; backward units in the same order with the chunks reversed. Warm-up
 * runs min((pp - stage - 1) * 2 + (v - 1) * pp, G * v) forward units, the steady phase one forward
 * and one backward unit, the cool-down the remaining backwards. After each compute step the sends of
 * its outputs and the receives of the next units' inputs are issued together (Megatron's
 * send_forward_backward_recv_forward_backward), so with unbuffered links no two ranks wait on
 * each other's sends. Requires G % pp == 0 as Megatron does; with v = 1 it is still a valid
 * schedule but keeps more micro-batches in flight than oneFOneBSchedule, which plans with v = 1 use.
 */
export function interleavedSchedule({ stage, pp, gradAccumSteps: G, chunks: v }: InterleavedShape): ScheduleStep[] {
  if (!(Number.isInteger(pp) && pp >= 1)) throw new Error(`pp must be an integer >= 1, got ${pp}`);
  if (!(Number.isInteger(stage) && stage >= 0 && stage < pp)) throw new Error(`stage ${stage} is outside the pipeline of ${pp} stages`);
  if (!(Number.isInteger(v) && v >= 1)) throw new Error(`chunks (virtualStages) must be an integer >= 1, got ${v}`);
  if (!(Number.isInteger(G) && G >= 1 && G % pp === 0)) {
    throw new Error(`gradAccumSteps must be a positive multiple of pp ${pp} for the interleaved schedule, got ${G}`);
  }
  const total = G * v;
  const unit = (k: number, forward: boolean): { microBatch: number; chunk: number } => {
    const within = k % (pp * v);
    const c = Math.floor(within / pp);
    return { microBatch: Math.floor(k / (pp * v)) * pp + (within % pp), chunk: forward ? c : v - 1 - c };
  };
  const steps: ScheduleStep[] = [];
  const comm = (...ops: Array<CommOp | null>): void => {
    const present = ops.filter((o): o is CommOp => o !== null);
    if (present.length > 0) steps.push({ kind: 'comm', ops: present });
  };
  const hasPrev = (chunk: number): boolean => virtualNeighbour(stage, chunk, pp, v, 'prev') !== null;
  const hasNext = (chunk: number): boolean => virtualNeighbour(stage, chunk, pp, v, 'next') !== null;
  const recvF = (k: number): CommOp | null => {
    if (k >= total) return null;
    const u = unit(k, true);
    return hasPrev(u.chunk) ? { op: 'recvForward', ...u } : null;
  };
  const sendF = (k: number): CommOp | null => {
    const u = unit(k, true);
    return hasNext(u.chunk) ? { op: 'sendForward', ...u } : null;
  };
  const recvB = (k: number): CommOp | null => {
    if (k >= total) return null;
    const u = unit(k, false);
    return hasNext(u.chunk) ? { op: 'recvBackward', ...u } : null;
  };
  const sendB = (k: number): CommOp | null => {
    const u = unit(k, false);
    return hasPrev(u.chunk) ? { op: 'sendBackward', ...u } : null;
  };

  const warmup = Math.min((pp - stage - 1) * 2 + (v - 1) * pp, total);
  const steady = total - warmup;
  comm(recvF(0));
  for (let k = 0; k < warmup; k++) {
    steps.push({ kind: 'forward', ...unit(k, true) });
    comm(sendF(k), recvF(k + 1), k === warmup - 1 && steady > 0 ? recvB(0) : null);
  }
  for (let j = 0; j < steady; j++) {
    const f = warmup + j;
    steps.push({ kind: 'forward', ...unit(f, true) });
    steps.push({ kind: 'backward', ...unit(j, false) });
    comm(sendF(f), sendB(j), recvF(f + 1), recvB(j + 1));
  }
  if (steady === 0) comm(recvB(0));
  for (let k = steady; k < total; k++) {
    steps.push({ kind: 'backward', ...unit(k, false) });
    comm(sendB(k), recvB(k + 1));
  }
  return steps;
}

/**
 * Largest number of forward units whose activations a stage holds at once (forwards not yet
 * backwarded): micro-batches for 1F1B, (micro-batch, chunk) pairs for the interleaved schedule,
 * where each holds 1/v of the rank's layers.
 */
export function maxInFlight(steps: ScheduleStep[]): number {
  let live = 0;
  let peak = 0;
  for (const s of steps) {
    if (s.kind === 'forward') peak = Math.max(peak, ++live);
    else if (s.kind === 'backward') live--;
  }
  return peak;
}
