// Megatron-Core's communication overlaps (the training spec's tpCommOverlap, paramGatherOverlap and
// gradReduceOverlap): written by the Megatron-LM export where Megatron-LM accepts them and the analyzer
// predicts them, and read back by the import. The default writes --overlap-grad-reduce with data
// parallelism (the analyzer's default reduction beside the last backward; Megatron-LM's is after it).
import { describe, expect, it } from 'vitest';
import { getModel, parseClusterShorthand } from '@mist/core';
import { exportMegatron, ImportError, importMegatron } from './index';
import { input, makePlan, stage } from './test-helpers';

const gpt = getModel('gpt3-1.3b');
const c2x8 = parseClusterShorthand('2x8-a100-80gb');
const OVERLAP_FLAGS = ['--overlap-grad-reduce', '--overlap-param-gather', '--tp-comm-overlap'];

const sp = makePlan(gpt, c2x8, 32, 2, [stage([0, 23], { mesh: { nodes: 2, gpusPerNode: 8 }, dp: 8, tp: 2, sequenceParallel: true, zero: 1, microBatchSize: 2 })]);
const noSp = makePlan(gpt, c2x8, 32, 2, [stage([0, 23], { mesh: { nodes: 2, gpusPerNode: 8 }, dp: 16, zero: 0 })]);

function args(plan: typeof sp, overlaps?: { tpCommOverlap?: boolean; paramGatherOverlap?: boolean; gradReduceOverlap?: boolean }): string[] {
  return exportMegatron({ ...input(plan, gpt, c2x8), overlaps }).find((f) => f.path === 'args.txt')!.content.split(/\s+/).filter(Boolean);
}

describe('Megatron-LM export of the communication overlaps', () => {
  it('writes --overlap-grad-reduce alone by default or with the others off, none with gradReduceOverlap false', () => {
    for (const o of [undefined, {}, { tpCommOverlap: false, paramGatherOverlap: false }, { gradReduceOverlap: true }]) {
      expect(args(sp, o).filter((w) => OVERLAP_FLAGS.includes(w))).toEqual(['--overlap-grad-reduce']);
      expect(args(sp, o)).toEqual(args(sp));
    }
    expect(args(sp, { gradReduceOverlap: false }).filter((w) => OVERLAP_FLAGS.includes(w))).toEqual([]);
    // Without data parallelism there is no reduction to overlap: nothing written.
    const dp1 = makePlan(gpt, c2x8, 32, 32, [stage([0, 23], { mesh: { nodes: 1, gpusPerNode: 2 }, dp: 1, tp: 2 })]);
    expect(args(dp1).filter((w) => OVERLAP_FLAGS.includes(w))).toEqual([]);
  });

  it('imports a setup without --overlap-grad-reduce (Megatron-LM\'s default) or with --DDP-impl local as the reduction after the backward', () => {
    const off = args(sp, { gradReduceOverlap: false });
    expect(importMegatron(off, { cluster: c2x8 }).training).toEqual({ gradReduceOverlap: false, gradAccumDtype: 'fp32' });
    expect(importMegatron([...off, '--DDP-impl', 'local'], { cluster: c2x8 }).training).toEqual({ gradReduceOverlap: false, gradAccumDtype: 'fp32' });
    // The legacy PyTorch DDP reduces its buckets during the backward.
    const torchDdp = importMegatron([...off, '--DDP-impl', 'torch'], { cluster: c2x8 });
    expect(torchDdp.problems).toEqual([]);
    expect(torchDdp.training).toEqual({ gradAccumDtype: 'fp32' });
  });

  it('writes --tp-comm-overlap and --overlap-param-gather with --overlap-grad-reduce, and imports them back', () => {
    const words = args(sp, { tpCommOverlap: true, paramGatherOverlap: true });
    expect(words.filter((w) => OVERLAP_FLAGS.includes(w))).toEqual(['--overlap-grad-reduce', '--overlap-param-gather', '--tp-comm-overlap']);
    const back = importMegatron(words, { cluster: c2x8 });
    expect(back.problems).toEqual([]);
    expect(back.plan).toEqual(sp);
    expect(back.training).toEqual({ tpCommOverlap: true, paramGatherOverlap: true, gradAccumDtype: 'fp32' });
    const one = importMegatron(args(sp, { paramGatherOverlap: true }), { cluster: c2x8 });
    expect(one.training).toEqual({ paramGatherOverlap: true, gradAccumDtype: 'fp32' });
    // Without them the import says only what a bf16 setup always has: gradients accumulated in fp32.
    expect(importMegatron(args(sp), { cluster: c2x8 }).training).toEqual({ gradAccumDtype: 'fp32' });
  });

  it('leaves out what Megatron-LM would refuse and the analyzer ignores: TP overlap without sp, the gather overlap without ZeRO-1', () => {
    expect(args(noSp, { tpCommOverlap: true, paramGatherOverlap: true }).filter((w) => OVERLAP_FLAGS.includes(w))).toEqual(['--overlap-grad-reduce']);
    const zero0 = makePlan(gpt, c2x8, 32, 2, [stage([0, 23], { mesh: { nodes: 2, gpusPerNode: 8 }, dp: 8, tp: 2, sequenceParallel: true, microBatchSize: 2 })]);
    expect(args(zero0, { tpCommOverlap: true, paramGatherOverlap: true }).filter((w) => OVERLAP_FLAGS.includes(w))).toEqual(['--overlap-grad-reduce', '--tp-comm-overlap']);
  });

  it('refuses on import the combinations Megatron-LM asserts against', () => {
    const base = args(noSp);
    expect(() => importMegatron([...base, '--tp-comm-overlap'], { cluster: c2x8 })).toThrow(ImportError);
    expect(() => importMegatron([...base, '--tp-comm-overlap'], { cluster: c2x8 })).toThrow(/--tp-comm-overlap: needs --sequence-parallel/);
    expect(() => importMegatron([...base, '--overlap-param-gather'], { cluster: c2x8 }))
      .toThrow(/--overlap-param-gather: needs --use-distributed-optimizer \(/);
    expect(() => importMegatron([...args(noSp, { gradReduceOverlap: false }), '--overlap-param-gather'], { cluster: c2x8 }))
      .toThrow(/--overlap-param-gather: needs --use-distributed-optimizer and --overlap-grad-reduce/);
    // --overlap-grad-reduce alone is the analyzer's default: accepted, no overlap option.
    expect(base).toContain('--overlap-grad-reduce');
    const r = importMegatron(base, { cluster: c2x8 });
    expect(r.problems).toEqual([]);
    expect(r.training).toEqual({ gradAccumDtype: 'fp32' });
  });
});
