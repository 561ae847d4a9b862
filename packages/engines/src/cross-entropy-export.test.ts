// The loss's reading of the logits (TrainingSpec.crossEntropy) at the engine seam: Megatron-LM's
// --fp16-lm-cross-entropy is 'compute-dtype', written by the export with --fp16 and read back by the
// import; an engine that cannot run the asked loss refuses the export, naming training.crossEntropy.
import { describe, expect, it } from 'vitest';
import { getModel, parseClusterShorthand } from '@mist/core';
import { exportPlan, ImportError, importMegatron, InexpressiblePlanError } from './index';
import { input, makePlan, stage } from './test-helpers';

const gpt = getModel('gpt3-1.3b');
const c2x8 = parseClusterShorthand('2x8-a100-80gb');
const plan = makePlan(gpt, c2x8, 32, 2, [stage([0, 23], { mesh: { nodes: 2, gpusPerNode: 8 }, dp: 16, zero: 1 })]);

const words = (over: Partial<ReturnType<typeof input>>): string[] =>
  exportPlan('megatron', { ...input(plan, gpt, c2x8), ...over }).find((f) => f.path === 'args.txt')!.content.split(/\s+/).filter(Boolean);

describe('crossEntropy at the engine seam', () => {
  it('Megatron-LM: compute-dtype is --fp16-lm-cross-entropy with --fp16, and imports back', () => {
    expect(words({ dtype: 'fp16' })).not.toContain('--fp16-lm-cross-entropy');
    expect(words({ dtype: 'fp16', crossEntropy: 'fused' })).toEqual(words({ dtype: 'fp16' }));
    const w = words({ dtype: 'fp16', crossEntropy: 'compute-dtype' });
    expect(w).toContain('--fp16-lm-cross-entropy');
    const back = importMegatron(w, { cluster: c2x8 });
    expect(back.problems).toEqual([]);
    expect(back.plan).toEqual(plan);
    expect(back.training).toEqual({ crossEntropy: 'compute-dtype' });
    expect(importMegatron(words({ dtype: 'fp16' }), { cluster: c2x8 }).training).toBeUndefined();
  });

  it('refuses what the engine would not run, by field', () => {
    expect(() => words({ dtype: 'bf16', crossEntropy: 'compute-dtype' })).toThrow(InexpressiblePlanError);
    expect(() => words({ dtype: 'bf16', crossEntropy: 'compute-dtype' })).toThrow(/training\.crossEntropy.*--fp16-lm-cross-entropy with --fp16 only/s);
    expect(() => words({ crossEntropy: 'fp32-logits' })).toThrow(/training\.crossEntropy/);
    const bf16 = words({ dtype: 'bf16' }).filter((x) => x !== '--bf16');
    expect(() => importMegatron([...bf16, '--bf16', '--fp16-lm-cross-entropy'], { cluster: c2x8 })).toThrow(ImportError);
  });
});
