// The gradients' accumulation dtype on the command line (--grad-accum-dtype): `mist analyze` predicts
// fp32 gradients (Megatron-LM's bf16 default), `mist import --from megatron` reads a bf16 setup as such
// and says how to predict it, `mist export` writes it and warns when the engine's default would not fit.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeGpt13bPlan as planFile } from '../test/plan-file';
import { runCli } from '../test/run-cli';
import { scratchDir } from '../test/scratch';

const tmp = (): string => scratchDir('grad');

describe('--grad-accum-dtype', () => {
  it('mist analyze: fp32 gradients hold 2 more bytes per parameter; an unknown dtype is a usage error', async () => {
    const plan = planFile(tmp());
    const base = JSON.parse((await runCli(['analyze', plan, '--json'])).stdout);
    const fp32 = JSON.parse((await runCli(['analyze', plan, '--grad-accum-dtype', 'fp32', '--json'])).stdout);
    expect(base.gradAccumDtype).toBeUndefined();
    expect(fp32.gradAccumDtype).toBe('fp32');
    expect(fp32.stages[0].memory.grads).toBeCloseTo(2 * base.stages[0].memory.grads, 0);
    expect((await runCli(['analyze', plan, '--grad-accum-dtype', 'fp32'])).stdout).toMatch(/gradients accumulated and reduced in fp32/);
    const bad = await runCli(['analyze', plan, '--grad-accum-dtype', 'bf16']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--grad-accum-dtype: got "bf16"; allowed: param, fp32/);
  });

  it('mist import --from megatron: a bf16 setup accumulates in fp32 unless --grad-reduce-in-bf16', async () => {
    const dir = tmp();
    const ex = await runCli(['export', '--plan', planFile(dir), '--to', 'megatron', '--dtype', 'bf16', '--out', path.join(dir, 'm')]);
    expect(ex.code).toBe(0);
    const args = fs.readFileSync(path.join(dir, 'm', 'args.txt'), 'utf8').split(/\s+/).filter(Boolean);
    const im = await runCli(['import', '--from', 'megatron', '--cluster', '1x8-a100-80gb', '--', ...args]);
    expect(im.code).toBe(0);
    expect(im.stdout).toMatch(/gradients in fp32.*mist analyze PLAN --grad-accum-dtype fp32/s);
    const bf16 = await runCli(['import', '--from', 'megatron', '--cluster', '1x8-a100-80gb', '--', ...args, '--grad-reduce-in-bf16']);
    expect(bf16.code).toBe(0);
    expect(bf16.stdout).not.toMatch(/--grad-accum-dtype/);
  });

  it('mist export --to megatron --dtype bf16 warns when the plan does not fit with Megatron-LM\'s fp32 gradients, and writes --grad-reduce-in-bf16 when asked', async () => {
    const dir = tmp();
    // gpt3-2.7b on 8 L4s, ZeRO-1, every layer checkpointed: 15.8 GiB of 20.3 with bf16 gradients, 20.8 with fp32 ones.
    const plan = path.join(dir, 'tight.json');
    fs.writeFileSync(plan, JSON.stringify({ version: 1, model: 'gpt3-2.7b', cluster: '1x8-l4', seqLen: 2048, globalBatch: 64, gradAccumSteps: 4,
      stages: [{ layers: [0, 31], mesh: { nodes: 1, gpusPerNode: 8 }, microBatchSize: 2, dp: 8, tp: 1, sequenceParallel: false, ckptLayers: 32, zero: 1,
        offload: { weights: 0, grads: 0, optim: 0, activations: 0 } }] }));
    const plain = await runCli(['export', '--plan', plan, '--to', 'megatron', '--dtype', 'bf16', '--out', path.join(dir, 'a')]);
    expect(plain.code).toBe(0);
    expect(plain.stderr).toMatch(/warning: with megatron's default fp32 main gradients .*stage 0 needs .*--grad-accum-dtype param \(--grad-reduce-in-bf16\)/);
    const asked = await runCli(['export', '--plan', plan, '--to', 'megatron', '--dtype', 'bf16', '--grad-accum-dtype', 'param', '--out', path.join(dir, 'b')]);
    expect(asked.code).toBe(0);
    expect(asked.stderr).not.toMatch(/warning/);
    expect(fs.readFileSync(path.join(dir, 'b', 'args.txt'), 'utf8')).toMatch(/--grad-reduce-in-bf16/);
  });

  it('mist tune --dtype bf16 --target megatron costs Megatron-LM\'s fp32 main gradients; --grad-accum-dtype param is its --grad-reduce-in-bf16', async () => {
    const base = ['tune', '--model', 'gpt3-1.3b', '--cluster', '1x8-a100-40gb', '--global-batch', '64', '--seq', '2048', '--no-cache', '--no-gains'];
    const fp32 = await runCli([...base, '--dtype', 'bf16', '--target', 'megatron']);
    expect(fp32.code).toBe(0);
    expect(fp32.stdout.split('\n')[0]).toMatch(/gradients accumulated and reduced in fp32/);
    const bf16 = await runCli([...base, '--dtype', 'bf16', '--target', 'megatron', '--grad-accum-dtype', 'param']);
    expect(bf16.stdout.split('\n')[0]).not.toMatch(/fp32/);
    const bad = await runCli([...base, '--dtype', 'half']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--dtype: got "half"; allowed: fp16, bf16/);
  }, 60_000);
});
