// A plan's context parallelism (stage cp) in each engine's launch files: Megatron-LM's
// --context-parallel-size, NeMo's context_parallel_size, torchtitan's context_parallel_degree, each
// read back by the importers; DeepSpeed refuses it naming the feature.
import { describe, expect, it } from 'vitest';
import { getModel, parseClusterShorthand, type Plan } from '@mist/core';
import { exportDeepspeed, exportMegatron, exportNemo, exportTorchtitan, importMegatron, importTorchtitan, InexpressiblePlanError } from './index';
import { input, makePlan, stage } from './test-helpers';

const gpt = getModel('gpt3-1.3b');
const llama = getModel('llama3-8b');
const c1x8 = parseClusterShorthand('1x8-h100-sxm');
const gptPlan = (): Plan => makePlan(gpt, c1x8, 16, 2, [stage([0, 23], { dp: 2, tp: 2, cp: 2, sequenceParallel: true, microBatchSize: 4, zero: 1 })]);
const llamaPlan = (): Plan => makePlan(llama, c1x8, 16, 2, [stage([0, 31], { dp: 2, tp: 2, cp: 2, sequenceParallel: true, microBatchSize: 4, zero: 3 })]);
const file = (files: { path: string; content: string }[], path: string): string => files.find((f) => f.path === path)!.content;

describe('context parallelism in the exports', () => {
  it('Megatron-LM: --context-parallel-size, read back by the import', () => {
    const args = file(exportMegatron(input(gptPlan(), gpt, c1x8)), 'args.txt');
    expect(args).toMatch(/--context-parallel-size 2/);
    const back = importMegatron(args.split(/\s+/).filter(Boolean), { cluster: c1x8 });
    expect(back.plan.stages[0]).toMatchObject({ dp: 2, tp: 2, cp: 2, mesh: { nodes: 1, gpusPerNode: 8 } });
  });

  it('NeMo: strategy.context_parallel_size', () => {
    expect(file(exportNemo(input(gptPlan(), gpt, c1x8)), 'nemo_pretrain.py')).toContain('strategy.context_parallel_size = 2');
  });

  it('torchtitan: parallelism.context_parallel_degree, read back by the import', () => {
    const toml = file(exportTorchtitan(input(llamaPlan(), llama, c1x8)), 'train.toml');
    expect(toml).toMatch(/context_parallel_degree = 2/);
    const back = importTorchtitan(toml, { cluster: c1x8 });
    expect(back.plan.stages[0]).toMatchObject({ dp: 2, tp: 2, cp: 2, zero: 3 });
  });

  it('DeepSpeed refuses it, naming the feature', () => {
    const plan = makePlan(gpt, c1x8, 16, 2, [stage([0, 23], { dp: 4, cp: 2, microBatchSize: 2, zero: 1 })]);
    expect(() => exportDeepspeed(input(plan, gpt, c1x8))).toThrow(InexpressiblePlanError);
    expect(() => exportDeepspeed(input(plan, gpt, c1x8))).toThrow(/context parallelism/);
  });
});
