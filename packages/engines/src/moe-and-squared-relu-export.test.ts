// Mixture of experts and squared ReLU in the engines' launch files: Megatron-LM's --num-experts,
// --moe-router-topk, --expert-model-parallel-size and --squared-relu (read back by the import into
// the catalog's mixtral-8x7b and nemotron-4-15b), NeMo's MixtralConfig / NemotronConfig fields and
// expert_model_parallel_size; DeepSpeed and torchtitan refuse a mixture of experts by name.
import { describe, expect, it } from 'vitest';
import { getModel, parseClusterShorthand, type Plan } from '@mist/core';
import { exportDeepspeed, exportMegatron, exportNemo, exportTorchtitan, importMegatron, InexpressiblePlanError } from './index';
import { input, makePlan, stage } from './test-helpers';

const mixtral = getModel('mixtral-8x7b');
const nemotron = getModel('nemotron-4-15b');
const c4x8 = parseClusterShorthand('4x8-h100-sxm');
const mixtralPlan = (): Plan => makePlan(mixtral, c4x8, 64, 2, [
  stage([0, 15], { dp: 8, tp: 2, ep: 8, sequenceParallel: true, microBatchSize: 4, zero: 1, mesh: { nodes: 2, gpusPerNode: 8 } }),
  stage([16, 31], { dp: 8, tp: 2, ep: 8, sequenceParallel: true, microBatchSize: 4, zero: 1, mesh: { nodes: 2, gpusPerNode: 8 } }),
]);
const file = (files: { path: string; content: string }[], path: string): string => files.find((f) => f.path === path)!.content;

describe('mixture of experts in the exports', () => {
  it('Megatron-LM: the experts, top-k, the all-to-all dispatcher and --expert-model-parallel-size, read back by the import', () => {
    const args = file(exportMegatron(input(mixtralPlan(), mixtral, c4x8)), 'args.txt');
    expect(args).toMatch(/--num-experts 8/);
    expect(args).toMatch(/--moe-router-topk 2/);
    expect(args).toMatch(/--moe-token-dispatcher-type alltoall/);
    expect(args).toMatch(/--expert-model-parallel-size 8/);
    const back = importMegatron(args.split(/\s+/).filter(Boolean), { cluster: c4x8 });
    expect(back.model.name).toBe('mixtral-8x7b');
    expect(back.plan.stages[0]).toMatchObject({ dp: 8, tp: 2, ep: 8 });
    expect(back.problems).toEqual([]);
  });

  it('the Megatron-LM import reads --num-experts (it used to refuse it) and reports a dispatcher Mist does not model', () => {
    const argv = ['--num-layers', '4', '--hidden-size', '256', '--num-attention-heads', '4', '--ffn-hidden-size', '512', '--seq-length', '512',
      '--vocab-size', '1024', '--make-vocab-size-divisible-by', '1', '--micro-batch-size', '1', '--num-experts', '4', '--expert-model-parallel-size', '2'];
    const r = importMegatron(argv, { cluster: parseClusterShorthand('1x8-h100-sxm') });
    expect(r.model.moe).toEqual({ experts: 4, topK: 2 });
    expect(r.plan.stages[0]).toMatchObject({ dp: 8, ep: 2 });
    expect(r.problems).toContainEqual(expect.objectContaining({ option: '--moe-token-dispatcher-type' }));
    expect(() => importMegatron([...argv.slice(0, -4), '--expert-model-parallel-size', '2'], { cluster: parseClusterShorthand('1x8-h100-sxm') }))
      .toThrow(/--expert-model-parallel-size.*needs --num-experts/);
  });

  it('NeMo: MixtralConfig with num_moe_experts and moe_router_topk, strategy.expert_model_parallel_size', () => {
    const py = file(exportNemo(input(mixtralPlan(), mixtral, c4x8)), 'nemo_pretrain.py');
    expect(py).toContain('llm.MixtralConfig,');
    expect(py).toContain('num_moe_experts=8, moe_router_topk=2, moe_token_dispatcher_type="alltoall"');
    expect(py).toContain('strategy.expert_model_parallel_size = 8');
  });

  it('DeepSpeed and torchtitan refuse a mixture-of-experts model, naming it', () => {
    const plan = makePlan(mixtral, c4x8, 64, 2, [stage([0, 31], { dp: 32, microBatchSize: 1, zero: 1, mesh: { nodes: 4, gpusPerNode: 8 } })]);
    expect(() => exportDeepspeed(input(plan, mixtral, c4x8))).toThrow(InexpressiblePlanError);
    expect(() => exportDeepspeed(input(plan, mixtral, c4x8))).toThrow(/mixture of experts/);
    expect(() => exportTorchtitan(input(plan, mixtral, c4x8))).toThrow(/mixture of experts/);
  });
});

describe('squared ReLU in the exports', () => {
  const plan = (): Plan => makePlan(nemotron, c4x8, 64, 4, [stage([0, 31], { dp: 8, tp: 4, sequenceParallel: true, microBatchSize: 2, zero: 1, mesh: { nodes: 4, gpusPerNode: 8 } })]);

  it('Megatron-LM: --squared-relu, read back as the catalog nemotron-4-15b', () => {
    const args = file(exportMegatron(input(plan(), nemotron, c4x8)), 'args.txt');
    expect(args).toMatch(/--squared-relu/);
    expect(args).not.toMatch(/--swiglu/);
    expect(importMegatron(args.split(/\s+/).filter(Boolean), { cluster: c4x8 }).model.name).toBe('nemotron-4-15b');
  });

  it('NeMo: NemotronConfig with activation_func=squared_relu', () => {
    const py = file(exportNemo(input(plan(), nemotron, c4x8)), 'nemo_pretrain.py');
    expect(py).toContain('from nemo.collections.llm.fn.activation import squared_relu');
    expect(py).toContain('activation_func=squared_relu,');
    expect(py).toContain('llm.NemotronConfig,');
  });
});
