import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { backendCapabilities, backendViolations, engineCapabilities, planCapabilityViolations, getModel, loadPlan, parseClusterShorthand, parsePlan, parseTrainingSpec, planIssues, planJsonSchema, rankChunkLayers, readSpecFile } from './index';

const examples = path.resolve(__dirname, '../../../examples/plans');
const model = getModel('gpt3-1.3b');

describe('plan validation', () => {
  it('accepts the documented example plan', () => {
    const plan = loadPlan(path.join(examples, 'gpt3-1.3b-1x2-l4.json'), { model, cluster: parseClusterShorthand('1x2-l4') });
    expect(plan.stages[0]).toMatchObject({ dp: 2, microBatchSize: 8, ckptLayers: 24, zero: 1 });
  });

  it('accepts the Megatron-LM 175B plan on 192x8 A100', () => {
    const plan = loadPlan(path.join(examples, 'gpt3-175b-megatron.json'), {
      model: getModel('gpt3-175b'), cluster: parseClusterShorthand('192x8-a100-80gb'),
    });
    expect(plan.stages).toHaveLength(16);
  });

  it('reports every broken rule, by field, schema and cross-field together', () => {
    const issues = planIssues(readSpecFile(path.join(examples, 'broken.json')), { model });
    const fields = issues.map((i) => i.field);
    expect(fields).toEqual(expect.arrayContaining([
      'stages[0].zero', 'stages[0].offload.weights', 'stages[0].ckptLayers', 'stages[0].dp', 'stages[0].tp',
      'stages[0].microBatchSize', 'stages[1].layers', 'seqLen',
    ]));
    expect(issues.find((i) => i.field === 'stages[0].zero')?.message).toBe('allowed: 0, 1, 2, 3');
  });

  it('checks devices against the cluster', () => {
    const plan = readSpecFile(path.join(examples, 'gpt3-1.3b-1x2-l4.json'));
    expect(() => parsePlan(plan, { model, cluster: parseClusterShorthand('1x1-l4') })).toThrow(
      /mesh.gpusPerNode: got 2; must be at most the cluster's 1 GPUs per node/,
    );
  });

  it('exports a JSON Schema of the plan format', () => {
    const schema = planJsonSchema() as { properties: Record<string, unknown>; required: string[] };
    expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(['version', 'stages', 'globalBatch', 'gradAccumSteps']));
    expect(schema.required).toContain('stages');
  });
});

describe('interleaved plans (virtualStages)', () => {
  const gpt175 = getModel('gpt3-175b');
  const base = readSpecFile(path.join(examples, 'gpt3-175b-megatron.json')) as Record<string, unknown> & { stages: Array<Record<string, unknown>>; gradAccumSteps: number };

  it('loads plans without the field as plain 1F1B, and places each rank\'s chunks as Megatron-LM does', () => {
    expect(parsePlan(base, { model: gpt175 }).virtualStages).toBeUndefined();
    // 96 layers, 16 ranks of 6 layers, 2 chunks of 3: rank 1 holds chunks 1 and 17 of the 32.
    const plan = parsePlan({ ...base, virtualStages: 2 }, { model: gpt175 });
    expect(rankChunkLayers(plan, 1)).toEqual([[3, 5], [51, 53]]);
    expect(rankChunkLayers(plan, 15)).toEqual([[45, 47], [93, 95]]);
    const all = plan.stages.flatMap((_, i) => rankChunkLayers(plan, i)).sort((a, b) => a[0] - b[0]);
    all.forEach((r, j) => expect(r).toEqual([3 * j, 3 * j + 2]));
    expect(rankChunkLayers(parsePlan(base, { model: gpt175 }), 2)).toEqual([base.stages[2].layers]);
  });

  it('names the field and the allowed values when a rule breaks', () => {
    const issues = (extra: Record<string, unknown>): string[] => planIssues({ ...base, ...extra }, { model: gpt175 }).map((i) => `${i.field}: ${i.message}`);
    expect(issues({ virtualStages: 0 }).join('\n')).toMatch(/virtualStages/);
    expect(issues({ virtualStages: 4 }).join('\n')).toMatch(/virtualStages: must divide every stage's 6 layers \(allowed: 1 or a divisor/);
    expect(issues({ virtualStages: 2, gradAccumSteps: 24, globalBatch: 288 })).toEqual([
      'gradAccumSteps: must be a multiple of the 16 pipeline stages when virtualStages is 2 (Megatron-LM\'s interleaved schedule)',
    ]);
    expect(issues({ gradAccumSteps: 24, globalBatch: 288 })).toEqual([]);
    const uneven = structuredClone(base);
    uneven.stages[0].layers = [0, 4];
    uneven.stages[1].layers = [5, 11];
    expect(issues({ ...uneven, virtualStages: 2 }).join('\n')).toMatch(/stages\[0\]\.layers: must hold 6 layers|stages\[1\]\.layers: must hold 5 layers/);
  });

  it('is run by the executor\'s cpu backend, and refused by a backend without it, naming the feature', () => {
    const model = getModel('gpt-tiny');
    const plan = parsePlan({
      version: 1, model: model.name, seqLen: 64, globalBatch: 4, gradAccumSteps: 2, virtualStages: 2,
      stages: [0, 1].map((i) => ({
        layers: [i * (model.layers / 2), (i + 1) * (model.layers / 2) - 1], mesh: { nodes: 1, gpusPerNode: 1 }, microBatchSize: 2, dp: 1, tp: 1,
        sequenceParallel: false, ckptLayers: 0, zero: 0, offload: { weights: 0, grads: 0, optim: 0, activations: 0 },
      })),
    }, { model });
    const training = parseTrainingSpec({ globalBatch: 4, seqLen: 64, paramDtype: 'fp32', computeDtype: 'fp32' });
    const cpu = backendCapabilities('cpu');
    expect(backendViolations(cpu, { model, training, plan })).toEqual([]);
    const v = backendViolations({ ...cpu, plan: { ...cpu.plan, interleaved: false } }, { model, training, plan });
    expect(v.map((x) => [x.field, x.feature])).toEqual([['plan.virtualStages', 'interleaved 1F1B (virtual pipeline stages)']]);
  });
});

describe('context-parallel plans (cp)', () => {
  const tiny = getModel('gpt-tiny');
  const stage = { layers: [0, tiny.layers - 1], mesh: { nodes: 1, gpusPerNode: 4 }, microBatchSize: 2, dp: 1, tp: 2, sequenceParallel: false, ckptLayers: 0, zero: 0, offload: { weights: 0, grads: 0, optim: 0, activations: 0 } };
  const doc = (s: Record<string, unknown>, seqLen = 64): unknown => ({ version: 1, model: 'gpt-tiny', seqLen, globalBatch: 4, gradAccumSteps: 2, stages: [{ ...stage, ...s }] });

  it('loads plans without the field (cp 1) and counts cp in the mesh', () => {
    expect(parsePlan(doc({ dp: 2, microBatchSize: 1 }), { model: tiny }).stages[0].cp).toBeUndefined();
    expect(parsePlan(doc({ cp: 2 }), { model: tiny }).stages[0].cp).toBe(2);
  });

  it('names the field and the rule when dp * tp * cp misses the mesh or seqLen does not split in 2*cp chunks', () => {
    const mesh = planIssues(doc({ cp: 4 }), { model: tiny });
    expect(mesh.find((i) => i.field === 'stages[0].dp')?.message).toContain('dp * tp * cp (1 * 2 * 4)');
    const chunks = planIssues(doc({ cp: 2 }, 62), { model: tiny });
    expect(chunks.map((i) => i.field)).toEqual(['stages[0].cp']);
    expect(chunks[0].message).toContain('2 * cp = 4');
    expect(planIssues(doc({ cp: 0 }), { model: tiny }).map((i) => i.field)).toContain('stages[0].cp');
  });

  it('is run by the cpu backend (ring attention), refused by a backend without it and by DeepSpeed, naming the feature; Megatron-LM, NeMo and torchtitan run it', () => {
    const plan = parsePlan(doc({ cp: 2 }), { model: tiny });
    const training = parseTrainingSpec({ seqLen: 64, globalBatch: 4, paramDtype: 'fp32', computeDtype: 'fp32' });
    const cpu = backendCapabilities('cpu');
    expect(backendViolations(cpu, { model: tiny, training, plan })).toEqual([]);
    const v = backendViolations({ ...cpu, plan: { ...cpu.plan, contextParallel: false } }, { model: tiny, training, plan });
    expect(v.map((x) => [x.field, x.feature])).toEqual([['plan.stages[0].cp', 'context parallelism']]);
    expect(planCapabilityViolations(plan, engineCapabilities('deepspeed')).map((x) => x.field)).toContain('stages[0].cp');
    for (const e of ['megatron', 'nemo', 'torchtitan'] as const) {
      expect(planCapabilityViolations(plan, engineCapabilities(e)).filter((x) => x.feature === 'context parallelism')).toEqual([]);
    }
  });
});
