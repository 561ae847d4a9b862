// Megatron-Core's communication overlaps on the command line: `mist analyze --tp-comm-overlap
// --overlap-param-gather` predicts with them, `mist export --to megatron` writes them, `mist import`
// reads them back and says how to predict them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeGpt13bPlan } from '../test/plan-file';
import { runCli } from '../test/run-cli';
import { scratchDir } from '../test/scratch';

const tmp = (): string => scratchDir('overlap');

/** gpt3-1.3b on 2 x 8 H100: tp 2 with sequence parallelism, dp 8, the distributed optimizer (ZeRO-1). */
const spPlan = (dir: string): string => writeGpt13bPlan(dir, { cluster: '2x8-h100-sxm', nodes: 2, tp: 2 });

describe('communication overlaps (--tp-comm-overlap, --overlap-param-gather)', () => {
  it('mist analyze predicts a shorter steady micro-batch and end of step with them, and says so', async () => {
    const plan = spPlan(tmp());
    const base = JSON.parse((await runCli(['analyze', plan, '--json'])).stdout);
    expect(base.overlaps).toBeUndefined();
    const tp = JSON.parse((await runCli(['analyze', plan, '--tp-comm-overlap', '--json'])).stdout);
    expect(tp.overlaps).toEqual({ tpCommOverlap: true, paramGatherOverlap: false });
    expect(tp.stages[0].steadyTimeS).toBeLessThan(base.stages[0].steadyTimeS);
    expect(tp.stages[0].lastTimeS).toBe(base.stages[0].lastTimeS);
    const pg = JSON.parse((await runCli(['analyze', plan, '--overlap-param-gather', '--json'])).stdout);
    expect(pg.stages[0].lastTimeS).toBeLessThan(base.stages[0].lastTimeS);
    expect(pg.stages[0].steadyTimeS).toBe(base.stages[0].steadyTimeS);
    const text = await runCli(['analyze', plan, '--tp-comm-overlap', '--overlap-param-gather']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/G=4, TP communication overlapped, parameter all-gather overlapped\n/);
  });

  it('mist export --to megatron writes them, mist import reads them back; other engines refuse the flags', async () => {
    const dir = tmp();
    const plan = spPlan(dir);
    const ex = await runCli(['export', '--plan', plan, '--to', 'megatron', '--tp-comm-overlap', '--overlap-param-gather', '--out', path.join(dir, 'm')]);
    expect(ex.code).toBe(0);
    const args = fs.readFileSync(path.join(dir, 'm', 'args.txt'), 'utf8').split(/\s+/).filter(Boolean);
    expect(args).toEqual(expect.arrayContaining(['--overlap-grad-reduce', '--overlap-param-gather', '--tp-comm-overlap']));
    const im = await runCli(['import', '--from', 'megatron', '--cluster', '2x8-h100-sxm', '--', ...args]);
    expect(im.code).toBe(0);
    expect(im.stdout).toMatch(/overlaps communication \(--tp-comm-overlap --overlap-param-gather\).*mist analyze PLAN --tp-comm-overlap --overlap-param-gather/);
    const json = JSON.parse((await runCli(['import', '--from', 'megatron', '--cluster', '2x8-h100-sxm', '--json', '--', ...args])).stdout);
    expect(json.training).toEqual({ tpCommOverlap: true, paramGatherOverlap: true, gradAccumDtype: 'fp32' }); // a bf16 setup's fp32 gradients
    const nemo = await runCli(['export', '--plan', plan, '--to', 'nemo', '--tp-comm-overlap', '--out', path.join(dir, 'n')]);
    expect(nemo.code).toBe(2);
    expect(nemo.stderr).toMatch(/--tp-comm-overlap: Megatron-LM's flag; --to nemo has no such option/);
  });

  it('mist tune --target megatron costs them (never slower), and refuses them for engines that do not set them', async () => {
    const args = ['tune', '--model', 'gpt3-1.3b', '--cluster', '2x8-h100-sxm', '--global-batch', '64', '--seq', '2048', '--target', 'megatron', '--json', '--no-cache'];
    const base = JSON.parse((await runCli(args)).stdout);
    const on = await runCli([...args, '--tp-comm-overlap', '--overlap-param-gather']);
    expect(on.code).toBe(0);
    const with_ = JSON.parse(on.stdout);
    expect(with_.predicted.iterationTimeS).toBeLessThanOrEqual(base.predicted.iterationTimeS);
    const ds = await runCli(['tune', '--model', 'gpt3-1.3b', '--cluster', '2x8-h100-sxm', '--global-batch', '64', '--seq', '2048', '--target', 'deepspeed', '--tp-comm-overlap']);
    expect(ds.code).toBe(2);
    expect(ds.stderr).toMatch(/tpCommOverlap.*--tp-comm-overlap is costed only for --target megatron/);
  });
});

