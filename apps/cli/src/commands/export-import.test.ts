import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../test/run-cli';
import { scratchDir } from '../test/scratch';

const small = path.resolve(__dirname, '../../../../examples/plans/gpt3-1.3b-1x2-l4.json');
const tmp = (): string => scratchDir('export');

function perStagePlan(dir: string): string {
  const s = (layers: number[], over: Record<string, unknown>) => ({
    layers, mesh: { nodes: 1, gpusPerNode: 4 }, microBatchSize: 2, dp: 4, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 1,
    offload: { weights: 0, grads: 0, optim: 0, activations: 0 }, ...over,
  });
  const plan = { version: 1, model: 'gpt3-1.3b', cluster: '1x8-a100-80gb', seqLen: 2048, globalBatch: 32, gradAccumSteps: 4,
    stages: [s([0, 9], { offload: { weights: 0, grads: 0, optim: 0.3, activations: 0 } }), s([10, 23], { microBatchSize: 4, dp: 2, tp: 2, sequenceParallel: true, zero: 0 })] };
  const file = path.join(dir, 'plan.json');
  fs.writeFileSync(file, JSON.stringify(plan));
  return file;
}

describe('mist export / import', () => {
  it('exports to Megatron-LM and imports the arguments back to the same plan', async () => {
    const dir = tmp();
    const ex = await runCli(['export', '--plan', small, '--to', 'megatron', '--out', path.join(dir, 'm')]);
    expect(ex.code).toBe(0);
    const args = fs.readFileSync(path.join(dir, 'm', 'args.txt'), 'utf8').split(/\s+/).filter(Boolean);
    const out = path.join(dir, 'imported.json');
    const im = await runCli(['import', '--from', 'megatron', '--cluster', '1x2-l4', '--out', out, '--', ...args]);
    expect(im.code).toBe(0);
    const { cluster: _c, ...back } = JSON.parse(fs.readFileSync(out, 'utf8'));
    const { cluster: _c2, ...orig } = JSON.parse(fs.readFileSync(small, 'utf8'));
    expect(back).toEqual(orig);
  });

  it('refuses an inexpressible plan naming the features (exit 2), and maps it with --nearest', async () => {
    const dir = tmp();
    const plan = perStagePlan(dir);
    const refused = await runCli(['export', '--plan', plan, '--to', 'deepspeed', '--out', path.join(dir, 'ds')]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/per-stage strategies \(stages\[1\]\.tp\)/);
    expect(refused.stderr).toMatch(/tensor parallelism \(stages\[1\]\.tp\)/);
    const near = await runCli(['export', '--plan', plan, '--to', 'deepspeed', '--nearest', '--out', path.join(dir, 'ds'), '--json']);
    expect(near.code).toBe(0);
    const res = JSON.parse(near.stdout);
    expect(res.nearest.original.iterationTimeS).toBeGreaterThan(0);
    expect(res.nearest.nearest.iterationTimeS).toBeGreaterThan(0);
    expect(fs.existsSync(path.join(dir, 'ds', 'ds_config.json'))).toBe(true);
  });

  it('names unknown options on import and exits 2 unless --ignore-unknown', async () => {
    const args = ['--num-layers', '24', '--hidden-size', '2048', '--num-attention-heads', '16', '--seq-length', '2048',
      '--micro-batch-size', '1', '--vocab-size', '50304', '--make-vocab-size-divisible-by', '1', '--warp-drive'];
    const bad = await runCli(['import', '--from', 'megatron', '--cluster', '1x8-a100-80gb', '--', ...args]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--warp-drive: unknown option/);
    const ok = await runCli(['import', '--from', 'megatron', '--cluster', '1x8-a100-80gb', '--ignore-unknown', '--json', '--', ...args]);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout).plan.stages[0].dp).toBe(8);
  });
});
