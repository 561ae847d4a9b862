import { builtinHardwareProfile, getModel, type HardwareProfile, parseClusterShorthand } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { evaluate, sym } from './expr';
import { computeRates, CostModel } from './hardware-cost';
import { ELEMENTWISE_TABLE_NAMES, layerOps } from './op-graph';

const base = builtinHardwareProfile(parseClusterShorthand('2x8-a100-40gb'));

describe('compute rates', () => {
  it('come from the datasheet profile by default', () => {
    const r = computeRates(base);
    expect(r.source).toBe('datasheet');
    expect(r.matmulRate).toBe(base.compute.peakFlops * base.compute.matmulEfficiency);
    expect(r.halfFlops).toBe(base.compute.matmulHalfEfficiencyFlops);
  });

  it('are fitted from a measured matmul table (seconds = c0 + FLOPs / rate)', () => {
    const rate = 150e12;
    const c0 = 20e-6;
    const shapes = [[1024, 1024, 1024], [4096, 4096, 4096], [8192, 2048, 8192], [2048, 512, 2048]];
    const table = shapes.map(([m, n, k]) => ({ m, n, k, seconds: c0 + (2 * m * n * k) / rate }));
    const p: HardwareProfile = { ...base, matmulTable: table, opTable: [
      { op: 'gelu', elements: 1e6, seconds: 1e-5 + 1e6 * 2e-12 }, { op: 'gelu', elements: 1e8, seconds: 1e-5 + 1e8 * 2e-12 },
    ] };
    const r = computeRates(p);
    expect(r.source).toBe('matmulTable');
    expect(r.matmulRate / rate).toBeCloseTo(1, 6);
    expect(r.halfFlops / ((c0 - base.compute.kernelLaunch) * rate)).toBeCloseTo(1, 6);
    expect(r.opFits.get('gelu')?.c1).toBeCloseTo(2e-12, 18);
    // the GELU op of a GPT layer is then timed by the fit
    const gelu = layerOps(getModel('gpt3-1.3b'), { actBytes: 2 }).find((o) => o.name === 'mlp.gelu');
    expect(gelu?.table && ELEMENTWISE_TABLE_NAMES.includes(gelu.table as never)).toBe(true);
    const cost = new CostModel(p);
    const env = { b: 1, s: 2048, f: 8192, t: 1, sp: 0, fa: 1, h: 2048, a: 16, k: 16 };
    expect(evaluate(cost.forward(gelu!), env)).toBeCloseTo(1e-5 + 2048 * 8192 * 2e-12, 12);
  });
});

describe('collectives (ring alpha-beta)', () => {
  const cost = new CostModel(base);
  const intra = base.links.intraNode;
  const inter = base.links.interNode;
  const B = 1e9;
  it('all-reduce: 2(n-1) alpha + 2(n-1)/n B beta; all-gather half of it; send/recv alpha + B beta', () => {
    const n = 8;
    const ar = evaluate(cost.collective('allReduce', sym('B'), sym('n'), { interWeight: sym('x') }), { B, n, x: 0 });
    expect(ar).toBeCloseTo(2 * (n - 1) * intra.alpha + ((2 * (n - 1)) / n) * B * intra.beta, 12);
    const ag = evaluate(cost.collective('allGather', sym('B'), sym('n'), { interWeight: sym('x') }), { B, n, x: 1 });
    expect(ag).toBeCloseTo((n - 1) * inter.alpha + ((n - 1) / n) * B * inter.beta, 12);
    const p2p = evaluate(cost.collective('sendRecv', sym('B'), sym('n'), { interWeight: sym('x') }), { B, n: 2, x: 1 });
    expect(p2p).toBeCloseTo(inter.alpha + B * inter.beta, 12);
    expect(evaluate(cost.collective('allReduce', sym('B'), sym('n'), { interWeight: sym('x') }), { B, n: 1, x: 0 })).toBe(0);
  });

  it('uses a profile\'s per-collective fit where given', () => {
    const p: HardwareProfile = {
      ...base,
      collectives: {
        allReduce: { ...base.links, intraNode: { alpha: 1e-3, beta: 1e-9 } },
        allGather: base.links, reduceScatter: base.links, sendRecv: base.links,
      },
    };
    const c = new CostModel(p);
    const ar = evaluate(c.collective('allReduce', sym('B'), sym('n'), { interWeight: sym('x') }), { B, n: 2, x: 0 });
    expect(ar).toBeCloseTo(2 * 1e-3 + B * 1e-9, 12);
  });
});

describe('inter-node bandwidth of a group with several ranks per node', () => {
  const B = 1e9;
  const n = 32;
  const link = { interWeight: sym('x'), ranksPerNode: sym('k') };
  const allGather = (p: HardwareProfile, k: number, x = 1): number =>
    evaluate(new CostModel(p).collective('allGather', sym('B'), sym('n'), link), { B, n, x, k });
  it('grows with the ranks per node (NCCL rings over every network card), up to the intra-node link', () => {
    const { intraNode, interNode } = base.links;
    const one = allGather(base, 1);
    expect(one).toBeCloseTo((n - 1) * interNode.alpha + ((n - 1) / n) * B * interNode.beta, 12);
    // 2x8 A100: 25 GB/s per GPU on the network, 300 GB/s NVLink: 8 ranks per node move 8x as fast.
    expect(allGather(base, 8)).toBeCloseTo((n - 1) * interNode.alpha + ((n - 1) / n) * B * (interNode.beta / 8), 12);
    // A group cannot cross the network faster than its ranks talk inside a node.
    expect(allGather(base, 64)).toBeCloseTo((n - 1) * interNode.alpha + ((n - 1) / n) * B * intraNode.beta, 12);
    // Inside a node the ranks per node change nothing.
    expect(allGather(base, 8, 0)).toBe(allGather(base, 1, 0));
  });

  it('stays the per-GPU share for a profile that does not say otherwise (measured profiles)', () => {
    const perGpu: HardwareProfile = { ...base, links: { ...base.links, interNodeScaling: undefined } };
    expect(allGather(perGpu, 8)).toBe(allGather(perGpu, 1));
    expect(allGather(perGpu, 1)).toBe(allGather(base, 1));
  });
});

describe('causal attention work', () => {
  it('times the attention kernel by the share of the score work it does (profile attentionWorkFraction)', () => {
    const attn = layerOps(getModel('gpt3-1.3b'), { actBytes: 2 }).find((o) => o.kind === 'attention');
    const env = { b: 8, s: 2048, f: 8192, t: 1, sp: 0, fa: 1, h: 2048, a: 16, k: 16 };
    const launches = 2 * base.compute.kernelLaunch;
    const timed = (work: number | undefined): number => {
      const p: HardwareProfile = { ...base, compute: { ...base.compute, attentionWorkFraction: work } };
      const c = new CostModel(p);
      return evaluate(c.forward(attn!), env) + evaluate(c.backward(attn!), env) - launches;
    };
    expect(base.compute.attentionWorkFraction).toBe(0.5);
    expect(timed(0.5) / timed(undefined)).toBeCloseTo(0.5, 6);
  });
});
