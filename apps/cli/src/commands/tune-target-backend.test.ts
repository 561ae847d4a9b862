// `mist tune --target cpu`: the search is restricted to what the executor's cpu backend runs.
import { backendCapabilities, backendViolations, getModel, parsePlan, parseTrainingSpec } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { runCli } from '../test/run-cli';

describe('mist tune --target cpu', () => {
  it('returns a plan the cpu backend runs (tp within the key/value heads, no sequence parallelism)', async () => {
    const res = await runCli(['tune', '--model', 'llama-tiny', '--cluster', '1x4-l4', '--global-batch', '8', '--seq', '64', '--target', 'cpu', '--no-cache', '--json']);
    expect(res.code).toBe(0);
    const out = JSON.parse(res.stdout) as { space: string; plan: unknown };
    expect(out.space).toBe('cpu');
    const model = getModel('llama-tiny');
    const plan = parsePlan(out.plan, { model });
    const training = parseTrainingSpec({ globalBatch: 8, seqLen: 64, paramDtype: 'fp32', computeDtype: 'fp32' });
    expect(backendViolations(backendCapabilities('cpu'), { model, training, plan })).toEqual([]);
  });

  it('refuses what the backend cannot train, naming the feature (exit 2)', async () => {
    const res = await runCli(['tune', '--model', 'gpt-tiny', '--cluster', '1x4-h100-sxm', '--global-batch', '8', '--seq', '64', '--target', 'cpu', '--fp8', 'delayed']);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/--target cpu:\n.*training\.fp8: got "delayed"; fp8 linear layers \(delayed scaling\) is not run by the cpu backend/);
    // The unfused attention it runs, but context parallelism only with flash attention: that tune keeps cp 1.
    const unfused = await runCli(['tune', '--model', 'gpt-tiny', '--cluster', '1x4-l4', '--global-batch', '8', '--seq', '64', '--target', 'cpu',
      '--no-flash-attention', '--no-cache', '--json']);
    expect(unfused.code, unfused.stderr).toBe(0);
    const model = getModel('gpt-tiny');
    const plan = parsePlan((JSON.parse(unfused.stdout) as { plan: unknown }).plan, { model });
    const training = parseTrainingSpec({ globalBatch: 8, seqLen: 64, paramDtype: 'fp32', computeDtype: 'fp32', flashAttention: false });
    expect(backendViolations(backendCapabilities('cpu'), { model, training, plan })).toEqual([]);
    expect(plan.stages.every((st) => (st.cp ?? 1) === 1)).toBe(true);
    const bad = await runCli(['tune', '--model', 'gpt-tiny', '--cluster', '1x4-l4', '--global-batch', '8', '--seq', '64', '--target', 'gpu']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--target: got "gpu"; expected one of megatron, nemo, deepspeed, torchtitan, cpu/);
  });
});
