// The data-parallel gradient reduction as each engine's export runs it (TrainingSpec.gradReduceOverlap):
// beside the last backward by default, after it when the prediction said so, refused where the engine
// cannot run what was predicted.
import { describe, expect, it } from 'vitest';
import { getModel, parseClusterShorthand } from '@mist/core';
import { deepspeedConfig, exportPlan, importDeepspeed, InexpressiblePlanError } from './index';
import { input, makePlan, stage } from './test-helpers';

const gpt = getModel('gpt3-1.3b');
const c1x8 = parseClusterShorthand('1x8-a100-80gb');
const plan = (zero: 0 | 1 | 2 | 3) => makePlan(gpt, c1x8, 32, 2, [stage([0, 23], { dp: 8, zero, microBatchSize: 2 })]);
const off = { gradReduceOverlap: false } as const;
const llama = getModel('llama3-8b');
const llamaPlan = makePlan(llama, c1x8, 32, 2, [stage([0, llama.layers - 1], { dp: 8, zero: 3, microBatchSize: 2 })]);

function nemoScript(overlaps?: { gradReduceOverlap?: boolean }): string {
  return exportPlan('nemo', { ...input(plan(1), gpt, c1x8), overlaps }).find((f) => f.path === 'nemo_pretrain.py')!.content;
}

describe('the gradient reduction in the exports', () => {
  it('NeMo keeps its recipes\' overlapped reduction by default and turns it off (with the gather overlap it needs) when predicted after the backward', () => {
    expect(nemoScript()).not.toContain('overlap_grad_reduce');
    expect(nemoScript({ gradReduceOverlap: true })).toBe(nemoScript());
    const lines = nemoScript(off);
    expect(lines).toContain('recipe.trainer.strategy.ddp.overlap_grad_reduce = False');
    expect(lines).toContain('recipe.trainer.strategy.ddp.overlap_param_gather = False');
  });

  it('DeepSpeed writes overlap_comm for ZeRO-1 as predicted and for ZeRO-2 always; ZeRO-0 and ZeRO-3 keep its defaults', () => {
    const zeroSection = (z: 0 | 1 | 2 | 3, o?: { gradReduceOverlap?: boolean }) =>
      deepspeedConfig({ ...input(plan(z), gpt, c1x8), overlaps: o }).zero_optimization as Record<string, unknown>;
    expect(zeroSection(1).overlap_comm).toBe(true);
    expect(zeroSection(1, off).overlap_comm).toBe(false);
    // ZeRO-2 reduces every micro-batch inside its backward phase, as the analyzer costs it either way.
    expect(zeroSection(2, off).overlap_comm).toBe(true);
    expect('overlap_comm' in zeroSection(0)).toBe(false);
    expect('overlap_comm' in zeroSection(3)).toBe(false);
  });

  it('DeepSpeed\'s import reads ZeRO-0, and ZeRO-1 without overlap_comm (its default), as the reduction after the backward; its exports read back', () => {
    const ctx = { cluster: c1x8, model: gpt, modelInCatalog: true, seqLen: 2048 };
    const cfg = (zero: number, extra: Record<string, unknown> = {}) =>
      JSON.stringify({ train_batch_size: 32, train_micro_batch_size_per_gpu: 2, zero_optimization: { stage: zero, ...extra } });
    expect(importDeepspeed(cfg(0), [], ctx).training).toEqual({ gradReduceOverlap: false });
    expect(importDeepspeed(cfg(1), [], ctx).training).toEqual({ gradReduceOverlap: false });
    expect(importDeepspeed(cfg(1, { overlap_comm: true }), [], ctx).training).toBeUndefined();
    expect(importDeepspeed(cfg(2), [], ctx).training).toBeUndefined();
    // One GPU: nothing to reduce.
    expect(importDeepspeed(cfg(0), ['--num_gpus', '1'], { ...ctx, gpus: 1 }).training).toBeUndefined();
    for (const [zero, o] of [[1, undefined], [1, off], [2, off]] as const) {
      const text = JSON.stringify(deepspeedConfig({ ...input(plan(zero), gpt, c1x8), overlaps: o }));
      const back = importDeepspeed(text, [], ctx);
      expect(back.problems).toEqual([]);
      expect(back.training?.gradReduceOverlap ?? true).toBe(zero === 2 || o === undefined);
    }
  });

  it('torchtitan refuses a reduction after the backward; Megatron-LM refuses it beside --overlap-param-gather', () => {
    const refusal = (f: () => unknown): InexpressiblePlanError => {
      try {
        f();
      } catch (e) {
        if (e instanceof InexpressiblePlanError) return e;
        throw e;
      }
      throw new Error('expected a refusal');
    };
    const titan = refusal(() => exportPlan('torchtitan', { ...input(llamaPlan, llama, c1x8), overlaps: off }));
    expect(titan.violations).toEqual([expect.objectContaining({ field: 'training.gradReduceOverlap' })]);
    expect(titan.message).toMatch(/torchtitan's FSDP and DDP reduce gradients during the backward \(allowed: true\)/);
    const mega = refusal(() => exportPlan('megatron', { ...input(plan(1), gpt, c1x8), overlaps: { ...off, paramGatherOverlap: true } }));
    expect(mega.message).toMatch(/Megatron-LM asserts --overlap-grad-reduce with --overlap-param-gather/);
    // Each alone is expressible.
    expect(() => exportPlan('megatron', { ...input(plan(1), gpt, c1x8), overlaps: off })).not.toThrow();
    expect(() => exportPlan('torchtitan', input(llamaPlan, llama, c1x8))).not.toThrow();
  });
});
