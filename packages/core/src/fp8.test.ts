// fp8 linear layers in core: the training-spec field, the GPUs' fp8 peaks, the plan field, and the
// refusals of the engine and backend tables.
import { describe, expect, it } from 'vitest';
import { backendCapabilities, backendViolations } from './backend-capabilities';
import { engineCapabilities, planCapabilityViolations } from './engine-capabilities';
import { fp8PeakFlops, getGpu, gpuCatalog, GpuSpecSchema } from './gpu';
import { getModel } from './model-catalog';
import { NO_OFFLOAD, parsePlan, type Plan } from './plan';
import { parseTrainingSpec } from './training';

const model = getModel('gpt-tiny');
const plan = (fp8?: Plan['fp8']): Plan => parsePlan({
  version: 1, model: model.name, seqLen: 64, globalBatch: 8, gradAccumSteps: 1, ...(fp8 ? { fp8 } : {}),
  stages: [{ layers: [0, model.layers - 1], mesh: { nodes: 1, gpusPerNode: 1 }, microBatchSize: 8, dp: 1, tp: 1, sequenceParallel: false,
    ckptLayers: 0, zero: 0, offload: NO_OFFLOAD }],
});

describe('the fp8 field of the training spec and the plan', () => {
  it('defaults to none, so specs and plans without it load as before', () => {
    expect(parseTrainingSpec({ globalBatch: 8, seqLen: 64 }).fp8).toBe('none');
    expect(plan().fp8).toBeUndefined();
    expect(plan('delayed').fp8).toBe('delayed');
  });
  it('refuses an unknown recipe naming the allowed ones', () => {
    expect(() => parseTrainingSpec({ globalBatch: 8, seqLen: 64, fp8: 'mxfp8' })).toThrow(/fp8.*none.*delayed.*current/s);
  });
});

describe('fp8 tensor-core peaks of the catalog', () => {
  it('are the datasheets\' dense figures, half of the sparse ones, and twice the bf16 peak on Hopper and Blackwell', () => {
    expect(fp8PeakFlops(getGpu('h100-sxm'))).toBe(1979e12);
    expect(fp8PeakFlops(getGpu('h100-pcie'))).toBe(1513e12);
    expect(fp8PeakFlops(getGpu('h200'))).toBe(1979e12);
    expect(fp8PeakFlops(getGpu('h800'))).toBe(1979e12);
    expect(fp8PeakFlops(getGpu('b200'))).toBe(4500e12);
    expect(fp8PeakFlops(getGpu('l4'))).toBe(242.5e12);
    for (const name of ['h100-sxm', 'h200', 'h800', 'b200', 'l4']) {
      const g = getGpu(name);
      expect(fp8PeakFlops(g)! / g.peakFlops.bf16).toBeCloseTo(2, 2);
    }
  });
  it('are null on GPUs without fp8 tensor cores (Volta, Ampere), and in GPU files without the field', () => {
    for (const g of gpuCatalog().filter((x) => /^(a100|v100|a10g)/.test(x.name))) expect(fp8PeakFlops(g)).toBeNull();
    const { fp8: _f, ...peaks } = getGpu('h100-sxm').peakFlops;
    expect(fp8PeakFlops(GpuSpecSchema.parse({ ...getGpu('h100-sxm'), name: 'custom', peakFlops: peaks }))).toBeNull();
  });
});

describe('fp8 in the capability tables', () => {
  it('megatron and nemo run both recipes, torchtitan current scaling only, deepspeed none', () => {
    expect(planCapabilityViolations(plan('delayed'), engineCapabilities('megatron'))).toEqual([]);
    expect(planCapabilityViolations(plan('current'), engineCapabilities('nemo'))).toEqual([]);
    expect(planCapabilityViolations(plan('current'), engineCapabilities('torchtitan'))).toEqual([]);
    expect(planCapabilityViolations(plan('delayed'), engineCapabilities('torchtitan'))).toEqual([
      expect.objectContaining({ feature: 'fp8 linear layers (delayed scaling)', field: 'fp8' })]);
    expect(planCapabilityViolations(plan('current'), engineCapabilities('deepspeed'))).toEqual([
      expect.objectContaining({ feature: 'fp8 linear layers (current scaling)', field: 'fp8', detail: expect.stringMatching(/no fp8 linear layers/) })]);
  });
  it('the cpu backend refuses fp8 linear layers in the training spec and in a plan, naming them', () => {
    const cpu = backendCapabilities('cpu');
    const t = parseTrainingSpec({ globalBatch: 8, seqLen: 64, paramDtype: 'fp32', computeDtype: 'fp32', fp8: 'delayed' });
    const v = backendViolations(cpu, { model, training: t, plan: plan('delayed') });
    expect(v.map((x) => [x.feature, x.field])).toEqual([
      ['fp8 linear layers (delayed scaling)', 'training.fp8'], ['fp8 linear layers (delayed scaling)', 'plan.fp8']]);
    const off = parseTrainingSpec({ globalBatch: 8, seqLen: 64, paramDtype: 'fp32', computeDtype: 'fp32' });
    expect(backendViolations(cpu, { model, training: off, plan: plan() })).toEqual([]);
  });
});
