// Step time of a plan whose workers share CPU cores (more workers than cores), for the closed
// loop: the analyzer's per-stage times composed by a simulation of the executor's 1F1B schedule in
// which the workers pinned to one core share its time equally while they compute.
//
// Each rank (stage i, dp index j; rank order as the executor's: stage by stage) runs
// oneFOneBSchedule(i): a forward costs f_i of work, a backward b_i (with its recompute), the step
// ends with last_i (gradient sync, optimizer). A core runs its computing ranks at 1/k speed each
// (k = how many compute at that moment); a rank waiting on a message uses no core. A message
// arrives `latency` after both its sender and its receiver have posted it (the executor pairs
// sends and receives in groups). The step ends when every rank has finished.
'use strict';

/**
 * @param {object} o
 * @param {Array<{forward:number, backward:number, last:number}>} o.stages seconds of work per micro-batch (last: per step)
 * @param {number[]} o.dp data-parallel degree of each stage (equal across stages here)
 * @param {number} o.gradAccumSteps micro-batches
 * @param {number} o.latency seconds per pipeline message once both ends posted it
 * @param {(rank:number) => number} o.coreOf the core a rank is pinned to
 * @param {(q:{stage:number,pp:number,gradAccumSteps:number}) => Array} o.schedule the executor's oneFOneBSchedule
 * @returns {number} seconds of the step
 */
function simulateSharedCores(o) {
  const pp = o.stages.length;
  const ranks = [];
  for (let i = 0; i < pp; i++) {
    for (let j = 0; j < o.dp[i]; j++) {
      const steps = o.schedule({ stage: i, pp, gradAccumSteps: o.gradAccumSteps });
      ranks.push({ stage: i, dpIndex: j, core: o.coreOf(ranks.length), steps: [...steps, { kind: 'last' }], pc: -1, work: 0, waitUntil: null, done: false });
    }
  }
  const rankAt = (stage, dpIndex) => ranks.find((r) => r.stage === stage && r.dpIndex === dpIndex);
  const posted = new Map(); // message key -> time posted by sender ('S') / receiver ('R')
  const keyOf = (r, op) => {
    const mb = op.microBatch;
    if (op.op === 'sendForward') return `F:${r.stage}:${r.dpIndex}:${mb}`;
    if (op.op === 'recvForward') return `F:${r.stage - 1}:${r.dpIndex}:${mb}`;
    if (op.op === 'sendBackward') return `B:${r.stage}:${r.dpIndex}:${mb}`;
    return `B:${r.stage + 1}:${r.dpIndex}:${mb}`;
  };
  let now = 0;

  // Moves a rank to its next step; compute steps get their work, comm steps post their messages.
  const advance = (r) => {
    r.pc++;
    if (r.pc >= r.steps.length) {
      r.done = true;
      return;
    }
    const s = r.steps[r.pc];
    const st = o.stages[r.stage];
    if (s.kind === 'forward') r.work = st.forward;
    else if (s.kind === 'backward') r.work = st.backward;
    else if (s.kind === 'last') r.work = st.last;
    else {
      r.work = 0;
      for (const op of s.ops) {
        const k = keyOf(r, op) + (op.op.startsWith('send') ? 'S' : 'R');
        if (!posted.has(k)) posted.set(k, now);
      }
    }
  };
  // A comm step completes once every message's other end is posted, `latency` after the later post.
  const commEnd = (r) => {
    let end = now;
    for (const op of r.steps[r.pc].ops) {
      const k = keyOf(r, op);
      const s = posted.get(k + 'S'), v = posted.get(k + 'R');
      if (s === undefined || v === undefined) return null;
      end = Math.max(end, Math.max(s, v) + o.latency);
    }
    return end;
  };

  for (const r of ranks) advance(r);
  for (let guard = 0; guard < 1e6; guard++) {
    if (ranks.every((r) => r.done)) return now;
    // Compute steps of zero work and comm steps whose messages are complete move on at once.
    let moved = false;
    for (const r of ranks) {
      while (!r.done) {
        const s = r.steps[r.pc];
        if (s.kind !== 'comm' && r.work <= 1e-15) { advance(r); moved = true; continue; }
        if (s.kind === 'comm') {
          const end = commEnd(r);
          if (end !== null && end <= now + 1e-15) { advance(r); moved = true; continue; }
          r.waitUntil = end;
        }
        break;
      }
    }
    if (moved) continue;
    const computing = ranks.filter((r) => !r.done && r.steps[r.pc].kind !== 'comm');
    const perCore = new Map();
    for (const r of computing) perCore.set(r.core, (perCore.get(r.core) ?? 0) + 1);
    let dt = Infinity;
    for (const r of computing) dt = Math.min(dt, r.work * perCore.get(r.core));
    for (const r of ranks) if (!r.done && r.steps[r.pc].kind === 'comm' && r.waitUntil !== null) dt = Math.min(dt, r.waitUntil - now);
    if (!Number.isFinite(dt)) throw new Error('core-sharing simulation: every rank waits on a message nobody sends (deadlock)');
    for (const r of computing) r.work -= dt / perCore.get(r.core);
    now += dt;
  }
  throw new Error('core-sharing simulation did not finish');
}

module.exports = { simulateSharedCores };
