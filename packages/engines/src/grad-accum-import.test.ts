// The gradients' accumulation dtype (TrainingSpec.gradAccumDtype) at the engine seam: Megatron-LM's
// arguments.py accumulates and reduces a bf16 model's gradients in fp32 unless --grad-reduce-in-bf16,
// an fp16 model's only with --accumulate-allreduce-grads-in-fp32; the export writes what differs from
// that default and the import reads it back; NeMo's precision plugin has grad_reduce_in_fp32; the
// other engines refuse fp32, naming training.gradAccumDtype.
import { describe, expect, it } from 'vitest';
import { getModel, parseClusterShorthand } from '@mist/core';
import { exportPlan, importDeepspeed, importMegatron, InexpressiblePlanError } from './index';
import { input, makePlan, stage } from './test-helpers';

const gpt = getModel('gpt3-1.3b');
const c2x8 = parseClusterShorthand('2x8-a100-80gb');
const plan = makePlan(gpt, c2x8, 32, 2, [stage([0, 23], { mesh: { nodes: 2, gpusPerNode: 8 }, dp: 16, zero: 1 })]);
const words = (dtype: 'bf16' | 'fp16', gradAccumDtype?: 'param' | 'fp32'): string[] =>
  exportPlan('megatron', { ...input(plan, gpt, c2x8), dtype, gradAccumDtype }).find((f) => f.path === 'args.txt')!.content.split(/\s+/).filter(Boolean);

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

  it('the export writes what differs from the engine\'s default and imports back; engines without fp32 gradients refuse it', () => {
    expect(words('bf16', 'fp32')).toEqual(words('bf16'));
    const bf16 = words('bf16', 'param');
    expect(bf16).toContain('--grad-reduce-in-bf16');
    expect(importMegatron(bf16, { cluster: c2x8 }).training?.gradAccumDtype).toBeUndefined();
    const fp16 = words('fp16', 'fp32');
    expect(fp16).toContain('--accumulate-allreduce-grads-in-fp32');
    expect(importMegatron(fp16, { cluster: c2x8 }).training?.gradAccumDtype).toBe('fp32');
    const nemo = (dtype: 'bf16' | 'fp16', gradAccumDtype?: 'param' | 'fp32') =>
      exportPlan('nemo', { ...input(plan, gpt, c2x8), dtype, gradAccumDtype }).map((f) => f.content).join('\n');
    expect(nemo('bf16', 'param')).toContain('recipe.trainer.plugins.grad_reduce_in_fp32 = False');
    expect(nemo('bf16', 'fp32')).not.toContain('grad_reduce_in_fp32');
    expect(nemo('fp16', 'fp32')).toContain('recipe.trainer.plugins.grad_reduce_in_fp32 = True');
    expect(() => exportPlan('torchtitan', { ...input(plan, gpt, c2x8), gradAccumDtype: 'fp32' })).toThrow(InexpressiblePlanError);
    expect(() => exportPlan('torchtitan', { ...input(plan, gpt, c2x8), gradAccumDtype: 'fp32' })).toThrow(/training\.gradAccumDtype/);
    // DeepSpeed: data_types.grad_accum_dtype with bf16 and ZeRO-1 (its BF16_Optimizer), refused otherwise; read back.
    const ds = exportPlan('deepspeed', { ...input(plan, gpt, c2x8), dtype: 'bf16', gradAccumDtype: 'fp32' });
    const cfg = ds.find((f) => f.path === 'ds_config.json')!.content;
    expect(JSON.parse(cfg).data_types).toEqual({ grad_accum_dtype: 'fp32' });
    const back = importDeepspeed(cfg, [], { cluster: c2x8, model: gpt, modelInCatalog: true, seqLen: plan.seqLen });
    expect(back.problems).toEqual([]);
    expect(back.training).toEqual({ gradAccumDtype: 'fp32' });
    expect(() => exportPlan('deepspeed', { ...input(plan, gpt, c2x8), dtype: 'fp16', gradAccumDtype: 'fp32' })).toThrow(/training\.gradAccumDtype.*bf16, ZeRO-1/s);
    expect(JSON.parse(exportPlan('deepspeed', { ...input(plan, gpt, c2x8), gradAccumDtype: 'param' })
      .find((f) => f.path === 'ds_config.json')!.content).data_types).toBeUndefined();
  });
});
