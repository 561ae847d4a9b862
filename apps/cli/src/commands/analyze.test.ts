import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../test/run-cli';

const examples = path.resolve(__dirname, '../../../../examples/plans');
const small = path.join(examples, 'gpt3-1.3b-1x2-l4.json');

function tempPlan(mutate: (p: Record<string, unknown> & { stages: Record<string, unknown>[] }) => void): string {
  const plan = JSON.parse(fs.readFileSync(small, 'utf8'));
  mutate(plan);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mist-analyze-')), 'plan.json');
  fs.writeFileSync(file, JSON.stringify(plan));
  return file;
}

describe('mist analyze', () => {
  it('prints the summary and per-stage time and memory tables', async () => {
    const res = await runCli(['analyze', '--plan', small]);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/gpt3-1\.3b on 1x2-l4 \(datasheet:l4\)/);
    expect(res.stdout).toMatch(/tokens\/s, MFU \d+\.\d%/);
    expect(res.stdout).toMatch(/steady\s+first\s+last/);
    expect(res.stdout).toMatch(/weights\s+grads\s+optim\s+activations\s+transient/);
  });

  it('--json has the fields the issue lists, consistent with the 1F1B formula', async () => {
    const res = await runCli(['analyze', '--model', 'gpt3-1.3b', '--cluster', '1x2-l4', '--plan', small, '--seq', '2048', '--global-batch', '32', '--json']);
    expect(res.code).toBe(0);
    const out = JSON.parse(res.stdout);
    for (const k of ['iterationTimeS', 'tokensPerS', 'mfu']) expect(typeof out[k]).toBe('number');
    const s = out.stages[0];
    for (const k of ['peakMemoryBytes', 'steadyTimeS', 'firstTimeS', 'lastTimeS', 'capacityBytes']) expect(typeof s[k]).toBe('number');
    expect(typeof s.fits).toBe('boolean');
    expect(Object.keys(s.memory)).toEqual(expect.arrayContaining(['weights', 'grads', 'optim', 'activations', 'transient']));
    expect(Object.keys(s.time)).toEqual(expect.arrayContaining(['forward', 'backward', 'recompute', 'tpComm', 'dpComm', 'ppComm', 'offload', 'optimizer']));
    expect(out.iterationTimeS).toBeCloseTo(s.firstTimeS + s.lastTimeS + (out.gradAccumSteps - 1) * s.steadyTimeS, 9);
  });

  it('reports a plan that does not fit (exit 3, the pre-flight code) with the overflow and the margin', async () => {
    const file = tempPlan((p) => {
      p.gradAccumSteps = 1;
      Object.assign(p.stages[0], { microBatchSize: 16, ckptLayers: 0, zero: 0 });
    });
    const res = await runCli(['analyze', '--plan', file]);
    expect(res.code).toBe(3);
    expect(res.stdout).toMatch(/do NOT fit/);
    expect(res.stdout).toMatch(/no, over by \d/);
    expect(res.stdout).toMatch(/-[\d.]+ [KMG]iB \(-[\d.]+%\)\s+activations \d+%/);
    const json = JSON.parse((await runCli(['analyze', '--plan', file, '--json'])).stdout);
    expect(json.allFit).toBe(false);
    expect(json.stages[0].overflowBytes).toBeGreaterThan(0);
    expect(json.stages[0].hostOverflowBytes).toBe(0);
    expect(json.stages[0].hostFits).toBe(true);
  });

  it('reports a stage that offloads more than the host holds: host memory per stage and why it does not fit', async () => {
    // gpt3-6.7b on one L4 with every state and activation offloaded: ~100 GiB on a ~40 GiB host share.
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mist-analyze-')), 'plan.json');
    fs.writeFileSync(file, JSON.stringify({
      version: 1, model: 'gpt3-6.7b', cluster: '1x1-l4', seqLen: 2048, globalBatch: 8, gradAccumSteps: 8,
      stages: [{ layers: [0, 31], mesh: { nodes: 1, gpusPerNode: 1 }, microBatchSize: 1, dp: 1, tp: 1, sequenceParallel: false,
        ckptLayers: 32, zero: 0, offload: { weights: 1, grads: 1, optim: 1, activations: 1 } }],
    }));
    const res = await runCli(['analyze', '--plan', file]);
    expect(res.code).toBe(3); // the pre-flight: a plan that does not fit has its own exit code
    expect(res.stderr).toMatch(/the plan does not fit \(exit 3\)/);
    expect(res.stdout).toMatch(/1 stage\(s\) do NOT fit \(stage 0: host memory\)/);
    expect(res.stdout).toMatch(/host\s+host capacity\s+margin\s+largest\s+fits/);
    expect(res.stdout).toMatch(/no, over by [\d.]+ GiB on the host/);
    const jsonRes = await runCli(['analyze', '--plan', file, '--json']);
    expect(jsonRes.code).toBe(3);
    const json = JSON.parse(jsonRes.stdout);
    const s = json.stages[0];
    expect(json.allFit).toBe(false);
    expect(s.fits).toBe(false);
    expect(s.deviceFits).toBe(true);
    expect(s.hostFits).toBe(false);
    expect(s.overflowBytes).toBe(0);
    expect(s.hostMemoryBytes).toBeGreaterThan(s.hostCapacityBytes);
    expect(s.hostOverflowBytes).toBeCloseTo(s.hostMemoryBytes - s.hostCapacityBytes, 0);
  });

  it('--explain prints the formulas with L, b and ckpt free', async () => {
    const res = await runCli(['analyze', '--plan', small, '--explain']);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/Stage 0 formulas/);
    expect(res.stdout).toMatch(/steady \[s\] = /);
    expect(res.stdout).toMatch(/Pr = \d+\*L \+ \d+/);
  });

  it('refuses a plan that breaks the rules (exit 2)', async () => {
    const broken = await runCli(['analyze', '--plan', path.join(examples, 'broken.json'), '--model', 'gpt3-1.3b', '--cluster', '1x2-l4']);
    expect(broken.code).toBe(2);
  });

  it('--seq, --global-batch and --no-flash-attention re-target the plan; a batch that does not divide is refused', async () => {
    const base = JSON.parse((await runCli(['analyze', small, '--json'])).stdout);
    const res = await runCli(['analyze', small, '--seq', '1024', '--global-batch', '64', '--no-flash-attention', '--json']);
    expect(res.code).toBe(0);
    const out = JSON.parse(res.stdout);
    expect([out.seqLen, out.globalBatch, out.gradAccumSteps, out.flashAttention]).toEqual([1024, 64, 4, false]);
    expect(out.retargeted).toEqual(['seq 2048 -> 1024', 'global batch 32 -> 64 (gradAccumSteps 2 -> 4)', 'no flash attention']);
    expect(out.iterationTimeS).not.toBeCloseTo(base.iterationTimeS, 3);
    const text = await runCli(['analyze', small, '--no-flash-attention']);
    expect(text.stdout).toMatch(/G=2, no flash attention\nre-targeted from the plan file: no flash attention/);
    const odd = await runCli(['analyze', small, '--global-batch', '33']);
    expect(odd.code).toBe(2);
    expect(odd.stderr).toMatch(/--global-batch 33: .*microBatchSize \* dp = 8 \* 2 = 16 .*multiple of 16/);
    const long = await runCli(['analyze', small, '--seq', '4096']);
    expect(long.code).toBe(2);
    expect(long.stderr).toMatch(/seqLen: got 4096; must be at most 2048/);
  });

  it('shows a stage\'s selective recomputation beside its checkpointed layers, and its saving', async () => {
    const without = tempPlan((p) => { p.flashAttention = false; });
    const selective = tempPlan((p) => { p.flashAttention = false; p.stages[0].ckptLayers = 0; p.stages[0].selectiveRecompute = true; });
    const plain = tempPlan((p) => { p.flashAttention = false; p.stages[0].ckptLayers = 0; });
    const res = await runCli(['analyze', '--plan', selective]);
    expect(res.stdout).toMatch(/\b0 \+sel\b/);
    expect((await runCli(['analyze', '--plan', without])).stdout).not.toMatch(/\+sel/);
    const json = async (file: string) => JSON.parse((await runCli(['analyze', '--plan', file, '--json'])).stdout) as { stages: Array<{ memory: { activations: number } }> };
    const [a, b] = await Promise.all([json(selective), json(plain)]);
    expect(a.stages[0].memory.activations).toBeLessThan(b.stages[0].memory.activations);
  });
});
