import { getModel, SpecError } from '@mist/core';
import { describe, expect, it } from 'vitest';
import {
  parseSearchKnobs, SEARCH_KNOBS, type SearchKnobs, searchKnobsFromFlags, spaceFromKnobs, trainingForTarget,
} from './search-knobs';
import { mistSpace, NO_OFFLOAD_LEVELS, uniformOffloadLevels } from './search-space';

const model = getModel('gpt-tiny');

/** One non-default setting per knob: as a JSON value, as the flag's command-line value, and the space field it sets. */
const SAMPLES: Record<keyof SearchKnobs, { json: unknown; flag: string | boolean }> = {
  space: { json: 'megatron', flag: 'megatron' },
  target: { json: 'deepspeed', flag: 'deepspeed' },
  maxStages: { json: 2, flag: '2' },
  maxTp: { json: 2, flag: '2' },
  maxCp: { json: 1, flag: '1' },
  maxEp: { json: 2, flag: '2' },
  maxVirtualStages: { json: 1, flag: '1' },
  uniformPartition: { json: true, flag: true },
  uniformMesh: { json: true, flag: true },
  sequenceParallel: { json: false, flag: true },
  pow2MicroBatch: { json: true, flag: true },
  ckpt: { json: 'none', flag: 'none' },
  selectiveRecompute: { json: false, flag: true },
  zero: { json: [1, 0], flag: '0,1' },
  offloadStep: { json: 0.25, flag: '0.25' },
  offload: { json: false, flag: true },
  frontierSize: { json: 7, flag: '7' },
  solver: { json: 'milp', flag: 'milp' },
  timeLimit: { json: 1.5, flag: '1.5' },
  fp8: { json: 'auto', flag: 'auto' },
  crossEntropy: { json: 'compute-dtype', flag: 'compute-dtype' },
  gradAccumDtype: { json: 'fp32', flag: 'fp32' },
  compile: { json: true, flag: true },
};

describe('search knobs: one schema for flags, job files and the Tuner service', () => {
  it('every knob reads the same from its flag and from JSON', () => {
    expect(new Set(SEARCH_KNOBS.map((k) => k.key))).toEqual(new Set(Object.keys(SAMPLES)));
    for (const k of SEARCH_KNOBS) {
      const fromJson = parseSearchKnobs({ [k.key]: SAMPLES[k.key].json });
      const fromFlag = searchKnobsFromFlags({ [k.flag]: SAMPLES[k.key].flag });
      expect(fromFlag, k.key).toEqual(fromJson);
      expect(Object.keys(fromJson), k.key).toEqual([k.key]);
    }
  });

  it('each ablation knob narrows the Mist space the way its name says', () => {
    const base = mistSpace();
    const space = (knobs: SearchKnobs) => spaceFromKnobs(knobs, model);
    expect(space({ maxStages: 2 }).maxStages).toBe(2);
    expect(space({ maxTp: 2 }).maxTp).toBe(2);
    expect(space({ maxCp: 1 }).maxCp).toBe(1);
    expect(space({ uniformPartition: true }).uniformPartition).toBe(true);
    expect(space({ uniformMesh: true }).uniformMesh).toBe(true);
    expect(space({ sequenceParallel: false }).sequenceParallel).toBe(false);
    expect(space({ pow2MicroBatch: true }).microBatchPow2).toBe(true);
    expect(space({ ckpt: 'none' }).ckpt).toBe('none');
    expect(base.selectiveRecompute).toBe(true);
    expect(space({ selectiveRecompute: false }).selectiveRecompute).toBe(false);
    expect(space({ zero: [0, 1] }).zero).toEqual([0, 1]);
    expect(space({ offloadStep: 0.25 }).offload).toEqual(uniformOffloadLevels(0.25));
    expect(space({ offload: false }).offload).toEqual(NO_OFFLOAD_LEVELS);
    expect(space({ frontierSize: 7 }).frontierSize).toBe(7);
    expect(space({ solver: 'milp' }).solver).toBe('milp');
    expect(space({})).toEqual(base);
    expect(space({ space: 'megatron' }).engine).toBe('megatron');
    expect(space({ target: 'torchtitan' }).engine).toBe('torchtitan');
    expect(space({ target: 'cpu' }).name).toBe('cpu');
  });

  it('bad values name the field (or the flag) and what it accepts', () => {
    const err = (fn: () => unknown): string => {
      try {
        fn();
      } catch (e) {
        expect(e).toBeInstanceOf(SpecError);
        return (e as Error).message;
      }
      throw new Error('expected a SpecError');
    };
    expect(err(() => parseSearchKnobs({ maxTp: 0 }))).toMatch(/tune\.maxTp.*positive integer/);
    expect(err(() => parseSearchKnobs({ ckpt: 'some' }))).toMatch(/tune\.ckpt.*fine, all-or-none, none/);
    expect(err(() => parseSearchKnobs({ zero: [4] }))).toMatch(/tune\.zero.*0, 1, 2, 3/);
    expect(err(() => parseSearchKnobs({ offloadStep: 0.3 }))).toMatch(/tune\.offloadStep.*1\/n/);
    expect(err(() => parseSearchKnobs({ maxtp: 2 }))).toMatch(/tune\.maxtp.*unknown search knob; allowed: space, target, maxStages/);
    expect(err(() => parseSearchKnobs({ target: 'tpu' }))).toMatch(/tune\.target.*megatron.*cpu/);
    expect(err(() => parseSearchKnobs({ space: 'deepspeed', target: 'megatron' }))).toMatch(/tune\.space.*disagrees with tune\.target/);
    expect(err(() => searchKnobsFromFlags({ 'max-tp': 'two' }))).toMatch(/--max-tp.*positive integer/);
    expect(err(() => searchKnobsFromFlags({ 'time-limit': '-1' }))).toMatch(/--time-limit.*positive number of seconds/);
    expect(err(() => searchKnobsFromFlags({ 'no-offload': true, 'offload-step': '0.5' }))).toMatch(/--offload-step.*no effect/);
  });

  it('a backend target costs the backend dtype and refuses what it does not run', () => {
    const training = { globalBatch: 8, seqLen: 32, flashAttention: true, paramDtype: 'bf16', computeDtype: 'bf16' } as const;
    expect(trainingForTarget({}, model, training as never)).toBe(training);
    expect(trainingForTarget({ target: 'cpu' }, model, training as never).computeDtype).toBe('fp32');
    // The cpu backend runs both attention variants (flash and unfused), but no fp8 linear layers.
    expect(trainingForTarget({ target: 'cpu' }, model, { ...training, flashAttention: false } as never).flashAttention).toBe(false);
    expect(() => trainingForTarget({ target: 'cpu' }, model, { ...training, fp8: 'delayed' } as never)).toThrow(SpecError);
    // The executor's loss is the fused kernel: a loss over fp32 logits is refused.
    expect(() => trainingForTarget({ target: 'cpu' }, model, { ...training, crossEntropy: 'fp32-logits' } as never)).toThrow(/crossEntropy/);
    // The gradient reduction as each runtime runs it: after the backward on the CPU, beside it on a GPU.
    expect(trainingForTarget({ target: 'cpu' }, model, training as never).gradReduceOverlap).toBe(false);
    expect(trainingForTarget({ target: 'cuda' }, model, { ...training, gradReduceOverlap: false } as never).gradReduceOverlap).toBe(true);
  });

  it('an engine target costs what the engine runs: torchtitan\'s loss over fp32 logits', () => {
    const training = { globalBatch: 8, seqLen: 32, flashAttention: true, paramDtype: 'bf16', computeDtype: 'bf16', crossEntropy: 'fused' } as const;
    expect(trainingForTarget({ target: 'torchtitan' }, model, training as never).crossEntropy).toBe('fp32-logits');
    expect(trainingForTarget({ space: 'torchtitan' }, model, training as never).crossEntropy).toBe('fp32-logits');
    expect(trainingForTarget({ target: 'megatron' }, model, training as never).crossEntropy).toBe('fused');
    // torchtitan's eager model code (no torch.compile in its export).
    expect(trainingForTarget({ target: 'torchtitan' }, model, training as never).elementwise).toBe('eager');
    expect(trainingForTarget({ target: 'megatron' }, model, training as never).elementwise ?? 'fused').toBe('fused');
    // PyTorch's DTensor sequence parallelism keeps the gathered input of its column-parallel linears.
    expect(trainingForTarget({ target: 'torchtitan' }, model, training as never).sequenceParallelInput).toBe('gathered');
    expect(trainingForTarget({ target: 'megatron' }, model, { ...training, sequenceParallelInput: 'gathered' } as never).sequenceParallelInput).toBe('sharded');
    // Megatron-LM and NeMo run their column-parallel linears' backward collectives beside the GEMMs;
    // torchtitan's DTensor and this executor's TP hooks wait for each.
    expect(trainingForTarget({ target: 'megatron' }, model, training as never).tpBackwardOverlap).toBe(true);
    expect(trainingForTarget({ space: 'nemo' }, model, training as never).tpBackwardOverlap).toBe(true);
    expect(trainingForTarget({ target: 'torchtitan' }, model, { ...training, tpBackwardOverlap: true } as never).tpBackwardOverlap).toBe(false);
    expect(trainingForTarget({ target: 'cpu' }, model, { ...training, tpBackwardOverlap: true } as never).tpBackwardOverlap).toBe(false);
    // Megatron-LM and NeMo accumulate a bf16 model's gradients in fp32 main gradients.
    expect(trainingForTarget({ target: 'megatron' }, model, training as never).gradAccumDtype).toBe('fp32');
    expect(trainingForTarget({ space: 'nemo' }, model, training as never).gradAccumDtype).toBe('fp32');
    expect(trainingForTarget({ target: 'megatron' }, model, { ...training, paramDtype: 'fp16', computeDtype: 'fp16' } as never).gradAccumDtype ?? 'param').toBe('param');
    expect(trainingForTarget({ target: 'torchtitan' }, model, training as never).gradAccumDtype ?? 'param').toBe('param');
    // Megatron-LM's --grad-reduce-in-bf16 is the knob's param.
    expect(trainingForTarget({ target: 'megatron', gradAccumDtype: 'param' }, model, training as never).gradAccumDtype).toBe('param');
    // Transformer Engine's attention: cuDNN's kernel on Hopper, flash-attn v2 elsewhere; torchtitan's SDPA flash; no GPU named, no change.
    expect(trainingForTarget({ target: 'megatron' }, model, training as never, 'h100-sxm').flashAttentionKernel).toBe('cudnn');
    expect(trainingForTarget({ space: 'nemo' }, model, training as never, 'h200').flashAttentionKernel).toBe('cudnn');
    expect(trainingForTarget({ target: 'megatron' }, model, { ...training, flashAttentionKernel: 'cudnn' } as never, 'a100-80gb').flashAttentionKernel).toBe('flash2');
    expect(trainingForTarget({ target: 'torchtitan' }, model, training as never, 'h100-sxm').flashAttentionKernel).toBe('flash2');
    expect(trainingForTarget({ target: 'megatron' }, model, training as never).flashAttentionKernel).toBeUndefined();
  });

  it('torchtitan with torch.compile costs fused element-wise kernels and the compiled loss; another engine refuses the option', () => {
    const training = { globalBatch: 8, seqLen: 32, flashAttention: true, paramDtype: 'bf16', computeDtype: 'bf16', crossEntropy: 'fused' } as const;
    const compiled = trainingForTarget({ target: 'torchtitan', compile: true }, model, training as never);
    expect(compiled.crossEntropy).toBe('compiled');
    expect(compiled.elementwise).toBe('fused');
    expect(compiled.sequenceParallelInput).toBe('gathered');
    // The compiled loss asked for by name is the same option.
    expect(trainingForTarget({ space: 'torchtitan', crossEntropy: 'compiled' }, model, training as never).elementwise).toBe('fused');
    expect(() => trainingForTarget({ target: 'megatron', compile: true }, model, training as never)).toThrow(/compile.*allowed with --target or --space torchtitan/);
    expect(() => trainingForTarget({ compile: true }, model, training as never)).toThrow(SpecError);
  });

  it('the cross-entropy knob sets the loss, and an engine that fixes it refuses another', () => {
    const training = { globalBatch: 8, seqLen: 32, flashAttention: true, paramDtype: 'fp16', computeDtype: 'fp16', crossEntropy: 'fused' } as const;
    expect(trainingForTarget({ target: 'megatron', crossEntropy: 'compute-dtype' }, model, training as never).crossEntropy).toBe('compute-dtype');
    expect(trainingForTarget({ crossEntropy: 'compute-dtype' }, model, training as never).crossEntropy).toBe('compute-dtype');
    expect(() => trainingForTarget({ target: 'torchtitan', crossEntropy: 'compute-dtype' }, model, training as never)).toThrow(/crossEntropy.*fp32-logits/s);
    expect(() => trainingForTarget({ target: 'cpu', crossEntropy: 'compute-dtype' }, model, training as never)).toThrow(/crossEntropy/);
    // Megatron-LM runs the fused loss, or the fp16 one with --fp16: not torchtitan's compiled loss, nor the fp16 one in bf16.
    expect(() => trainingForTarget({ target: 'megatron', crossEntropy: 'compiled' }, model, training as never)).toThrow(/allowed: fused, compute-dtype/);
    expect(() => trainingForTarget({ target: 'megatron', crossEntropy: 'compute-dtype' }, model, { ...training, paramDtype: 'bf16', computeDtype: 'bf16' } as never))
      .toThrow(/allowed: fused\)/);
  });
});
