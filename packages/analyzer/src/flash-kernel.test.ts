// The training spec's flashAttentionKernel: FlashAttention v1 and the Triton FlashAttention run the
// same work as FlashAttention-2 at their measured share of its rate (core's FLASH_KERNEL_SHARE).
import { builtinHardwareProfile, FLASH_KERNEL_SHARE, getModel, NO_OFFLOAD, parseClusterShorthand, parseTrainingSpec } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { compileStageModel, type StageQuery } from './compile';
import { evaluate } from './expr';
import { CostModel } from './hardware-cost';
import { layerOps } from './op-graph';

const model = getModel('gpt3-1.3b');
const profile = builtinHardwareProfile(parseClusterShorthand('1x8-a100-80gb'), 'bf16');
const env = { s: 2048, h: 2048, a: 16, k: 16, f: 8192, V: 50257, fa: 1, b: 4, t: 1, sp: 0, cp: 1 };

describe('flashAttentionKernel', () => {
  it('takes the attention kernel alone longer by 1 / share, forward and backward; every other op is untouched', () => {
    const cost = new CostModel(profile);
    const fa2 = layerOps(model, { actBytes: 2 });
    for (const kernel of ['flash1', 'triton', 'cudnn'] as const) {
      const other = layerOps(model, { actBytes: 2, flashAttentionKernel: kernel });
      fa2.forEach((o, i) => {
        const x = other[i];
        for (const pass of ['forward', 'backward'] as const) {
          const a = evaluate(cost[pass](o), env), b = evaluate(cost[pass](x), env);
          if (o.kind !== 'attention') expect(b).toBe(a);
          else {
            // Compute-bound at this shape: (a - launch) / share + launch, the launch not slowed.
            const launch = (pass === 'forward' ? o.fwdKernels : o.bwdKernels) * cost.rates.kernelLaunch;
            expect(b).toBeCloseTo((a - launch) / FLASH_KERNEL_SHARE[kernel] + launch, 12);
          }
        }
      });
    }
  });

  it('makes a flash-attention stage slower, the Triton kernel most; none changes a stage without flash attention', () => {
    const q: StageQuery = {
      layers: 24, position: 'only', inFlight: 1, pp: 1, mesh: { nodes: 1, gpusPerNode: 8 }, microBatchSize: 4, gradAccumSteps: 1,
      dp: 8, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 1, offload: NO_OFFLOAD,
    };
    const at = (flashAttention: boolean, flashAttentionKernel: 'flash2' | 'flash1' | 'triton') => compileStageModel({
      model, profile, training: parseTrainingSpec({ globalBatch: 32, seqLen: 2048, paramDtype: 'bf16', computeDtype: 'bf16', flashAttention, flashAttentionKernel }),
    }).estimate(q).steadyTimeS;
    expect(at(true, 'flash1')).toBeGreaterThan(at(true, 'flash2'));
    expect(at(true, 'triton')).toBeGreaterThan(at(true, 'flash1'));
    for (const k of ['flash1', 'triton'] as const) expect(at(false, k)).toBe(at(false, 'flash2'));
  });
});
