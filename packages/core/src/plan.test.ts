import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { getModel, loadPlan, parseClusterShorthand, parsePlan, planIssues, planJsonSchema, readSpecFile } from './index';

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
