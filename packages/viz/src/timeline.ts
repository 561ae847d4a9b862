// One iteration of a plan's 1F1B schedule laid out in time from the analyzer's own per-stage
// estimate: core's oneFOneBSchedule gives each stage's order of forwards, backwards and p2p
// messages; estimatePlan gives their durations. Nothing here invents a duration:
//  - forward / backward / recompute boxes are the stage's raw compute times (StageTime.forward,
//    .backward, .recompute) scaled by one factor per stage so that forward + backward + recompute
//    + p2p of one micro-batch equals the analyzer's steady micro-batch (steadyTimeS): the factor
//    carries the exposed TP collectives and the ZeRO/offload traffic that slows the phases;
//  - a p2p box is the stage's ppComm per micro-batch divided over the sends it makes per
//    micro-batch (one on the first and last stage, two in between), paid by the sender;
//  - the first micro-batch's extra (firstTimeS - steadyTimeS: the weight gather / fetch that cannot
//    be prefetched) and the last extra (lastTimeS: gradient sync, optimizer step) are boxes of their own;
//  - offload copies run beside compute (stage-model.ts): the stage's per-iteration copy time
//    (StageTime.offload) is drawn on a second lane, spread evenly over its 2G passes.
//  - device memory over the iteration: the resident model states plus, per micro-batch whose
//    forward has started and whose backward has not ended, its share of the saved activations
//    (memory.activations / in-flight count), plus during a forward the analyzer's forward transient
//    (peakForward - states - activations) and during a recompute or backward its backward transient:
//    where all in-flight micro-batches are live it reaches the analyzer's peaks exactly.
// A stage waits for an activation (gradient) until its neighbour's send box ends, which is where the
// bubbles come from. The drawing's makespan is reported next to the analyzer's closed-form
// iteration time, which adds every stage's first and last extras in series (an upper bound of the
// drawing) and the step jitter.
// An interleaved plan (virtualStages v > 1) is laid out from core's interleavedSchedule: each box is
// one model chunk's pass (1/v of the stage's), p2p boxes divide ppComm over the 2v - [first] - [last]
// sends of a micro-batch, and a message goes to the neighbouring virtual stage (the last rank's chunk
// c feeds the first rank's chunk c + 1); saved activations are counted per chunk pass.
import { interleavedSchedule, maxInFlight, oneFOneBSchedule, type Plan, planVirtualStages, type ScheduleStep, virtualNeighbour } from '@mist/core';
import { type PlanEstimate } from '@mist/analyzer';

export type BoxKind = 'first' | 'forward' | 'recompute' | 'backward' | 'p2p' | 'last' | 'offload';

export interface TimelineBox {
  stage: number;
  kind: BoxKind;
  /** The micro-batch, for forward, backward, recompute, p2p and offload boxes. */
  microBatch?: number;
  /** The rank's model chunk of an interleaved plan (absent: 0). */
  chunk?: number;
  startS: number;
  durationS: number;
  /** 'compute' boxes run one after the other on the stage; 'copy' boxes run beside them. */
  lane: 'compute' | 'copy';
}

export interface TimelineStage {
  index: number;
  /** Time the stage's compute lane is busy (every compute-lane box). */
  busyS: number;
  /** makespan - busy: the stage's bubbles, waiting on its neighbours. */
  idleS: number;
  /** The per-box durations used (seconds). */
  forwardS: number;
  backwardS: number;
  recomputeS: number;
  p2pS: number;
}

/** Device bytes of a stage from `t` until the next point's time (the last holds to the end). */
export interface MemoryPoint {
  t: number;
  bytes: number;
}

export interface Timeline {
  pp: number;
  gradAccumSteps: number;
  boxes: TimelineBox[];
  stages: TimelineStage[];
  /** When the last box of the iteration ends. */
  makespanS: number;
  /** The analyzer's iteration time (estimatePlan.iterationTimeS). */
  predictedIterationS: number;
  /** Per stage, its device memory over the iteration (a step function). */
  memory: MemoryPoint[][];
}

/** Device memory of stage i over the drawn iteration, from its compute boxes (see the file comment). */
function memoryOverTime(est: PlanEstimate, i: number, boxes: TimelineBox[], program: ScheduleStep[]): MemoryPoint[] {
  const s = est.stages[i];
  const states = s.memory.weights + s.memory.grads + s.memory.optim;
  // Forward passes (micro-batches, or chunk passes when interleaved) live at the stage's peak.
  const inFlight = maxInFlight(program);
  const perMb = s.memory.activations / inFlight;
  const fwdExtra = Math.max(0, s.memory.peakForward - states - s.memory.activations);
  const bwdExtra = Math.max(0, s.memory.peakBackward - states - s.memory.activations);
  const points: MemoryPoint[] = [{ t: 0, bytes: states }];
  let live = 0;
  for (const b of boxes) {
    if (b.stage !== i || b.lane !== 'compute') continue;
    if (b.kind === 'forward') {
      live++;
      points.push({ t: b.startS, bytes: states + live * perMb + fwdExtra });
      points.push({ t: b.startS + b.durationS, bytes: states + live * perMb });
    } else if (b.kind === 'recompute' || b.kind === 'backward') {
      points.push({ t: b.startS, bytes: states + live * perMb + bwdExtra });
      if (b.kind === 'backward') live--;
      points.push({ t: b.startS + b.durationS, bytes: states + live * perMb });
    }
  }
  return points;
}

interface StageDurations {
  forwardS: number;
  backwardS: number;
  recomputeS: number;
  p2pS: number;
  firstExtraS: number;
  lastS: number;
  offloadPerPassS: number;
}

function stageDurations(est: PlanEstimate, i: number, pp: number, G: number, v: number): StageDurations {
  const s = est.stages[i];
  const compute = s.time.forward + s.time.backward + s.time.recompute;
  const scale = compute > 0 ? Math.max(0, s.steadyTimeS - s.time.ppComm) / compute : 1;
  // Sends per micro-batch: every chunk boundary but the pipeline's two ends (1 or 2 when v = 1).
  const sends = pp > 1 ? 2 * v - (i === 0 ? 1 : 0) - (i === pp - 1 ? 1 : 0) : 0;
  return {
    forwardS: (s.time.forward * scale) / v,
    backwardS: (s.time.backward * scale) / v,
    recomputeS: (s.time.recompute * scale) / v,
    p2pS: sends > 0 ? s.time.ppComm / sends : 0,
    firstExtraS: Math.max(0, s.firstTimeS - s.steadyTimeS),
    lastS: s.lastTimeS,
    offloadPerPassS: s.time.offload / (2 * G * v),
  };
}

/** Lays out one iteration of `plan` from its estimate (estimatePlan or analyzePlan's analysis). */
export function buildTimeline(plan: Plan, est: PlanEstimate): Timeline {
  const pp = plan.stages.length;
  const G = plan.gradAccumSteps;
  if (est.stages.length !== pp) {
    throw new Error(`estimate.stages has ${est.stages.length} stages but the plan has ${pp}; pass the estimate of this plan`);
  }
  const v = planVirtualStages(plan);
  const d = Array.from({ length: pp }, (_, i) => stageDurations(est, i, pp, G, v));
  const programs = Array.from({ length: pp }, (_, stage) => (v > 1
    ? interleavedSchedule({ stage, pp, gradAccumSteps: G, chunks: v })
    : oneFOneBSchedule({ stage, pp, gradAccumSteps: G })));
  // When the activation (gradient) of micro-batch k for chunk c reaches stage s (key `k:c`): the end
  // of the neighbouring virtual stage's send.
  const fwdArrival: Array<Map<string, number>> = Array.from({ length: pp }, () => new Map());
  const bwdArrival: Array<Map<string, number>> = Array.from({ length: pp }, () => new Map());
  const key = (microBatch: number, chunk: number | undefined): string => `${microBatch}:${chunk ?? 0}`;
  const neighbour = (s: number, chunk: number | undefined, dir: 'next' | 'prev'): { stage: number; chunk: number } => {
    const n = virtualNeighbour(s, chunk ?? 0, pp, v, dir);
    if (!n) throw new Error(`stage ${s} chunk ${chunk ?? 0} sends past the pipeline's end`);
    return n;
  };
  const clock = new Array<number>(pp).fill(0);
  const pc = new Array<number>(pp).fill(0);
  const sent = new Array<boolean>(pp).fill(false);
  const boxes: TimelineBox[] = [];
  const push = (b: TimelineBox): void => { if (b.durationS > 0) boxes.push(b); };
  const compute = (stage: number, kind: BoxKind, durationS: number, microBatch?: number, chunk?: number): void => {
    push({ stage, kind, microBatch, ...(chunk === undefined ? {} : { chunk }), startS: clock[stage], durationS, lane: 'compute' });
    clock[stage] += durationS;
  };
  for (let s = 0; s < pp; s++) compute(s, 'first', d[s].firstExtraS);

  let remaining = programs.reduce((n, p) => n + p.length, 0);
  while (remaining > 0) {
    let progressed = false;
    for (let s = 0; s < pp; s++) {
      while (pc[s] < programs[s].length) {
        const step = programs[s][pc[s]];
        if (step.kind === 'comm') {
          // The sends of a paired step go out first (they wait for nothing), then the stage waits for its receives.
          for (const o of sent[s] ? [] : step.ops) {
            if (o.op === 'sendForward') {
              push({ stage: s, kind: 'p2p', microBatch: o.microBatch, ...(o.chunk === undefined ? {} : { chunk: o.chunk }), startS: clock[s], durationS: d[s].p2pS, lane: 'compute' });
              clock[s] += d[s].p2pS;
              const n = neighbour(s, o.chunk, 'next');
              fwdArrival[n.stage].set(key(o.microBatch, n.chunk), clock[s]);
            } else if (o.op === 'sendBackward') {
              push({ stage: s, kind: 'p2p', microBatch: o.microBatch, ...(o.chunk === undefined ? {} : { chunk: o.chunk }), startS: clock[s], durationS: d[s].p2pS, lane: 'compute' });
              clock[s] += d[s].p2pS;
              const n = neighbour(s, o.chunk, 'prev');
              bwdArrival[n.stage].set(key(o.microBatch, n.chunk), clock[s]);
            }
          }
          sent[s] = true;
          const waits = step.ops.filter((o) => o.op === 'recvForward' || o.op === 'recvBackward');
          const arrivals = waits.map((o) => (o.op === 'recvForward' ? fwdArrival[s] : bwdArrival[s]).get(key(o.microBatch, o.chunk)));
          if (arrivals.some((t) => t === undefined)) break; // the neighbour has not sent it yet
          for (const t of arrivals) clock[s] = Math.max(clock[s], t as number);
          sent[s] = false;
        } else {
          const start = clock[s];
          if (step.kind === 'forward') compute(s, 'forward', d[s].forwardS, step.microBatch, step.chunk);
          else {
            compute(s, 'recompute', d[s].recomputeS, step.microBatch, step.chunk);
            compute(s, 'backward', d[s].backwardS, step.microBatch, step.chunk);
          }
          push({ stage: s, kind: 'offload', microBatch: step.microBatch, startS: start, durationS: Math.min(d[s].offloadPerPassS, clock[s] - start), lane: 'copy' });
        }
        pc[s]++;
        remaining--;
        progressed = true;
      }
    }
    if (!progressed) throw new Error('the 1F1B schedule deadlocked while laying out the timeline'); // core's schedules are deadlock-free
  }
  for (let s = 0; s < pp; s++) compute(s, 'last', d[s].lastS);

  const makespanS = Math.max(...clock);
  const stages: TimelineStage[] = d.map((x, i) => {
    const busyS = boxes.filter((b) => b.stage === i && b.lane === 'compute').reduce((t, b) => t + b.durationS, 0);
    return { index: i, busyS, idleS: makespanS - busyS, forwardS: x.forwardS, backwardS: x.backwardS, recomputeS: x.recomputeS, p2pS: x.p2pS };
  });
  const memory = d.map((_, i) => memoryOverTime(est, i, boxes, programs[i]));
  return { pp, gradAccumSteps: G, boxes, stages, makespanS, predictedIterationS: est.iterationTimeS, memory };
}
