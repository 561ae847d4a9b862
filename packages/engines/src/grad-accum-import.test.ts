// The gradients' accumulation dtype (TrainingSpec.gradAccumDtype) read from a Megatron-LM setup:
// arguments.py accumulates and reduces a bf16 model's gradients in fp32 unless --grad-reduce-in-bf16,
// an fp16 model's only with --accumulate-allreduce-grads-in-fp32.
import { describe, expect, it } from 'vitest';
import { getModel, parseClusterShorthand } from '@mist/core';
import { exportPlan, importMegatron } from './index';
import { input, makePlan, stage } from './test-helpers';

const gpt = getModel('gpt3-1.3b');
const c2x8 = parseClusterShorthand('2x8-a100-80gb');
const plan = makePlan(gpt, c2x8, 32, 2, [stage([0, 23], { mesh: { nodes: 2, gpusPerNode: 8 }, dp: 16, zero: 1 })]);
const words = (dtype: 'bf16' | 'fp16'): string[] =>
  exportPlan('megatron', { ...input(plan, gpt, c2x8), dtype }).find((f) => f.path === 'args.txt')!.content.split(/\s+/).filter(Boolean);

describe('gradient accumulation dtype of a Megatron-LM setup', () => {
  it('bf16: fp32 unless --grad-reduce-in-bf16; fp16: the weights\' unless --accumulate-allreduce-grads-in-fp32', () => {
    const bf16 = importMegatron(words('bf16'), { cluster: c2x8 });
    expect(bf16.problems).toEqual([]);
    expect(bf16.training?.gradAccumDtype).toBe('fp32');
    expect(importMegatron([...words('bf16'), '--grad-reduce-in-bf16'], { cluster: c2x8 }).training?.gradAccumDtype).toBeUndefined();
    expect(importMegatron(words('fp16'), { cluster: c2x8 }).training?.gradAccumDtype).toBeUndefined();
    const fp16 = importMegatron([...words('fp16'), '--accumulate-allreduce-grads-in-fp32'], { cluster: c2x8 });
    expect(fp16.problems).toEqual([]);
    expect(fp16.training?.gradAccumDtype).toBe('fp32');
  });
});
