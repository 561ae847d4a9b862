import * as fs from 'node:fs';
import * as path from 'node:path';
import { callUnary, createClient, createServer, isRpcError, type RpcServer, startServer, status, stopServer } from '@mist/rpc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addPlanningServices } from './planning-services';

const TOKEN = 'planning-test-token';
let server: RpcServer;
let address: string;

beforeAll(async () => {
  server = createServer({ token: TOKEN });
  addPlanningServices(server);
  address = `127.0.0.1:${await startServer(server, '127.0.0.1:0')}`;
});
afterAll(async () => {
  await stopServer(server, 1);
});

const examplePlan = fs.readFileSync(path.resolve(__dirname, '../../../../examples/plans/gpt3-1.3b-1x2-l4.json'), 'utf8');

describe('Analyzer.Analyze over gRPC', () => {
  it('estimates a catalog plan with the datasheet profile', async () => {
    const client = createClient('Analyzer', address, { token: TOKEN });
    const res = await callUnary(client, 'analyze', { model: { name: 'gpt3-1.3b' }, cluster: { shorthand: '1x2-l4' }, planJson: examplePlan });
    client.close();
    const estimate = JSON.parse(res.estimateJson) as { iterationTimeS: number; stages: Array<{ fits: boolean }> };
    expect(estimate.iterationTimeS).toBeGreaterThan(0);
    expect(res.predicted?.iterationTime).toBeCloseTo(estimate.iterationTimeS, 9);
    expect(estimate.stages[0].fits).toBe(true);
  });

  it('refuses a broken plan with INVALID_ARGUMENT naming the field', async () => {
    const client = createClient('Analyzer', address, { token: TOKEN });
    const broken = JSON.stringify({ ...JSON.parse(examplePlan), gradAccumSteps: 3 });
    const err = await callUnary(client, 'analyze', { model: { name: 'gpt3-1.3b' }, cluster: { shorthand: '1x2-l4' }, planJson: broken }).catch((e: unknown) => e);
    client.close();
    expect(isRpcError(err, status.INVALID_ARGUMENT)).toBe(true);
    expect((err as Error).message).toMatch(/stages\[0\]\.microBatchSize/);
  });
});

describe('Tuner.Tune over gRPC', () => {
  it('returns a valid plan and both baselines', async () => {
    const client = createClient('Tuner', address, { token: TOKEN });
    const res = await callUnary(client, 'tune', {
      model: { name: 'gpt3-1.3b' }, cluster: { shorthand: '1x2-l4' },
      trainingJson: JSON.stringify({ globalBatch: 32, seqLen: 2048 }),
    }, { deadline: Date.now() + 60_000 });
    client.close();
    const plan = JSON.parse(res.planJson) as { stages: unknown[]; globalBatch: number };
    expect(plan.globalBatch).toBe(32);
    expect(res.predicted!.iterationTime).toBeGreaterThan(0);
    expect(res.baselines.map((b) => b.space)).toEqual(['SEARCH_SPACE_MEGATRON', 'SEARCH_SPACE_DEEPSPEED']);
    for (const b of res.baselines.filter((x) => x.feasible)) expect(b.speedup).toBeGreaterThanOrEqual(1 - 1e-9);
    expect(Number(res.candidates)).toBeGreaterThan(0);
  });

  it('answers FAILED_PRECONDITION with the reason when nothing fits', async () => {
    const client = createClient('Tuner', address, { token: TOKEN });
    const err = await callUnary(client, 'tune', {
      model: { name: 'gpt3-175b' }, cluster: { shorthand: '1x1-l4' },
      trainingJson: JSON.stringify({ globalBatch: 8, seqLen: 2048 }), options: { skipBaselines: true },
    }, { deadline: Date.now() + 60_000 }).catch((e: unknown) => e);
    client.close();
    expect(isRpcError(err, status.FAILED_PRECONDITION)).toBe(true);
    expect((err as Error).message).toMatch(/host memory/);
  });

  it('takes every search knob in knobs_json and refuses a bad one with INVALID_ARGUMENT naming it', async () => {
    const client = createClient('Tuner', address, { token: TOKEN });
    const req = (knobsJson: string) => ({
      model: { name: 'gpt3-1.3b' }, cluster: { shorthand: '1x4-l4' },
      trainingJson: JSON.stringify({ globalBatch: 32, seqLen: 2048 }), options: { skipBaselines: true, knobsJson },
    });
    const res = await callUnary(client, 'tune', req('{"maxStages": 1, "maxTp": 1, "offload": false, "zero": [0, 1]}'), { deadline: Date.now() + 60_000 });
    const plan = JSON.parse(res.planJson) as { stages: Array<{ tp: number; zero: number; offload: Record<string, number> }> };
    expect(plan.stages).toHaveLength(1);
    expect(plan.stages[0].tp).toBe(1);
    expect(plan.stages[0].zero).toBeLessThanOrEqual(1);
    expect(Object.values(plan.stages[0].offload).every((x) => x === 0)).toBe(true);
    const err = await callUnary(client, 'tune', req('{"maxTp": 0}'), { deadline: Date.now() + 60_000 }).catch((e: unknown) => e);
    client.close();
    expect(isRpcError(err, status.INVALID_ARGUMENT)).toBe(true);
    expect((err as Error).message).toMatch(/tune\.knobsJson\.maxTp: got 0; expected a positive integer/);
  });
});
