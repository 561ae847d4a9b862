// `--compile`: torchtitan's torch.compile (fused element-wise kernels, the compiled loss), costed by
// `mist analyze --target torchtitan --compile` and written by `mist export --to torchtitan --compile`.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../test/run-cli';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-compile-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const plan = path.join(dir, 'plan.json');
fs.writeFileSync(plan, JSON.stringify({
  version: 1, model: 'llama3-8b', cluster: '1x8-h100-sxm', seqLen: 4096, globalBatch: 16, gradAccumSteps: 2,
  stages: [{ layers: [0, 31], mesh: { nodes: 1, gpusPerNode: 8 }, microBatchSize: 1, dp: 8, tp: 1, sequenceParallel: false,
    ckptLayers: 32, zero: 3, offload: { weights: 0, grads: 0, optim: 0, activations: 0 } }],
}));

describe('--compile', () => {
  it('mist analyze --target torchtitan --compile: faster than eager, said in the summary; refused for Megatron-LM by name', async () => {
    const time = async (...args: string[]): Promise<number> => {
      const r = await runCli(['analyze', plan, '--target', 'torchtitan', '--json', ...args]);
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as { iterationTimeS: number }).iterationTimeS;
    };
    expect(await time('--compile')).toBeLessThan(await time());
    expect((await runCli(['analyze', plan, '--target', 'torchtitan', '--compile'])).stdout.split('\n')[0]).toMatch(/loss compiled \(torch\.compile\)/);
    const megatron = await runCli(['analyze', plan, '--target', 'megatron', '--compile']);
    expect(megatron.code).toBe(2);
    expect(megatron.stderr).toMatch(/compile: got true; torch\.compile is an option of torchtitan/);
    const clash = await runCli(['analyze', plan, '--compile', '--cross-entropy', 'fused']);
    expect(clash.code).toBe(2);
    expect(clash.stderr).toMatch(/--compile compiles the loss/);
  }, 60_000);

  it('mist export --to torchtitan --compile writes torch.compile on for the model and the loss', async () => {
    const out = path.join(dir, 'titan');
    const r = await runCli(['export', '--plan', plan, '--to', 'torchtitan', '--compile', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readFileSync(path.join(out, 'train.toml'), 'utf8')).toMatch(/enable = true\ncomponents = \["model", "loss"\]/);
  }, 60_000);
});
