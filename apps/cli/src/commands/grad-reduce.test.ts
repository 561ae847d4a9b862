// The data-parallel gradient reduction after the backward (--no-overlap-grad-reduce, TrainingSpec
// gradReduceOverlap false): `mist analyze` predicts it exposed, `mist export --to megatron` writes
// --overlap-grad-reduce unless told otherwise, `mist import --from megatron` reads a setup without it
// (Megatron-LM's default) and says how to predict it, and the DeepSpeed export warns for ZeRO-0.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeGpt13bPlan as planFile } from '../test/plan-file';
import { runCli } from '../test/run-cli';
import { scratchDir } from '../test/scratch';

const tmp = (): string => scratchDir('reduce');

describe('--no-overlap-grad-reduce', () => {
  it('mist analyze: the ZeRO-1 reduce-scatter after the backward lengthens the end of the step, and is said', async () => {
    // Two nodes: the reduction crosses the network and takes longer than 10% of the last backward.
    const plan = planFile(tmp(), { cluster: '2x8-a100-80gb', nodes: 2, tp: 2 });
    const base = JSON.parse((await runCli(['analyze', plan, '--json'])).stdout);
    const after = JSON.parse((await runCli(['analyze', plan, '--no-overlap-grad-reduce', '--json'])).stdout);
    expect(base.gradReduceOverlap).toBeUndefined();
    expect(after.gradReduceOverlap).toBe(false);
    expect(after.breakdown.lastS).toBeGreaterThan(base.breakdown.lastS);
    expect(after.breakdown.steadyS).toBe(base.breakdown.steadyS);
    expect((await runCli(['analyze', plan, '--no-overlap-grad-reduce'])).stdout).toMatch(/gradient reduction after the backward \(not overlapped\)/);
  });

  it('mist fit says it costs the reduction after the backward', async () => {
    const r = await runCli(['fit', '--model', 'gpt3-1.3b', '--gpu', 'l4', '--max-gpus', '8', '--no-overlap-grad-reduce']);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/gradient reduction after the backward \(not overlapped\)/);
  });

  it('mist export --to megatron writes --overlap-grad-reduce by default and not with the flag; mist import reads its absence', async () => {
    const dir = tmp();
    const plan = planFile(dir);
    expect((await runCli(['export', '--plan', plan, '--to', 'megatron', '--out', path.join(dir, 'on')])).code).toBe(0);
    expect((await runCli(['export', '--plan', plan, '--to', 'megatron', '--no-overlap-grad-reduce', '--out', path.join(dir, 'off')])).code).toBe(0);
    const words = (d: string): string[] => fs.readFileSync(path.join(dir, d, 'args.txt'), 'utf8').split(/\s+/).filter(Boolean);
    expect(words('on')).toContain('--overlap-grad-reduce');
    expect(words('off')).not.toContain('--overlap-grad-reduce');
    const on = await runCli(['import', '--from', 'megatron', '--cluster', '1x8-a100-80gb', '--', ...words('on')]);
    expect(on.code).toBe(0);
    expect(on.stdout).not.toMatch(/--no-overlap-grad-reduce/);
    const off = await runCli(['import', '--from', 'megatron', '--cluster', '1x8-a100-80gb', '--json', '--', ...words('off')]);
    expect(JSON.parse(off.stdout).training.gradReduceOverlap).toBe(false);
    const text = await runCli(['import', '--from', 'megatron', '--cluster', '1x8-a100-80gb', '--', ...words('off')]);
    expect(text.stdout).toMatch(/after the backward .*mist analyze PLAN --no-overlap-grad-reduce/s);
  });

  it('mist export --to deepspeed warns that ZeRO-0 reduces after the backward, with the iteration time as it runs', async () => {
    const dir = tmp();
    const plan = path.join(dir, 'zero0.json');
    const doc = JSON.parse(fs.readFileSync(planFile(dir, { cluster: '2x8-a100-80gb', nodes: 2 }), 'utf8'));
    Object.assign(doc.stages[0], { zero: 0, dp: 16 });
    doc.globalBatch = 128;
    fs.writeFileSync(plan, JSON.stringify(doc));
    const r = await runCli(['export', '--plan', plan, '--to', 'deepspeed', '--out', path.join(dir, 'ds')]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: deepspeed reduces ZeRO-0 gradients after the backward, not beside it: [\d.]+ \w+ per iteration as it runs against [\d.]+ \w+ overlapped/);
    const asked = await runCli(['export', '--plan', plan, '--to', 'deepspeed', '--no-overlap-grad-reduce', '--out', path.join(dir, 'ds2')]);
    expect(asked.stderr).not.toMatch(/warning/);
  });
});
