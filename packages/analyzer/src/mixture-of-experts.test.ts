// Mixture of experts in the analyzer: the FLOPs of Mixtral's layers (router, topK experts per token),
// the expert-parallel degree ep splitting the experts' weights, gradients and optimizer states over
// ep ranks (their ZeRO sharding over dp * cp / ep), the dispatch and combine all-to-alls (zero at
// ep 1, nccl-tests' (n-1)/n rule), and dense models untouched by the ep column.
import * as path from 'node:path';
import { builtinHardwareProfile, expertLayerParams, getModel, loadPlan, NO_OFFLOAD, parseClusterShorthand, parseTrainingSpec } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { compileStageModel, type StageQuery, writeStageQuery } from './compile';
import { evaluate, sym } from './expr';
import { modelFlopsPerIteration } from './flops';
import { CostModel } from './hardware-cost';
import { INPUT_WIDTH, IN, OUTPUT_WIDTH } from './layout';
import { ELEMENTWISE_TABLE_NAMES, layerOps } from './op-graph';
import { estimatePlan } from './plan-estimate';

const mixtral = getModel('mixtral-8x7b');
const profile = builtinHardwareProfile(parseClusterShorthand('4x8-h100-sxm'));

function query(over: Partial<StageQuery> = {}): StageQuery {
  return {
    layers: 8, position: 'middle', inFlight: 2, pp: 4, mesh: { nodes: 1, gpusPerNode: 8 },
    microBatchSize: 1, gradAccumSteps: 16, dp: 8, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 1,
    offload: NO_OFFLOAD, ...over,
  };
}

describe('mixture of experts in the op graph', () => {
  it('counts the model FLOPs of Mixtral: attention, the router and topK of the 8 SwiGLU experts per token', () => {
    const B = 8, s = 4096;
    const training = parseTrainingSpec({ globalBatch: B, seqLen: s });
    const { hidden: h, ffnHidden: f, vocab: V } = mixtral;
    const kv = (mixtral.kvHeads / mixtral.heads) * h;
    const layer = 2 * B * s * h * (h + 2 * kv) + 4 * B * s * s * h + 2 * B * s * h * h + 2 * B * s * h * 8 + 2 * 6 * B * s * h * f;
    expect(modelFlopsPerIteration(mixtral, training) / (3 * (mixtral.layers * layer + 2 * B * s * h * V))).toBeCloseTo(1, 12);
  });

  it('charges the dispatch and combine an all-to-all each way over the ep group, none at ep 1', () => {
    const ops = layerOps(mixtral, { actBytes: 2 });
    const a2a = ops.flatMap((o) => o.comm.filter((c) => c.group === 'ep').map((c) => `${o.name}:${c.phase}:${c.collective}`));
    expect(a2a).toEqual(['moe.dispatch:forward:allToAll', 'moe.dispatch:backward:allToAll', 'moe.combine:forward:allToAll', 'moe.combine:backward:allToAll']);
    const cost = new CostModel(profile);
    const B = 1 << 20;
    const t = (n: number): number => evaluate(cost.collective('allToAll', sym('B'), sym('n'), { interWeight: sym('x') }), { B, n, x: 0 });
    expect(t(1)).toBe(0);
    const link = profile.links.intraNode;
    expect(t(8)).toBeCloseTo(7 * link.alpha + (7 / 8) * B * link.beta, 12);
  });
});

describe('the example plan of Mixtral 8x7B on 4x8 H100 (examples/plans)', () => {
  it('loads, fits with ep 8 and not with ep 1, and names its profile tables', () => {
    const cluster = parseClusterShorthand('4x8-h100-sxm');
    const plan = loadPlan(path.resolve(__dirname, '../../../examples/plans/mixtral-8x7b-4x8-h100-ep8.json'), { model: mixtral, cluster });
    const ctx = { model: mixtral, profile, training: parseTrainingSpec({ globalBatch: plan.globalBatch, seqLen: plan.seqLen }) };
    const est = estimatePlan(plan, ctx);
    expect(est.allFit).toBe(true);
    expect(estimatePlan({ ...plan, stages: plan.stages.map((st) => ({ ...st, ep: 1 })) }, ctx).allFit).toBe(false);
    for (const m of [mixtral, getModel('nemotron-4-15b')]) {
      for (const o of layerOps(m, { actBytes: 2 })) if (o.table) expect(ELEMENTWISE_TABLE_NAMES, `${m.name} ${o.name}`).toContain(o.table);
    }
  });
});

describe('expert parallelism in the stage model', () => {
  const training = parseTrainingSpec({ globalBatch: 128, seqLen: 4096, flashAttention: true });
  const stage = compileStageModel({ model: mixtral, profile, training });

  it('reads a query without ep, and a row whose ep column is 0, as ep 1', () => {
    expect(stage.estimate(query({ ep: 1 }))).toEqual(stage.estimate(query()));
    const row = new Float64Array(INPUT_WIDTH);
    const out = new Float64Array(OUTPUT_WIDTH);
    writeStageQuery(query(), row);
    row[IN.EP] = 0;
    stage.evaluateBatch(row, out, 1);
    expect(out[0]).toBe(stage.estimate(query()).steadyTimeS);
  });

  it('splits the experts\' weights over ep ranks and their ZeRO-1 optimizer states over dp / ep', () => {
    const one = stage.estimate(query());
    const eight = stage.estimate(query({ ep: 8 }));
    const expertBytes = (2 * 8 * expertLayerParams(mixtral)) / 8; // 2-byte weights of 8 layers, 1/8 of the experts
    expect(one.memory.weights - eight.memory.weights).toBeCloseTo(expertBytes * 7, -3);
    // The optimizer states of the experts are sharded over dp*cp/ep: at ep 8 over 1 rank, as at ep 1 over 8.
    expect(eight.memory.optim).toBeCloseTo(one.memory.optim, -3);
    expect(eight.peakMemoryBytes).toBeLessThan(one.peakMemoryBytes);
  });

  it('keeps the compute of balanced routing and adds the all-to-all time as ep grows inside a node', () => {
    const eps = [1, 2, 4, 8].map((ep) => stage.estimate(query({ ep })));
    for (const e of eps) expect(e.time.forward).toBeCloseTo(eps[0].time.forward, 12);
    expect(eps[0].time.tpComm).toBe(0);
    for (let i = 1; i < eps.length; i++) {
      expect(eps[i].time.tpComm).toBeGreaterThan(eps[i - 1].time.tpComm);
      expect(eps[i].memory.weights).toBeLessThan(eps[i - 1].memory.weights);
    }
  });

  it('crosses the network when tp * ep exceeds the GPUs per node', () => {
    const inside = stage.estimate(query({ ep: 8, dp: 8 }));
    const across = stage.estimate(query({ ep: 8, dp: 8, tp: 2, mesh: { nodes: 2, gpusPerNode: 8 }, sequenceParallel: true }));
    expect(across.time.tpComm).toBeGreaterThan(inside.time.tpComm);
  });

  it('leaves a dense model\'s estimate alone whatever the ep column holds', () => {
    const dense = compileStageModel({ model: getModel('llama2-7b'), profile, training });
    const rows = new Float64Array(3 * INPUT_WIDTH);
    const out = new Float64Array(3 * OUTPUT_WIDTH);
    [0, 1, 4].forEach((ep, i) => {
      writeStageQuery(query({ layers: 8 }), rows, i);
      rows[i * INPUT_WIDTH + IN.EP] = ep;
    });
    dense.evaluateBatch(rows, out, 3);
    expect(Array.from(out.subarray(OUTPUT_WIDTH, 2 * OUTPUT_WIDTH))).toEqual(Array.from(out.subarray(0, OUTPUT_WIDTH)));
    expect(Array.from(out.subarray(2 * OUTPUT_WIDTH))).toEqual(Array.from(out.subarray(0, OUTPUT_WIDTH)));
  });
});
