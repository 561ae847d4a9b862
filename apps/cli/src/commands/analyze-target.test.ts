// `mist analyze --target ENGINE|BACKEND`: the plan costed with the training facts the engine fixes,
// as `mist tune --target` costs them (torchtitan: the loss over fp32 logits, eager norms, RoPE and
// SwiGLU, gathered sequence-parallel inputs); a flag the engine contradicts is named.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../test/run-cli';

describe('mist analyze --target', () => {
  it('torchtitan: its loss and eager kernels raise the memory and time; a contradicting --cross-entropy is refused', async () => {
    const plan = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mist-target-')), 'plan.json');
    fs.writeFileSync(plan, JSON.stringify({ version: 1, model: 'llama3.1-8b', cluster: '1x8-h100-sxm', seqLen: 8192, globalBatch: 16, gradAccumSteps: 1,
      stages: [{ layers: [0, 31], mesh: { nodes: 1, gpusPerNode: 8 }, microBatchSize: 2, dp: 8, tp: 1, sequenceParallel: false, ckptLayers: 32, zero: 3,
        offload: { weights: 0, grads: 0, optim: 0, activations: 0 } }] }));
    const plain = JSON.parse((await runCli(['analyze', plan, '--json'])).stdout);
    const titan = JSON.parse((await runCli(['analyze', plan, '--target', 'torchtitan', '--json'])).stdout);
    expect(titan.target).toBe('torchtitan');
    expect(titan.crossEntropy).toBe('fp32-logits');
    expect(titan.stages[0].peakMemoryBytes).toBeGreaterThan(plain.stages[0].peakMemoryBytes);
    expect(titan.iterationTimeS).toBeGreaterThan(plain.iterationTimeS);
    expect((await runCli(['analyze', plan, '--target', 'torchtitan'])).stdout.split('\n')[0]).toMatch(/loss over fp32 logits, element-wise ops as separate eager PyTorch kernels/);
    const bad = await runCli(['analyze', plan, '--target', 'torchtitan', '--cross-entropy', 'fused']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/crossEntropy: got "fused"; torchtitan's loss reads the logits as fp32-logits/);
    const unknown = await runCli(['analyze', plan, '--target', 'alpa']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/--target: got "alpa"/);
    // mist import --from torchtitan says how to cost what the plan file does not record.
    const dir = path.dirname(plan);
    expect((await runCli(['export', '--plan', plan, '--to', 'torchtitan', '--out', path.join(dir, 't')])).code).toBe(0);
    const im = await runCli(['import', '--from', 'torchtitan', '--cluster', '1x8-h100-sxm', '--model', 'llama3.1-8b', '--out', path.join(dir, 'back.json'),
      path.join(dir, 't', 'train.toml')]);
    expect(im.code).toBe(0);
    expect(im.stdout).toMatch(/mist analyze PLAN --target torchtitan/);
  });
});
