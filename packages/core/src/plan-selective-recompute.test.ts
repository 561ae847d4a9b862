import { describe, expect, it } from 'vitest';
import { backendCapabilities } from './backend-capabilities';
import { engineCapabilities, planCapabilityViolations, planRuleViolations } from './engine-capabilities';
import { getModel } from './model-catalog';
import { parsePlan, type Plan, stageOpRecompute, stageSelectiveRecompute } from './plan';

const model = getModel('gpt-tiny');
const plan = (selective: Array<boolean | undefined>, ckpt = 0): unknown => ({
  version: 1, model: model.name, seqLen: 64, globalBatch: 8, gradAccumSteps: 4,
  stages: selective.map((sel, i) => ({
    layers: [2 * i, 2 * i + 1], mesh: { nodes: 1, gpusPerNode: 2 }, microBatchSize: 1, dp: 2, tp: 1, sequenceParallel: false,
    ckptLayers: ckpt, ...(sel === undefined ? {} : { selectiveRecompute: sel }), zero: 0, offload: { weights: 0, grads: 0, optim: 0, activations: 0 },
  })),
});

describe('selectiveRecompute in a plan', () => {
  it('is optional (plans without it load, reading as off) and per stage', () => {
    const p = parsePlan(plan([undefined, true]), { model });
    expect(p.stages.map(stageSelectiveRecompute)).toEqual([false, true]);
    expect(() => parsePlan({ ...(plan([true, true]) as Plan), stages: [{ ...(plan([true, true]) as Plan).stages[0], selectiveRecompute: 'yes' }] }))
      .toThrow(/selectiveRecompute/);
  });

  it('Megatron-LM takes it for the whole model and not beside whole-layer recompute; DeepSpeed not at all; the cpu backend per stage', () => {
    const field = (p: unknown, caps = engineCapabilities('megatron')): string[] => planCapabilityViolations(parsePlan(p, { model }), caps).map((v) => v.field);
    expect(field(plan([true, true]))).toEqual([]);
    expect(field(plan([true, false]))).toEqual(['stages[1].selectiveRecompute']);
    expect(field(plan([true, true], 1))).toEqual(['stages[0].ckptLayers']);
    expect(field(plan([false, true]), engineCapabilities('deepspeed'))).toContain('stages[1].selectiveRecompute');
    expect(planRuleViolations(parsePlan(plan([true, false], 1), { model }), backendCapabilities('cpu').plan, 'cpu')).toEqual([]);
  });
});

describe('opRecompute in a plan', () => {
  it('is optional, and excludes selectiveRecompute on the same stage', () => {
    const doc = plan([undefined, undefined]) as { stages: Array<Record<string, unknown>> };
    expect(parsePlan(doc).stages.map(stageOpRecompute)).toEqual([false, false]);
    doc.stages[1].opRecompute = true;
    expect(parsePlan(doc).stages.map(stageOpRecompute)).toEqual([false, true]);
    doc.stages[1].selectiveRecompute = true;
    expect(() => parsePlan(doc)).toThrow(/stages\[1\]\.opRecompute[\s\S]*excludes selectiveRecompute/);
  });
});

describe('opRecompute and the engines', () => {
  const withOp = (on: boolean[], ckpt = 0): Plan => {
    const doc = plan(on.map(() => undefined), ckpt) as { stages: Array<Record<string, unknown>> };
    on.forEach((x, i) => { if (x) doc.stages[i].opRecompute = true; });
    return parsePlan(doc, { model });
  };
  it('torchtitan runs it for every stage or none and not beside whole-layer recompute; Megatron-LM and the cpu backend not at all', () => {
    const tt = engineCapabilities('torchtitan');
    expect(planRuleViolations(withOp([true, true]), tt, 'torchtitan').filter((v) => v.field.includes('opRecompute'))).toEqual([]);
    expect(planRuleViolations(withOp([true, false]), tt, 'torchtitan').map((v) => v.field)).toContain('stages[1].opRecompute');
    expect(planRuleViolations(withOp([true, true], 1), tt, 'torchtitan').map((v) => v.field)).toContain('stages[0].ckptLayers');
    expect(planCapabilityViolations(withOp([true, true]), engineCapabilities('megatron')).map((v) => v.field)).toContain('stages[0].opRecompute');
    expect(planRuleViolations(withOp([false, true]), backendCapabilities('cpu').plan, 'cpu').map((v) => v.field)).toEqual(['stages[1].opRecompute']);
  });
});

describe('elementwise eager and the backends', () => {
  it('the cpu backend runs fused kernels only; torchtitan runs its model code eagerly', async () => {
    const { backendViolations } = await import('./backend-capabilities');
    const { engineElementwise } = await import('./engine-capabilities');
    const { parseTrainingSpec } = await import('./training');
    const training = parseTrainingSpec({ globalBatch: 8, seqLen: 64, elementwise: 'eager' });
    const p = parsePlan(plan([undefined, undefined]), { model });
    expect(backendViolations(backendCapabilities('cpu'), { model, training, plan: p }).map((v) => v.field)).toContain('training.elementwise');
    expect(engineElementwise('torchtitan')).toBe('eager');
    expect(engineElementwise('megatron')).toBeNull();
  });
});

describe('sequence-parallel input kept for backward', () => {
  it('the backends keep the shard (refusing gathered); torchtitan keeps the gathered input, Megatron-LM and NeMo the shard', async () => {
    const { backendViolations } = await import('./backend-capabilities');
    const { engineSequenceParallelInput } = await import('./engine-capabilities');
    const { parseTrainingSpec } = await import('./training');
    const p = parsePlan(plan([undefined, undefined]), { model });
    const gathered = parseTrainingSpec({ globalBatch: 8, seqLen: 64, sequenceParallelInput: 'gathered' });
    for (const b of ['cpu', 'cuda'] as const) {
      expect(backendViolations(backendCapabilities(b), { model, training: gathered, plan: p }).map((v) => v.field)).toContain('training.sequenceParallelInput');
    }
    expect(parseTrainingSpec({ globalBatch: 8, seqLen: 64 }).sequenceParallelInput).toBe('sharded');
    expect(() => parseTrainingSpec({ globalBatch: 8, seqLen: 64, sequenceParallelInput: 'whole' })).toThrow(/sequenceParallelInput/);
    expect(engineSequenceParallelInput('torchtitan')).toBe('gathered');
    expect(engineSequenceParallelInput('megatron')).toBe('sharded');
    expect(engineSequenceParallelInput('nemo')).toBe('sharded');
    expect(engineSequenceParallelInput('deepspeed')).toBeNull();
  });
});
