import { builtinHardwareProfile, getModel, NO_OFFLOAD, parseClusterShorthand, parsePlan, parseTrainingSpec, type Plan, SpecError, type StageStrategy } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { estimatePlan, planStageQueries } from './plan-estimate';
import { modelFlopsPerIteration } from './flops';

const stage = (over: Partial<StageStrategy>): StageStrategy => ({
  layers: [0, 23], mesh: { nodes: 1, gpusPerNode: 2 }, microBatchSize: 8, dp: 2, tp: 1, sequenceParallel: false,
  ckptLayers: 24, zero: 1, offload: NO_OFFLOAD, ...over,
});

function ctxFor(model: string, cluster: string, plan: Plan) {
  return {
    model: getModel(model),
    training: parseTrainingSpec({ globalBatch: plan.globalBatch, seqLen: plan.seqLen }),
    profile: builtinHardwareProfile(parseClusterShorthand(cluster)),
  };
}

describe('estimatePlan', () => {
  const small: Plan = parsePlan({ version: 1, model: 'gpt3-1.3b', seqLen: 2048, globalBatch: 32, gradAccumSteps: 2, stages: [stage({})] });

  it('combines stages into the 1F1B iteration time, tokens/s and MFU', () => {
    const ctx = ctxFor('gpt3-1.3b', '1x2-l4', small);
    const est = estimatePlan(small, ctx);
    const [s] = est.stages;
    expect(est.iterationTimeS).toBeCloseTo(s.firstTimeS + s.lastTimeS + (2 - 1) * s.steadyTimeS, 12);
    expect(est.tokensPerS).toBeCloseTo((32 * 2048) / est.iterationTimeS, 6);
    expect(est.modelFlopsPerIteration).toBe(modelFlopsPerIteration(ctx.model, ctx.training));
    expect(est.mfu).toBeCloseTo(est.modelFlopsPerIteration / (est.iterationTimeS * 2 * 121e12), 12);
    expect(est.mfu).toBeGreaterThan(0);
    expect(est.mfu).toBeLessThan(0.7); // below the profile's GEMM efficiency
    expect(s.layers).toEqual([0, 23]);
    expect(est.allFit).toBe(s.fits);
  });

  it('reads each stage\'s peak as torch and nvidia-smi report it, with the profile\'s fixed memory terms', () => {
    const ctx = ctxFor('gpt3-1.3b', '1x2-l4', small);
    const [s] = estimatePlan(small, ctx).stages;
    const m = ctx.profile.memory;
    // allocated: the tensors live at one time; reserved: the peak the fit test reads, fragmentation included.
    expect(s.deviceMemory.allocatedBytes).toBe(Math.min(s.memory.peakLive + (m.workspaceBytes ?? 0), s.deviceMemory.reservedBytes));
    expect(s.deviceMemory.reservedBytes).toBeCloseTo((s.peakMemoryBytes + (m.workspaceBytes ?? 0)) / (1 - m.fragmentation), 3);
    expect(s.deviceMemory.processBytes).toBeCloseTo(s.deviceMemory.reservedBytes + m.cudaContextBytes + m.ncclBufferBytes, 3);
    // A stage fits exactly when what nvidia-smi would show stays within the GPU's memory.
    expect(s.deviceMemory.processBytes <= ctx.profile.cluster.gpu.memoryBytes).toBe(s.deviceFits);
  });

  it('reports a plan that does not fit instead of throwing', () => {
    const big = parsePlan({ ...small, gradAccumSteps: 1, stages: [stage({ microBatchSize: 16, ckptLayers: 0, zero: 0 })] });
    const est = estimatePlan(big, ctxFor('gpt3-1.3b', '1x2-l4', big));
    expect(est.allFit).toBe(false);
    expect(est.stages[0].fits).toBe(false);
    expect(est.stages[0].peakMemoryBytes).toBeGreaterThan(est.stages[0].capacityBytes);
  });

  it('throws a SpecError for a plan that breaks the rules', () => {
    const bad = parsePlan({ ...small, stages: [stage({ layers: [0, 20], ckptLayers: 0 })] });
    expect(() => estimatePlan(bad, ctxFor('gpt3-1.3b', '1x2-l4', bad))).toThrow(SpecError);
  });

  it('gives 1F1B positions and in-flight counts pp - stageIndex', () => {
    const plan = parsePlan({
      version: 1, model: 'gpt3-1.3b', seqLen: 2048, globalBatch: 32, gradAccumSteps: 8,
      stages: [0, 1, 2].map((i) => stage({ layers: [i * 8, i * 8 + 7], mesh: { nodes: 1, gpusPerNode: 2 }, microBatchSize: 2, ckptLayers: 0 })),
    });
    const qs = planStageQueries(plan);
    expect(qs.map((q) => q.position)).toEqual(['first', 'middle', 'last']);
    expect(qs.map((q) => q.inFlight)).toEqual([3, 2, 1]);
    const est = estimatePlan(plan, ctxFor('gpt3-1.3b', '1x8-l4', plan));
    const steadies = est.stages.map((s) => s.steadyTimeS);
    // Fill and drain and the bottleneck's steady micro-batches one after the other; the end-of-step
    // work of all stages at once.
    const want = est.stages.reduce((t, s) => t + s.firstTimeS, 0) + 7 * Math.max(...steadies) + Math.max(...est.stages.map((s) => s.lastTimeS));
    expect(est.iterationTimeS).toBeCloseTo(want, 12);
    expect(est.breakdown.lastS).toBe(Math.max(...est.stages.map((s) => s.lastTimeS)));
    expect(est.bottleneckStage).toBe(steadies.indexOf(Math.max(...steadies)));
    // the first stage keeps the most micro-batches in flight
    expect(est.stages[0].memory.activations).toBeGreaterThan(est.stages[1].memory.activations);
  });

  it('keeps at most G micro-batches in flight when G < pp (1F1B never warms up more than the iteration has)', () => {
    const plan = (G: number): Plan => parsePlan({
      version: 1, model: 'gpt3-1.3b', seqLen: 2048, globalBatch: G, gradAccumSteps: G,
      stages: [0, 1, 2, 3].map((i) => stage({ layers: [i * 6, i * 6 + 5], mesh: { nodes: 1, gpusPerNode: 1 }, microBatchSize: 1, dp: 1, ckptLayers: 0, zero: 0 })),
    });
    expect(planStageQueries(plan(1)).map((q) => q.inFlight)).toEqual([1, 1, 1, 1]);
    expect(planStageQueries(plan(2)).map((q) => q.inFlight)).toEqual([2, 2, 2, 1]);
    expect(planStageQueries(plan(8)).map((q) => q.inFlight)).toEqual([4, 3, 2, 1]);
    const act = (G: number): number[] => estimatePlan(plan(G), ctxFor('gpt3-1.3b', '1x4-l4', plan(G))).stages.map((s) => s.memory.activations);
    const [g1, g2, g8] = [act(1), act(2), act(8)];
    // Middle stages (no embedding or head) with one micro-batch each hold the same activations.
    expect(g1[1]).toBeCloseTo(g1[2], 0);
    expect(g2[1] / g1[1]).toBeCloseTo(2, 6);
    expect(g8[1] / g1[1]).toBeCloseTo(3, 6);
  });

  it('lands near Megatron-LM\'s measured 175B throughput (Narayanan et al. 2021, Table 1: 138 TFLOP/s per A100, 44% of peak)', () => {
    const stages = Array.from({ length: 16 }, (_, i) => stage({
      layers: [i * 6, i * 6 + 5], mesh: { nodes: 12, gpusPerNode: 8 }, microBatchSize: 1, dp: 12, tp: 8, ckptLayers: 6, zero: 0,
    }));
    const plan = parsePlan({ version: 1, model: 'gpt3-175b', seqLen: 2048, globalBatch: 1536, gradAccumSteps: 128, flashAttention: false, stages });
    const ctx = ctxFor('gpt3-175b', '192x8-a100-80gb', plan);
    const est = estimatePlan(plan, ctx);
    expect(est.devices).toBe(1536);
    expect(est.allFit).toBe(true);
    const hardwareFlops = modelFlopsPerIteration(ctx.model, { ...ctx.training, flashAttention: false }, { fullRecompute: true });
    const perGpu = hardwareFlops / est.iterationTimeS / 1536;
    expect(perGpu).toBeGreaterThan(0.75 * 138e12);
    expect(perGpu).toBeLessThan(1.25 * 138e12);
  });
});

describe('estimatePlan of interleaved plans (virtualStages)', () => {
  const plan = (v: number | undefined): Plan => parsePlan({
    version: 1, model: 'gpt3-1.3b', seqLen: 2048, globalBatch: 16, gradAccumSteps: 8, virtualStages: v,
    stages: [0, 1, 2, 3].map((i) => stage({ layers: [i * 6, i * 6 + 5], mesh: { nodes: 1, gpusPerNode: 2 }, microBatchSize: 1, dp: 2, ckptLayers: 0, zero: 0 })),
  });
  const est = (v: number | undefined) => estimatePlan(plan(v), ctxFor('gpt3-1.3b', '1x8-l4', plan(v)));

  it('keeps Megatron-LM\'s in-flight forward units per rank, in micro-batches of the whole rank', () => {
    expect(planStageQueries(plan(undefined)).map((q) => q.inFlight)).toEqual([4, 3, 2, 1]);
    // ((pp - i - 1) * 2 + (v - 1) * pp + 1) / v with pp 4, v 2: 11/2, 9/2, 7/2, 5/2.
    expect(planStageQueries(plan(2)).map((q) => q.inFlight)).toEqual([5.5, 4.5, 3.5, 2.5]);
    // v 3: 15/3, 13/3, 11/3, 9/3, and at most G * v / v = 8.
    expect(planStageQueries(plan(3)).map((q) => q.inFlight)).toEqual([15 / 3, 13 / 3, 11 / 3, 3]);
    const [plain, inter] = [est(undefined), est(2)];
    inter.stages.forEach((s, i) => {
      expect(s.memory.activations / plain.stages[i].memory.activations).toBeCloseTo([5.5 / 4, 4.5 / 3, 3.5 / 2, 2.5][i], 9);
    });
  });

  it('pays 2 (v - 1) more p2p messages per micro-batch and shrinks the bubble v times', () => {
    const plain = est(undefined);
    for (const v of [2, 3]) {
      const inter = est(v);
      inter.stages.forEach((s, i) => {
        const p = plain.stages[i];
        const perMessage = p.time.ppComm / (i === 0 || i === 3 ? 1 : 2);
        expect(s.time.ppComm - p.time.ppComm).toBeCloseTo(2 * (v - 1) * perMessage, 12);
        expect(s.steadyTimeS - p.steadyTimeS).toBeCloseTo(2 * (v - 1) * perMessage, 12);
      });
      // Fill and drain in chunk units: the (pp - 1) bubble micro-batches shrink to (pp - 1) / v.
      expect(inter.breakdown.steadyS).toBeCloseTo(((8 * v - 1) * Math.max(...inter.stages.map((s) => s.steadyTimeS))) / v, 12);
      expect(inter.iterationTimeS).toBeLessThan(plain.iterationTimeS);
    }
  });
});
