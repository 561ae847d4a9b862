import { describe, expect, it } from 'vitest';
import { interleavedSchedule, oneFOneBSchedule } from '@mist/core';
import { buildTimeline } from './timeline';
import { pipelinePlan } from './test-plans';

describe('buildTimeline', () => {
  it('has one forward and one backward box per micro-batch and stage, in the order of the 1F1B schedule', () => {
    const { plan, analysis } = pipelinePlan(4, 8, 0);
    const t = buildTimeline(plan, analysis);
    for (let s = 0; s < 4; s++) {
      const compute = t.boxes.filter((b) => b.stage === s && (b.kind === 'forward' || b.kind === 'backward'));
      expect(compute.filter((b) => b.kind === 'forward')).toHaveLength(8);
      expect(compute.filter((b) => b.kind === 'backward')).toHaveLength(8);
      const order = oneFOneBSchedule({ stage: s, pp: 4, gradAccumSteps: 8 }).flatMap((x) => (x.kind === 'comm' ? [] : [`${x.kind}${x.microBatch}`]));
      expect(compute.map((b) => `${b.kind}${b.microBatch}`)).toEqual(order);
    }
    expect(t.boxes.some((b) => b.kind === 'recompute')).toBe(false);
  });

  it('sizes a steady micro-batch (forward + backward + recompute + p2p) as the analyzer\'s steadyTimeS', () => {
    const { plan, analysis } = pipelinePlan(4, 8, 3);
    const t = buildTimeline(plan, analysis);
    t.stages.forEach((st, i) => {
      const sends = i === 0 || i === 3 ? 1 : 2;
      expect(st.forwardS + st.backwardS + st.recomputeS + sends * st.p2pS).toBeCloseTo(analysis.stages[i].steadyTimeS, 12);
      expect(st.recomputeS).toBeGreaterThan(0);
      expect(t.boxes.filter((b) => b.stage === i && b.kind === 'recompute')).toHaveLength(8);
    });
  });

  it('never overlaps two compute boxes of a stage, and a stage waits for its neighbour\'s activation', () => {
    const { plan, analysis } = pipelinePlan(4, 6, 2);
    const t = buildTimeline(plan, analysis);
    for (let s = 0; s < 4; s++) {
      const lane = t.boxes.filter((b) => b.stage === s && b.lane === 'compute').sort((a, b) => a.startS - b.startS);
      for (let i = 1; i < lane.length; i++) expect(lane[i].startS).toBeGreaterThanOrEqual(lane[i - 1].startS + lane[i - 1].durationS - 1e-12);
    }
    for (let s = 1; s < 4; s++) {
      for (let k = 0; k < 6; k++) {
        const fwd = t.boxes.find((b) => b.stage === s && b.kind === 'forward' && b.microBatch === k)!;
        const prev = t.boxes.find((b) => b.stage === s - 1 && b.kind === 'forward' && b.microBatch === k)!;
        expect(fwd.startS).toBeGreaterThanOrEqual(prev.startS + prev.durationS);
      }
    }
    // The last stage starts only after three hops: bubbles at the start of later stages.
    expect(t.stages[3].idleS).toBeGreaterThan(0);
    // The analyzer's closed form adds every stage's first and last extras in series: an upper bound
    // of the drawn schedule, which cannot be shorter than G steady micro-batches of its bottleneck.
    expect(t.makespanS).toBeLessThanOrEqual(analysis.iterationTimeS + 1e-12);
    expect(t.makespanS).toBeGreaterThanOrEqual(6 * analysis.stages[analysis.bottleneckStage].steadyTimeS);
  });

  it('draws offload copies beside compute when the plan offloads', () => {
    const { plan, analysis } = pipelinePlan(2, 4, 0, 0.5);
    const t = buildTimeline(plan, analysis);
    const copies = t.boxes.filter((b) => b.kind === 'offload');
    expect(copies.length).toBe(2 * 2 * 4);
    expect(copies.every((b) => b.lane === 'copy' && b.durationS > 0)).toBe(true);
  });

  it('follows device memory over the iteration up to the analyzer\'s peak of each stage, and back to the model states', () => {
    for (const ckpt of [0, 3]) {
      const { plan, analysis } = pipelinePlan(4, 8, ckpt);
      const t = buildTimeline(plan, analysis);
      t.memory.forEach((points, i) => {
        const s = analysis.stages[i];
        const states = s.memory.weights + s.memory.grads + s.memory.optim;
        expect(Math.max(...points.map((p) => p.bytes))).toBeCloseTo(s.peakMemoryBytes, -3);
        expect(points[0].bytes).toBe(states);
        expect(points[points.length - 1].bytes).toBeCloseTo(states, -3);
        for (let k = 1; k < points.length; k++) expect(points[k].t).toBeGreaterThanOrEqual(points[k - 1].t);
      });
    }
  });

  it('refuses an estimate of another plan', () => {
    const a = pipelinePlan(2, 4, 0);
    const b = pipelinePlan(4, 4, 0);
    expect(() => buildTimeline(a.plan, b.analysis)).toThrow(/estimate.stages has 4 stages but the plan has 2/);
  });
});

describe('buildTimeline of an interleaved plan', () => {
  it('draws one box per chunk pass in the order of core\'s interleaved schedule, each 1/v of the stage\'s', () => {
    const { plan, analysis } = pipelinePlan(4, 8, 2, 0, 2);
    const t = buildTimeline(plan, analysis);
    for (let s = 0; s < 4; s++) {
      const compute = t.boxes.filter((b) => b.stage === s && (b.kind === 'forward' || b.kind === 'backward'));
      const order = interleavedSchedule({ stage: s, pp: 4, gradAccumSteps: 8, chunks: 2 })
        .flatMap((x) => (x.kind === 'comm' ? [] : [`${x.kind}${x.microBatch}.${x.chunk ?? 0}`]));
      expect(compute.map((b) => `${b.kind}${b.microBatch}.${b.chunk ?? 0}`)).toEqual(order);
      // A micro-batch's two chunk passes and its 2v - [first] - [last] sends make the steady micro-batch.
      const st = t.stages[s];
      const sends = 4 - (s === 0 ? 1 : 0) - (s === 3 ? 1 : 0);
      expect(2 * (st.forwardS + st.backwardS + st.recomputeS) + sends * st.p2pS).toBeCloseTo(analysis.stages[s].steadyTimeS, 12);
    }
    // The first rank's chunk 1 waits for the last rank's chunk 0 of the same micro-batch.
    for (let k = 0; k < 8; k++) {
      const c1 = t.boxes.find((b) => b.stage === 0 && b.kind === 'forward' && b.microBatch === k && b.chunk === 1)!;
      const c0 = t.boxes.find((b) => b.stage === 3 && b.kind === 'forward' && b.microBatch === k && (b.chunk ?? 0) === 0)!;
      expect(c1.startS).toBeGreaterThanOrEqual(c0.startS + c0.durationS);
    }
    expect(t.makespanS).toBeLessThanOrEqual(analysis.iterationTimeS * (1 + 1e-9));
    // Memory reaches each stage's analyzer peak.
    t.memory.forEach((points, i) => expect(Math.max(...points.map((p) => p.bytes))).toBeCloseTo(analysis.stages[i].peakMemoryBytes, -3));
  });
});
