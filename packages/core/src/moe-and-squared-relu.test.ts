import { describe, expect, it } from 'vitest';
import {
  activeParams, backendCapabilities, backendViolations, engineCapabilities, parseTrainingSpec, planCapabilityViolations, evalDim, expertRankIndices, getModel, layerBlock, layerParams, modelFromHuggingFace, parseModelSpec, parsePlan,
  planIssues, totalParams,
} from './index';

describe('Nemotron-4 (squared ReLU)', () => {
  it('counts the parameters its reports give: 15B = 3.2B embedding + 12.5B other (Parmar et al. 2024, Sec. 2), 340B', () => {
    const m15 = getModel('nemotron-4-15b');
    const embedding = 2 * m15.vocab * m15.hidden; // untied input and output embeddings
    expect(embedding / 1e9).toBeCloseTo(3.15, 2);
    expect((totalParams(m15) - embedding) / 1e9).toBeCloseTo(12.5, 1);
    expect(totalParams(getModel('nemotron-4-340b')) / 1e9).toBeCloseTo(341, 0);
    expect(activeParams(m15)).toBe(totalParams(m15));
  });

  it('has two MLP matrices and an activation op that keeps its input for backward', () => {
    const m = getModel('nemotron-4-15b');
    const block = layerBlock(m);
    const act = block.ops.find((o) => o.kind === 'activation');
    expect(act).toMatchObject({ name: 'mlp.squared_relu', fn: 'squared-relu', inputs: ['u'], saves: ['u'] });
    expect(block.weights.filter((w) => w.name.startsWith('mlp.w')).map((w) => w.name)).toEqual(['mlp.w1', 'mlp.w2']);
  });

  it('maps a Hugging Face nemotron config and refuses another activation by name', () => {
    const cfg = {
      model_type: 'nemotron', hidden_size: 6144, num_attention_heads: 48, num_key_value_heads: 8, num_hidden_layers: 32,
      intermediate_size: 24576, vocab_size: 256000, max_position_embeddings: 4096, hidden_act: 'relu2',
    };
    expect(modelFromHuggingFace(cfg)).toMatchObject({ family: 'nemotron', activation: 'squared-relu', norm: 'layernorm', tiedEmbeddings: false });
    expect(() => modelFromHuggingFace({ ...cfg, hidden_act: 'gelu' })).toThrow(/hidden_act.*relu2/);
  });
});

describe('mixture of experts in the model spec', () => {
  const mixtral = getModel('mixtral-8x7b');

  it('counts Mixtral 8x7B at its published 46.7B parameters, 12.9B active (Jiang et al. 2024, Sec. 2)', () => {
    expect(totalParams(mixtral) / 1e9).toBeCloseTo(46.7, 1);
    expect(activeParams(mixtral) / 1e9).toBeCloseTo(12.9, 1);
  });

  it('declares every expert weight stacked per expert, the router replicated, summing to layerParams', () => {
    const block = layerBlock(mixtral);
    const env = { b: 1, s: 1, h: mixtral.hidden, a: mixtral.heads, k: mixtral.kvHeads, f: mixtral.ffnHidden, V: mixtral.vocab, t: 1, sp: 0, fa: 1 };
    const n = block.weights.reduce((acc, w) => acc + (w.experts ?? 1) * w.shape.reduce<number>((p, d) => p * evalDim(d, env), 1), 0);
    expect(n).toBe(layerParams(mixtral));
    expect(block.weights.find((w) => w.name === 'moe.router')).toMatchObject({ shard: 'none' });
    expect(block.weights.filter((w) => w.experts === 8).map((w) => w.name)).toEqual(['moe.wg', 'moe.wu', 'moe.wd']);
    expect(block.ops.map((o) => o.name)).toEqual(expect.arrayContaining(['moe.router', 'moe.gate', 'moe.dispatch', 'moe.combine', 'moe.sum']));
  });

  it('runs the experts on topK rows per token (balanced routing) and keeps the dispatched rows for backward', () => {
    const block = layerBlock(mixtral);
    const env = { b: 2, s: 16, h: 64, a: 4, k: 2, f: 128, V: 256, t: 2, sp: 1, fa: 1 };
    const fc1 = block.ops.find((o) => o.name === 'moe.fc1');
    expect(fc1?.kind === 'linear' && evalDim(fc1.rows, env)).toBe(2 * 16 * 2);
    expect(fc1?.saves).toEqual(['moe.xe']);
    const dispatch = block.ops.find((o) => o.name === 'moe.dispatch');
    // the rank's b*s/t tokens, two copies each, h wide
    expect(dispatch?.kind === 'allToAll' && evalDim(dispatch.elements, env)).toBe(((2 * 16) / 2) * 2 * 64);
  });

  it('refuses topK above the experts and MoE in a parallel-attention block, naming the fields', () => {
    expect(() => parseModelSpec({ ...mixtral, moe: { experts: 2, topK: 3 } })).toThrow(/moe.topK.*at most moe.experts \(2\)/);
    expect(() => parseModelSpec({ ...getModel('falcon-7b'), moe: { experts: 4, topK: 1 } })).toThrow(/moe.*parallel-attention/);
  });

  it('maps a Hugging Face mixtral config', () => {
    const m = modelFromHuggingFace({
      model_type: 'mixtral', hidden_size: 4096, num_attention_heads: 32, num_key_value_heads: 8, num_hidden_layers: 32,
      intermediate_size: 14336, vocab_size: 32000, max_position_embeddings: 32768, num_local_experts: 8, num_experts_per_tok: 2,
    });
    expect(totalParams(m)).toBe(totalParams(mixtral));
  });
});

describe('expert parallelism in a plan (ep)', () => {
  const mixtral = getModel('mixtral-8x7b');
  const plan = (stage: Record<string, unknown>): Record<string, unknown> => ({
    version: 1, model: 'mixtral-8x7b', seqLen: 4096, globalBatch: 8, gradAccumSteps: 1,
    stages: [{
      layers: [0, 31], mesh: { nodes: 1, gpusPerNode: 8 }, microBatchSize: 1, dp: 8, tp: 1, sequenceParallel: false,
      ckptLayers: 0, zero: 1, offload: { weights: 0, grads: 0, optim: 0, activations: 0 }, ...stage,
    }],
  });

  it('loads a plan without ep as ep 1 and accepts an ep dividing dp * cp and the experts', () => {
    expect(parsePlan(plan({}), { model: mixtral }).stages[0].ep).toBeUndefined();
    expect(parsePlan(plan({ ep: 8 }), { model: mixtral }).stages[0].ep).toBe(8);
    expect(parsePlan(plan({ ep: 4, dp: 4, cp: 2, microBatchSize: 2 }), { model: mixtral }).stages[0].ep).toBe(4);
  });

  it('refuses an ep that does not divide dp * cp or the experts, or ep on a dense model, naming stages[i].ep', () => {
    const dp = planIssues(plan({ ep: 8, dp: 4, tp: 2 }), { model: mixtral });
    expect(dp.find((i) => i.field === 'stages[0].ep')?.message).toMatch(/must divide dp \* cp \(4\)/);
    const experts = planIssues(plan({ ep: 16, dp: 16, mesh: { nodes: 2, gpusPerNode: 8 }, microBatchSize: 1, globalBatch: 16 }), { model: mixtral });
    expect(experts.find((i) => i.field === 'stages[0].ep')?.message).toMatch(/must divide the model's 8 experts/);
    const dense = planIssues({ ...plan({ ep: 2 }), model: 'llama2-7b', stages: [{ ...(plan({ ep: 2 }).stages as object[])[0] as object }] }, { model: getModel('llama2-7b') });
    expect(dense.find((i) => i.field === 'stages[0].ep')?.message).toMatch(/no mixture of experts/);
  });

  it('places expert-parallel groups tp apart inside the data-parallel ranks (Megatron-Core order tp-ep-dp)', () => {
    const p = parsePlan(plan({ dp: 4, tp: 2, ep: 2, microBatchSize: 2 }), { model: mixtral });
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((r) => expertRankIndices(p, r).epIndex)).toEqual([0, 0, 1, 1, 0, 0, 1, 1]);
    expect([0, 2, 4, 6].map((r) => expertRankIndices(p, r).edpIndex)).toEqual([0, 0, 1, 1]);
    expect(expertRankIndices(p, 0)).toMatchObject({ ep: 2, edp: 2 });
  });
});

describe('engines and backends with mixture of experts', () => {
  const mixtral = getModel('mixtral-8x7b');
  const plan = parsePlan({
    version: 1, model: 'mixtral-8x7b', seqLen: 4096, globalBatch: 8, gradAccumSteps: 1,
    stages: [{
      layers: [0, 31], mesh: { nodes: 1, gpusPerNode: 8 }, microBatchSize: 1, dp: 8, tp: 1, ep: 8, sequenceParallel: false,
      ckptLayers: 0, zero: 1, offload: { weights: 0, grads: 0, optim: 0, activations: 0 },
    }],
  }, { model: mixtral });

  it('Megatron-LM and NeMo run expert parallelism; DeepSpeed and torchtitan refuse ep > 1 by name', () => {
    expect(planCapabilityViolations(plan, engineCapabilities('megatron'))).toEqual([]);
    expect(planCapabilityViolations(plan, engineCapabilities('nemo'))).toEqual([]);
    for (const e of ['deepspeed', 'torchtitan'] as const) {
      expect(planCapabilityViolations(plan, engineCapabilities(e))).toContainEqual(expect.objectContaining({ feature: 'expert parallelism', field: 'stages[0].ep' }));
    }
  });

  it('the cpu backend runs a mixture-of-experts model with ep > 1; a backend without them names "mixture of experts" and "expert parallelism"', () => {
    const training = parseTrainingSpec({ globalBatch: 8, seqLen: 4096, paramDtype: 'fp32', computeDtype: 'fp32' });
    const cpu = backendCapabilities('cpu');
    expect(backendViolations(cpu, { model: mixtral, training, plan })).toEqual([]);
    const vs = backendViolations({ ...cpu, plan: { ...cpu.plan, mixtureOfExperts: false, expertParallel: false } }, { model: mixtral, training, plan });
    expect(vs).toContainEqual(expect.objectContaining({ feature: 'mixture of experts', field: 'model.moe' }));
    expect(vs).toContainEqual(expect.objectContaining({ feature: 'expert parallelism', field: 'plan.stages[0].ep' }));
    expect(backendViolations(backendCapabilities('cpu'), { model: getModel('nemotron-4-15b'), training, plan: null })).toEqual([]);
  });
});
