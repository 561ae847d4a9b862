import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cudaProbe } from '@mist/native';
import { runCli } from '../test/run-cli';

describe('mist train', () => {
  it('prints one JSON object per step on stdout and nothing else there', async () => {
    const res = await runCli(['train', '--model', 'gpt-tiny', '--steps', '4', '--global-batch', '4', '--seq', '32', '--json']);
    expect(res.code).toBe(0);
    const lines = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as { step: number; loss: number; tokensPerS: number });
    expect(lines.map((l) => l.step)).toEqual([1, 2, 3, 4]);
    for (const l of lines) {
      expect(l.loss).toBeGreaterThan(0);
      expect(l.tokensPerS).toBeGreaterThan(0);
    }
  });

  it('trains the loss well below ln(vocab) and says so', async () => {
    const res = await runCli(['train', '--steps', '40', '--global-batch', '8', '--seq', '32', '--lr', '0.005']);
    expect(res.code).toBe(0);
    const m = /loss ([\d.]+) -> ([\d.]+) nats \(uniform baseline ln\(256\) = 5\.545/.exec(res.stdout);
    expect(m).not.toBeNull();
    expect(Number(m![2])).toBeLessThan(0.8 * Math.log(256));
    expect(res.stderr).toMatch(/training gpt-tiny 40\/40/);
  });

  it('names a bad --data value and the allowed ones', async () => {
    const res = await runCli(['train', '--data', 'wiki']);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/--data: got "wiki"; allowed: corpus, synthetic/);
  });

  it('--device: names a bad value, refuses a GPU plan run, and on a host without a usable GPU says why', async () => {
    const bad = await runCli(['train', '--device', 'tpu']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--device: got "tpu"; allowed: cpu, cuda/);
    const cpuBf16 = await runCli(['train', '--dtype', 'bf16']);
    expect(cpuBf16.code).toBe(2);
    expect(cpuBf16.stderr).toMatch(/--dtype bf16 needs --device cuda/);
    const plan = await runCli(['train', '--device', 'cuda', '--plan', path.resolve(__dirname, '../../../../examples/plans/gpt-tiny-2-stages.json')]);
    expect(plan.code).toBe(2);
    expect(plan.stderr).toMatch(/--device cuda with --plan: not implemented yet/);
    if (!cudaProbe().available) {
      const res = await runCli(['train', '--device', 'cuda', '--steps', '2']);
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(/the CUDA device is unavailable: /);
    }
  });
});

describe('mist train --plan', () => {
  it('runs a two-stage plan (dp=2 then tp=2) over local worker processes with the losses of one process', async () => {
    const plan = path.resolve(__dirname, '../../../../examples/plans/gpt-tiny-2-stages.json');
    const dist = await runCli(['train', '--plan', plan, '--steps', '3', '--json']);
    expect(dist.code).toBe(0);
    const single = await runCli(['train', '--model', 'gpt-tiny', '--steps', '3', '--global-batch', '16', '--seq', '64', '--json']);
    const losses = (out: string): number[] => out.trim().split('\n').map((l) => (JSON.parse(l) as { loss: number }).loss);
    const d = losses(dist.stdout);
    const s = losses(single.stdout);
    expect(d).toHaveLength(3);
    d.forEach((loss, i) => expect(Math.abs(loss - s[i]) / s[i]).toBeLessThan(1e-4));
  });
});
