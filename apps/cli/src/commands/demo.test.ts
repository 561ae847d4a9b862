import { describe, expect, it } from 'vitest';
import { runCli } from '../test/run-cli';

describe('mist demo', () => {
  it('starts a coordinator and two agents, tunes gpt-tiny for them, trains it and shuts down', async () => {
    const res = await runCli(['demo', '--steps', '20', '--json']);
    expect(res.code).toBe(0);
    const lines = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const summary = lines.pop() as { state: string; plan: { stages: unknown[] }; firstLoss: number; finalLoss: number; uniformLoss: number };
    expect(lines.map((l) => l.step)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(summary.state).toBe('JOB_STATE_SUCCEEDED');
    expect(summary.plan.stages.length).toBeGreaterThan(0);
    expect(summary.finalLoss).toBeLessThan(0.8 * summary.uniformLoss);
  }, 120_000);
});
