// Megatron-Core's communication overlaps (the training spec's tpCommOverlap and paramGatherOverlap):
// written by the Megatron-LM export where Megatron-LM accepts them and the analyzer predicts them, and
// read back by the import; the defaults write nothing new.
import { describe, expect, it } from 'vitest';
import { getModel, parseClusterShorthand } from '@mist/core';
import { exportMegatron, ImportError, importMegatron } from './index';
import { input, makePlan, stage } from './test-helpers';

const gpt = getModel('gpt3-1.3b');
const c2x8 = parseClusterShorthand('2x8-a100-80gb');
const OVERLAP_FLAGS = ['--overlap-grad-reduce', '--overlap-param-gather', '--tp-comm-overlap'];

const sp = makePlan(gpt, c2x8, 32, 2, [stage([0, 23], { mesh: { nodes: 2, gpusPerNode: 8 }, dp: 8, tp: 2, sequenceParallel: true, zero: 1, microBatchSize: 2 })]);
const noSp = makePlan(gpt, c2x8, 32, 2, [stage([0, 23], { mesh: { nodes: 2, gpusPerNode: 8 }, dp: 16, zero: 0 })]);

function args(plan: typeof sp, overlaps?: { tpCommOverlap?: boolean; paramGatherOverlap?: boolean }): string[] {
  return exportMegatron({ ...input(plan, gpt, c2x8), overlaps }).find((f) => f.path === 'args.txt')!.content.split(/\s+/).filter(Boolean);
}

describe('Megatron-LM export of the communication overlaps', () => {
  it('writes none without them, or with them off (the golden files stay as they are)', () => {
    for (const o of [undefined, {}, { tpCommOverlap: false, paramGatherOverlap: false }]) {
      expect(args(sp, o).filter((w) => OVERLAP_FLAGS.includes(w))).toEqual([]);
      expect(args(sp, o)).toEqual(args(sp));
    }
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
    expect(args(noSp, { tpCommOverlap: true, paramGatherOverlap: true }).filter((w) => OVERLAP_FLAGS.includes(w))).toEqual([]);
    const zero0 = makePlan(gpt, c2x8, 32, 2, [stage([0, 23], { mesh: { nodes: 2, gpusPerNode: 8 }, dp: 8, tp: 2, sequenceParallel: true, microBatchSize: 2 })]);
    expect(args(zero0, { tpCommOverlap: true, paramGatherOverlap: true }).filter((w) => OVERLAP_FLAGS.includes(w))).toEqual(['--overlap-grad-reduce', '--tp-comm-overlap']);
  });

  it('refuses on import the combinations Megatron-LM asserts against', () => {
    const base = args(noSp);
    expect(() => importMegatron([...base, '--tp-comm-overlap'], { cluster: c2x8 })).toThrow(ImportError);
    expect(() => importMegatron([...base, '--tp-comm-overlap'], { cluster: c2x8 })).toThrow(/--tp-comm-overlap: needs --sequence-parallel/);
    expect(() => importMegatron([...base, '--overlap-param-gather'], { cluster: c2x8 }))
      .toThrow(/--overlap-param-gather: needs --use-distributed-optimizer and --overlap-grad-reduce/);
    // --overlap-grad-reduce alone is what the analyzer assumes: accepted, no overlap option.
    const r = importMegatron([...base, '--overlap-grad-reduce'], { cluster: c2x8 });
    expect(r.problems).toEqual([]);
    expect(r.training).toEqual({ gradAccumDtype: 'fp32' });
  });
});
