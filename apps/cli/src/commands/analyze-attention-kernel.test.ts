// `mist analyze --attention-kernel`: the flash-attention kernel a stack runs (TrainingSpec.flashAttentionKernel),
// costed at its measured share of FlashAttention-2's rate (core's FLASH_KERNEL_SHARE).
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../test/run-cli';

const plan = path.resolve(__dirname, '../../../../examples/plans/gpt3-1.3b-1x2-l4.json');

interface AnalyzeJson {
  iterationTimeS: number;
  flashAttentionKernel?: string;
}

describe('mist analyze --attention-kernel', () => {
  it('costs the Triton and v1 kernels slower than FlashAttention-2, says so, and names the allowed kernels on a bad one', async () => {
    const run = async (...args: string[]): Promise<AnalyzeJson> => {
      const r = await runCli(['analyze', plan, '--json', ...args]);
      // 0, or 3 where a stage does not fit (the unfused attention's scores on a 24 GB L4).
      expect([0, 3], r.stderr).toContain(r.code);
      return JSON.parse(r.stdout) as AnalyzeJson;
    };
    const fa2 = await run();
    const triton = await run('--attention-kernel', 'triton');
    const v1 = await run('--attention-kernel', 'flash1');
    expect(fa2.flashAttentionKernel).toBeUndefined();
    expect(triton.flashAttentionKernel).toBe('triton');
    expect(triton.iterationTimeS).toBeGreaterThan(v1.iterationTimeS);
    expect(v1.iterationTimeS).toBeGreaterThan(fa2.iterationTimeS);
    // Without flash attention the kernel is not run: the same time whichever is named.
    const noFlash = await run('--no-flash-attention');
    expect((await run('--no-flash-attention', '--attention-kernel', 'triton')).iterationTimeS).toBe(noFlash.iterationTimeS);
    expect((await runCli(['analyze', plan, '--attention-kernel', 'triton'])).stdout.split('\n')[0]).toMatch(/Triton flash-attention kernel/);
    const bad = await runCli(['analyze', plan, '--attention-kernel', 'fa3']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--attention-kernel: got "fa3"; allowed: flash2, flash1, triton, cudnn/);
  }, 60_000);
});
