// The loss's reading of the logits on the command line (--cross-entropy): `mist analyze` predicts it,
// `mist export --to megatron` writes Megatron-LM's --fp16-lm-cross-entropy for 'compute-dtype' (fp16
// only), `mist import` reads it back and says how to predict it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeGpt13bPlan as planFile } from '../test/plan-file';
import { runCli } from '../test/run-cli';
import { scratchDir } from '../test/scratch';

const tmp = (): string => scratchDir('ce');

describe('--cross-entropy', () => {
  it('mist analyze: the loss on the compute-dtype logits holds less memory, an unknown mode is a usage error', async () => {
    const plan = planFile(tmp());
    const base = JSON.parse((await runCli(['analyze', plan, '--json'])).stdout);
    const ce16 = JSON.parse((await runCli(['analyze', plan, '--cross-entropy', 'compute-dtype', '--json'])).stdout);
    expect(base.crossEntropy).toBeUndefined();
    expect(ce16.crossEntropy).toBe('compute-dtype');
    expect(ce16.stages[0].peakMemoryBytes).toBeLessThan(base.stages[0].peakMemoryBytes);
    expect((await runCli(['analyze', plan, '--cross-entropy', 'compute-dtype'])).stdout).toMatch(/loss on the compute-dtype logits/);
    const bad = await runCli(['analyze', plan, '--cross-entropy', 'half']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--cross-entropy: got "half"; allowed: fused, fp32-logits, compute-dtype/);
  });

  it('mist export --to megatron writes --fp16-lm-cross-entropy with --dtype fp16, refuses it with bf16; mist import reads it back', async () => {
    const dir = tmp();
    const plan = planFile(dir);
    const ex = await runCli(['export', '--plan', plan, '--to', 'megatron', '--dtype', 'fp16', '--cross-entropy', 'compute-dtype', '--out', path.join(dir, 'm')]);
    expect(ex.code).toBe(0);
    const args = fs.readFileSync(path.join(dir, 'm', 'args.txt'), 'utf8').split(/\s+/).filter(Boolean);
    expect(args).toContain('--fp16-lm-cross-entropy');
    const im = await runCli(['import', '--from', 'megatron', '--cluster', '1x8-a100-80gb', '--', ...args]);
    expect(im.code).toBe(0);
    expect(im.stdout).toMatch(/crossEntropy compute-dtype.*mist analyze PLAN --cross-entropy compute-dtype/s);
    const bf16 = await runCli(['export', '--plan', plan, '--to', 'megatron', '--cross-entropy', 'compute-dtype', '--out', path.join(dir, 'b')]);
    expect(bf16.code).not.toBe(0);
    expect(bf16.stderr).toMatch(/training\.crossEntropy/);
  });
});
