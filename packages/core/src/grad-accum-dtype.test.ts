// The model states' bytes per parameter (training.ts modelStateBytesPerParam) with gradients
// accumulated in the parameters' dtype (the ZeRO paper's layout) or in fp32 (Megatron-LM's bf16 main
// gradients: core_v0.14.0 docs/source/api-guide/dist_optimizer.md, 18 bytes per parameter, 6 + 12/d
// with the distributed optimizer), and who accumulates in which.
import { describe, expect, it } from 'vitest';
import { backendCapabilities, backendViolations } from './backend-capabilities';
import { engineGradAccumDtype } from './engine-capabilities';
import { getModel } from './model-catalog';
import { modelStateBytesPerParam, parseTrainingSpec } from './training';

const spec = (paramDtype: 'bf16' | 'fp16' | 'fp32', gradAccumDtype?: 'param' | 'fp32') =>
  parseTrainingSpec({ globalBatch: 8, seqLen: 64, paramDtype, computeDtype: paramDtype, ...(gradAccumDtype ? { gradAccumDtype } : {}) });
/** Bytes per parameter with the distributed optimizer (ZeRO-1) over d ranks: optim sharded, the rest not. */
const distributed = (b: { weights: number; grads: number; optim: number }, d: number): number => b.weights + b.grads + b.optim / d;

describe('gradient accumulation dtype', () => {
  it('in the parameters\' dtype: 2 + 2 + 12 in mixed precision, 4 + 4 + 8 in fp32 (the default)', () => {
    expect(spec('bf16').gradAccumDtype).toBe('param');
    expect(modelStateBytesPerParam(spec('bf16'))).toEqual({ weights: 2, grads: 2, optim: 12 });
    expect(modelStateBytesPerParam(spec('fp16'))).toEqual({ weights: 2, grads: 2, optim: 12 });
    expect(modelStateBytesPerParam(spec('fp32'))).toEqual({ weights: 4, grads: 4, optim: 8 });
  });

  it('in fp32 with bf16 weights: the 18 and 6 + 12/d bytes of Megatron-LM\'s distributed optimizer table', () => {
    const bf16 = modelStateBytesPerParam(spec('bf16', 'fp32'));
    expect(bf16).toEqual({ weights: 2, grads: 4, optim: 12 });
    for (const d of [2, 8, 64]) expect(distributed(bf16, d)).toBeCloseTo(6 + 12 / d, 12);
    expect(modelStateBytesPerParam(spec('fp32', 'fp32'))).toEqual({ weights: 4, grads: 4, optim: 8 });
  });

  it('Megatron-LM and NeMo accumulate bf16 models\' gradients in fp32; the executor backends in the parameters\' dtype only', () => {
    expect(engineGradAccumDtype('megatron', 'bf16')).toBe('fp32');
    expect(engineGradAccumDtype('nemo', 'bf16')).toBe('fp32');
    expect(engineGradAccumDtype('megatron', 'fp16')).toBeNull();
    expect(engineGradAccumDtype('deepspeed', 'bf16')).toBeNull();
    expect(engineGradAccumDtype('torchtitan', 'bf16')).toBeNull();
    const model = getModel('gpt-tiny');
    for (const b of ['cpu', 'cuda'] as const) {
      const fields = backendViolations(backendCapabilities(b), { model, training: spec('fp32', 'fp32'), plan: null }).map((v) => v.field);
      expect(fields).toContain('training.gradAccumDtype');
    }
    expect(() => parseTrainingSpec({ globalBatch: 8, seqLen: 64, gradAccumDtype: 'fp16' })).toThrow(/gradAccumDtype/);
  });
});
