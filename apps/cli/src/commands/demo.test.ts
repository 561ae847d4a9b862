import { describe, expect, it } from 'vitest';
import { runCli } from '../test/run-cli';
import { measuredStepTime, stepTimeComparison } from './demo';

describe('mist demo', () => {
  it('starts a coordinator and two agents, tunes gpt-tiny for them, trains it and shuts down', async () => {
    const res = await runCli(['demo', '--steps', '20', '--json']);
    expect(res.code).toBe(0);
    const lines = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const summary = lines.pop() as {
      state: string; plan: { stages: unknown[] }; firstLoss: number; finalLoss: number; uniformLoss: number;
      predictedIterationS: number; measuredIterationS: number;
    };
    expect(lines.map((l) => l.step)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(summary.state).toBe('JOB_STATE_SUCCEEDED');
    expect(summary.plan.stages.length).toBeGreaterThan(0);
    expect(summary.finalLoss).toBeLessThan(0.8 * summary.uniformLoss);
    // Both step times, side by side: the measured one is the median of the steps' own times.
    expect(summary.predictedIterationS).toBeGreaterThan(0);
    const times = lines.map((l) => l.stepTimeS as number);
    expect(summary.measuredIterationS).toBe(measuredStepTime(times)?.seconds);
  }, 120_000);

  it('compares the measured step time with the predicted one', () => {
    expect(measuredStepTime([9, 9, 1, 2, 3])).toEqual({ seconds: 2, steps: '3-5' });
    expect(measuredStepTime([])).toBeUndefined();
    expect(stepTimeComparison(0.0551, 0.0523)).toBe('measured 55.10 ms/iteration vs predicted 52.30 ms (+5.4%)');
    expect(stepTimeComparison(0.05, undefined)).toBe('measured 50.00 ms/iteration (no prediction)');
  });
});
