// A plan's fp8 recipe (Plan.fp8) in each engine's launch files: Megatron-LM and NeMo write both
// recipes, torchtitan current scaling (torchao's tensorwise), DeepSpeed refuses naming the feature.
import { describe, expect, it } from 'vitest';
import { getModel, parseClusterShorthand, type Plan } from '@mist/core';
import { exportDeepspeed, exportMegatron, exportNemo, exportPlan, exportTorchtitan, importMegatron, importTorchtitan, InexpressiblePlanError, nearestExpressiblePlan } from './index';
import { input, makePlan, stage } from './test-helpers';

const gpt = getModel('gpt3-1.3b');
const llama = getModel('llama3-8b');
const c1x8 = parseClusterShorthand('1x8-h100-sxm');
const withFp8 = (plan: Plan, fp8: Plan['fp8']): Plan => ({ ...plan, fp8 });
const gptPlan = (): Plan => makePlan(gpt, c1x8, 16, 2, [stage([0, 23], { dp: 8, microBatchSize: 1, zero: 1 })]);
const llamaPlan = (): Plan => makePlan(llama, c1x8, 16, 2, [stage([0, 31], { dp: 8, microBatchSize: 1, zero: 2 })]);
const file = (files: { path: string; content: string }[], path: string): string => files.find((f) => f.path === path)!.content;

describe('fp8 linear layers in the exports', () => {
  it('Megatron-LM: --fp8-format hybrid with the recipe (TE defaults for delayed scaling), and the import reads it back', () => {
    const delayed = file(exportMegatron(input(withFp8(gptPlan(), 'delayed'), gpt, c1x8)), 'args.txt');
    expect(delayed).toMatch(/--fp8-format hybrid\s+--fp8-recipe delayed\s+--fp8-amax-history-len 1024\s+--fp8-amax-compute-algo max\s+--transformer-impl transformer_engine/);
    const current = file(exportMegatron(input(withFp8(gptPlan(), 'current'), gpt, c1x8)), 'args.txt');
    expect(current).toMatch(/--fp8-format hybrid\s+--fp8-recipe tensorwise/);
    expect(file(exportMegatron(input(gptPlan(), gpt, c1x8)), 'args.txt')).not.toMatch(/fp8/);
    for (const fp8 of ['delayed', 'current'] as const) {
      const args = file(exportMegatron(input(withFp8(gptPlan(), fp8), gpt, c1x8)), 'args.txt').split(/\s+/).filter(Boolean);
      const back = importMegatron(args, { cluster: c1x8 });
      expect(back.problems).toEqual([]);
      expect(back.plan.fp8).toBe(fp8);
    }
  });

  it('NeMo 2: the mixed-precision plugin\'s fp8 fields', () => {
    const py = file(exportNemo(input(withFp8(gptPlan(), 'delayed'), gpt, c1x8)), 'nemo_pretrain.py');
    expect(py).toContain('recipe.trainer.plugins.fp8 = "hybrid"');
    expect(py).toContain('recipe.trainer.plugins.fp8_recipe = "delayed"');
    expect(py).toContain('recipe.trainer.plugins.fp8_amax_history_len = 1024');
    expect(py).toContain('recipe.trainer.plugins.fp8_param_gather = False');
    expect(file(exportNemo(input(withFp8(gptPlan(), 'current'), gpt, c1x8)), 'nemo_pretrain.py')).toContain('fp8_recipe = "tensorwise"');
  });

  it('torchtitan: current scaling as the float8 converter with the tensorwise recipe; delayed is refused by name', () => {
    const toml = file(exportTorchtitan(input(withFp8(llamaPlan(), 'current'), llama, c1x8)), 'train.toml');
    expect(toml).toContain('quantize.linear.float8');
    expect(toml).toMatch(/recipe_name = "tensorwise"/);
    expect(() => exportTorchtitan(input(withFp8(llamaPlan(), 'delayed'), llama, c1x8))).toThrow(/fp8 linear layers \(delayed scaling\)/);
  });

  it('DeepSpeed refuses fp8 linear layers by name; the nearest plan drops them', () => {
    const plan = withFp8(gptPlan(), 'delayed');
    expect(() => exportDeepspeed(input(plan, gpt, c1x8))).toThrow(InexpressiblePlanError);
    expect(() => exportDeepspeed(input(plan, gpt, c1x8))).toThrow(/fp8 linear layers \(delayed scaling\) \(fp8\)/);
    const near = nearestExpressiblePlan('deepspeed', plan, gpt, c1x8);
    expect(near.plan.fp8).toBeUndefined();
    expect(near.changes).toContain('fp8 delayed -> none (deepspeed runs no fp8 linear layers)');
    expect(nearestExpressiblePlan('torchtitan', withFp8(llamaPlan(), 'delayed'), llama, c1x8).plan.fp8).toBe('current');
  });
});

describe('fp8 weights kept and gathered as fp8 (TrainingSpec.fp8ParamGather)', () => {
  const gathered = (plan: Plan, model = gpt) => ({ ...input(plan, model, c1x8), fp8ParamGather: true });

  it('Megatron-LM writes --fp8-param-gather with the distributed optimizer and reads it back; without it the import names the flag', () => {
    const args = file(exportPlan('megatron', gathered(withFp8(gptPlan(), 'current'))), 'args.txt');
    expect(args).toMatch(/--fp8-param-gather/);
    const argv = args.split(/\s+/).filter(Boolean);
    const back = importMegatron(argv, { cluster: c1x8 });
    expect(back.problems).toEqual([]);
    expect(back.training?.fp8ParamGather).toBe(true);
    expect(() => importMegatron(argv.filter((a) => a !== '--use-distributed-optimizer'), { cluster: c1x8 })).toThrow(/--fp8-param-gather.*--use-distributed-optimizer/);
    expect(file(exportPlan('megatron', input(withFp8(gptPlan(), 'current'), gpt, c1x8)), 'args.txt')).not.toMatch(/--fp8-param-gather/);
  });

  it('NeMo writes fp8_param_gather = True', () => {
    expect(file(exportPlan('nemo', gathered(withFp8(gptPlan(), 'delayed'))), 'nemo_pretrain.py')).toContain('recipe.trainer.plugins.fp8_param_gather = True');
  });

  it('torchtitan writes torchao\'s FSDP float8 all-gather without a recipe name and reads the plan and the gather back', () => {
    const toml = file(exportPlan('torchtitan', gathered(withFp8(llamaPlan(), 'current'), llama)), 'train.toml');
    expect(toml).toMatch(/enable_fsdp_float8_all_gather = true/);
    expect(toml).not.toMatch(/recipe_name/);
    const back = importTorchtitan(toml, { cluster: c1x8 });
    expect(back.problems).toEqual([]);
    expect(back.plan.fp8).toBe('current');
    expect(back.training).toEqual({ fp8ParamGather: true });
    // Without the gather: the tensorwise recipe, the output layer filtered, no training facts.
    const plain = importTorchtitan(file(exportTorchtitan(input(withFp8(llamaPlan(), 'current'), llama, c1x8)), 'train.toml'), { cluster: c1x8 });
    expect(plain.problems).toEqual([]);
    expect(plain.plan.fp8).toBe('current');
    expect(plain.training).toBeUndefined();
  });

  it('refuses it by name where the engine cannot run it: no fp8, no distributed optimizer, no FSDP sharding, DeepSpeed', () => {
    const refused = (engine: 'megatron' | 'torchtitan' | 'deepspeed', plan: Plan, model = gpt): unknown => () => exportPlan(engine, gathered(plan, model));
    expect(refused('megatron', gptPlan())).toThrow(/training\.fp8ParamGather.*no fp8 linear layers/);
    const zero0 = makePlan(gpt, c1x8, 16, 2, [stage([0, 23], { dp: 8, microBatchSize: 1, zero: 0 })]);
    expect(refused('megatron', withFp8(zero0, 'current'))).toThrow(/distributed optimizer/);
    const llamaZero1 = makePlan(llama, c1x8, 16, 2, [stage([0, 31], { dp: 8, microBatchSize: 1, zero: 1 })]);
    expect(refused('torchtitan', withFp8(llamaZero1, 'current'), llama)).toThrow(/FSDP shards/);
    expect(refused('deepspeed', withFp8(gptPlan(), 'current'))).toThrow(InexpressiblePlanError);
  });
});
