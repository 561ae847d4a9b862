// Expert parallelism (mixture-of-experts models) in the tuner: ep is a per-stage dimension (divisors
// of dp * cp that divide the experts, up to maxEp), the tune equals brute force on small MoE models
// whose optima use it, and a plan with ep above the space's maxEp is not a member.
import { estimatePlan } from '@mist/analyzer';
import { type ModelSpec, parseModelSpec, parsePlan } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { backendSpace } from './backend-space';
import { bruteForce } from './brute-force';
import { epChoices, parallelConfigs } from './enumerate';
import { mistSpace, NO_OFFLOAD_LEVELS, uniformOffloadLevels } from './search-space';
import { planSpaceViolations } from './space-membership';
import { mulberry32 } from './test/random-instance';
import { tinyContext, withAllBusy } from './test/tiny-context';
import { tune } from './tuner';

/** gpt-tiny's shape with `experts` SwiGLU experts, top `topK`. */
function moeTiny(experts: number, topK: number, ffnHidden = 128, layers = 4): ModelSpec {
  return parseModelSpec({
    name: `moe-tiny-${experts}x${topK}`, family: 'mixtral', layers, hidden: 64, heads: 4, kvHeads: 2, ffnHidden, vocab: 256, maxSeq: 64,
    norm: 'rmsnorm', activation: 'swiglu', positional: 'rope', tiedEmbeddings: false, bias: false, moe: { experts, topK },
  });
}

const noOffload = mistSpace({ zero: [0, 1], offload: NO_OFFLOAD_LEVELS, frontierSize: Infinity, maxCp: 1 });
const offloadHalf = mistSpace({ zero: [0, 1, 2, 3], offload: uniformOffloadLevels(0.5), frontierSize: Infinity, maxCp: 1 });

describe('expert-parallel degrees of a stage', () => {
  it('are the divisors of dp * cp that divide the experts, up to maxEp; 1 for a dense model', () => {
    expect(epChoices(mistSpace(), moeTiny(4, 2), 8)).toEqual([1, 2, 4]);
    expect(epChoices(mistSpace({ maxEp: 2 }), moeTiny(4, 2), 8)).toEqual([1, 2]);
    expect(epChoices(mistSpace(), moeTiny(6, 2), 4)).toEqual([1, 2]);
    expect(epChoices(mistSpace(), { ...moeTiny(4, 2), moe: undefined }, 8)).toEqual([1]);
    // The cpu backend runs expert parallelism (executor model/moe.ts): its space leaves ep to the divisor rule.
    expect(epChoices(backendSpace('cpu', moeTiny(4, 2)), moeTiny(4, 2), 8)).toEqual([1, 2, 4]);
    const configs = parallelConfigs(mistSpace({ zero: [0] }), moeTiny(4, 2), 64, { nodes: 1, gpusPerNode: 4 }, 4);
    expect(configs.filter((c) => c.tp === 1 && c.cp === 1).map((c) => c.ep ?? 1)).toEqual([1, 2, 4]);
  });
});

describe('a plan with expert parallelism in a space', () => {
  it('is refused by a space with a smaller maxEp, naming stages[i].ep', () => {
    const plan = parsePlan({
      version: 1, model: 'moe-tiny-4x2', seqLen: 64, globalBatch: 4, gradAccumSteps: 1,
      stages: [{
        layers: [0, 3], mesh: { nodes: 1, gpusPerNode: 4 }, microBatchSize: 1, dp: 4, tp: 1, ep: 4, sequenceParallel: false,
        ckptLayers: 0, zero: 0, offload: { weights: 0, grads: 0, optim: 0, activations: 0 },
      }],
    }, { model: moeTiny(4, 2) });
    expect(planSpaceViolations(plan, mistSpace())).toEqual([]);
    expect(planSpaceViolations(plan, mistSpace({ maxEp: 2 }))).toEqual(['stages[0].ep: 4, the space allows at most 2']);
    expect(planSpaceViolations(plan, mistSpace({ maxEp: undefined }))).toEqual(['stages[0].ep: 4, the space allows at most 1']);
  });
});

describe('--max-ep restricts the search (a membership check per restriction flag)', () => {
  it('--max-ep 1 and --max-ep 2 return plans of the restricted space where the optimum uses ep 4', async () => {
    const ctx = { ...tinyContext('1x4-l4', 4e6, 8, 64), model: moeTiny(8, 2) };
    for (const maxEp of [1, 2]) {
      const space = { ...noOffload, maxEp };
      const res = await tune(ctx, { space });
      expect(res.plan).not.toBeNull();
      expect(planSpaceViolations(res.plan!, space)).toEqual([]);
      expect(res.plan!.stages.every((st) => (st.ep ?? 1) <= maxEp)).toBe(true);
    }
  });
});

interface Case {
  name: string;
  model: ModelSpec;
  cluster: string;
  usableBytes: number;
  globalBatch: number;
  space: typeof noOffload;
  allBusy?: boolean;
  /** The optimum splits the experts (some stage has ep > 1), and the space without ep is slower. */
  usesEp?: boolean;
}

const cases: Case[] = [
  { name: '1x4, 8 experts top 2, tight memory, no offload', model: moeTiny(8, 2), cluster: '1x4-l4', usableBytes: 4e6, globalBatch: 8, space: noOffload, usesEp: true },
  { name: '2x2, 4 experts top 1, tight memory, no offload', model: moeTiny(4, 1, 256), cluster: '2x2-l4', usableBytes: 4e6, globalBatch: 8, space: noOffload, usesEp: true },
  { name: '1x4, 8 experts top 2, offload 1/2 grid', model: moeTiny(8, 2), cluster: '1x4-l4', usableBytes: 3e6, globalBatch: 4, space: offloadHalf },
  { name: '1x4, 4 experts top 2, measured-style profile', model: moeTiny(4, 2, 256), cluster: '1x4-l4', usableBytes: 4e6, globalBatch: 8, space: noOffload, allBusy: true },
];

// Seeded random small MoE models (experts, top-k, expert width, layers) and memory budgets.
const rnd = mulberry32(20261205);
for (let i = 0; i < 4; i++) {
  const experts = [2, 4, 8][Math.floor(rnd() * 3)];
  const topK = 1 + Math.floor(rnd() * Math.min(2, experts));
  const ffn = [64, 128, 256][Math.floor(rnd() * 3)];
  const layers = 2 + Math.floor(rnd() * 3);
  cases.push({
    name: `random ${i}: ${experts} experts top ${topK}, ffn ${ffn}, ${layers} layers`, model: moeTiny(experts, topK, ffn, layers),
    cluster: rnd() < 0.5 ? '1x4-l4' : '2x2-l4', usableBytes: 2e6 + Math.floor(rnd() * 4) * 1e6, globalBatch: [4, 8][Math.floor(rnd() * 2)], space: noOffload,
  });
}

describe('tuner optimality against brute force with expert parallelism (small MoE models)', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const tiny = { ...tinyContext(c.cluster, c.usableBytes, c.globalBatch, 64), model: c.model };
      const ctx = c.allBusy ? withAllBusy(tiny) : tiny;
      const ref = bruteForce(ctx, c.space);
      const res = await tune(ctx, { space: c.space });
      if (ref === null) {
        expect(res.plan).toBeNull();
        return;
      }
      if (c.usesEp) {
        expect(ref.plan.stages.some((s) => (s.ep ?? 1) > 1)).toBe(true);
        const without = bruteForce(ctx, { ...c.space, maxEp: 1 });
        expect(without === null || without.iterationTimeS > ref.iterationTimeS).toBe(true);
      }
      expect(res.plan).not.toBeNull();
      const tuned = res.predicted!.iterationTimeS;
      expect(Math.abs(tuned - ref.iterationTimeS)).toBeLessThanOrEqual(1e-12 * ref.iterationTimeS);
      parsePlan(res.plan, { model: ctx.model, cluster: ctx.profile.cluster });
      expect(res.predicted!.allFit).toBe(true);
      expect(planSpaceViolations(res.plan!, c.space)).toEqual([]);
      expect(estimatePlan(ref.plan, ctx).iterationTimeS).toBeCloseTo(ref.iterationTimeS, 12);
    });
  }
});
