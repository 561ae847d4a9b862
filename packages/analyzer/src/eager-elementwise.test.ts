// The training spec's elementwise 'eager' (torchtitan's llama3 model code without torch.compile):
// RMSNorm, RoPE and SwiGLU move the bytes of their separate PyTorch kernels (op-graph.ts EAGER);
// LayerNorm and GELU, one kernel eagerly too, keep their fused costs.
import { builtinHardwareProfile, getModel, NO_OFFLOAD, parseClusterShorthand, parseTrainingSpec } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { compileStageModel, type StageQuery } from './compile';
import { evaluate } from './expr';
import { layerOps } from './op-graph';

const env = { s: 2048, h: 4096, a: 32, k: 8, f: 14336, V: 128256, fa: 1, b: 1, t: 1, sp: 0, cp: 1 };
const byName = (ops: ReturnType<typeof layerOps>) => new Map(ops.map((o) => [o.name, o]));

describe('eager norms, RoPE and SwiGLU', () => {
  it('move the bytes counted from the model code: RMSNorm 9x, RoPE 5x, SwiGLU 5/3x forward at bf16', () => {
    const llama = getModel('llama3.1-8b');
    const fused = byName(layerOps(llama, { actBytes: 2 }));
    const eager = byName(layerOps(llama, { actBytes: 2, elementwise: 'eager' }));
    const ratio = (name: string, k: 'fwdBytes' | 'bwdBytes'): number => evaluate(eager.get(name)![k], env) / evaluate(fused.get(name)![k], env);
    expect(ratio('norm.attn', 'fwdBytes')).toBe(36 / 4);
    expect(ratio('norm.attn', 'bwdBytes')).toBe(64 / 6);
    expect(ratio('attn.rope', 'fwdBytes')).toBe(20 / 4);
    expect(ratio('mlp.swiglu', 'fwdBytes')).toBe(10 / 6);
    expect(ratio('mlp.swiglu', 'bwdBytes')).toBe(18 / 10);
    expect(eager.get('norm.attn')!.fwdKernels).toBe(8);
    // Kept beyond the fused ops: the norms' fp32 copies (4 B per element) and silu's output (2 B per ffn element).
    const saved = (m: Map<string, (typeof fused extends Map<string, infer O> ? O : never)>): number =>
      [...m.values()].reduce((n, o) => n + evaluate(o.saved, env), 0);
    expect(saved(eager) - saved(fused)).toBe(env.s * (2 * 4 * env.h + 2 * env.f));
    // The GEMMs are untouched.
    expect(evaluate(eager.get('mlp.fc1')!.fwdBytes, env)).toBe(evaluate(fused.get('mlp.fc1')!.fwdBytes, env));
  });

  it('leaves LayerNorm and GELU as they are, and makes a Llama stage slower', () => {
    const gpt = getModel('gpt3-1.3b');
    const f = byName(layerOps(gpt, { actBytes: 2 }));
    const e = byName(layerOps(gpt, { actBytes: 2, elementwise: 'eager' }));
    for (const name of ['norm.attn', 'mlp.gelu']) expect(evaluate(e.get(name)!.fwdBytes, env)).toBe(evaluate(f.get(name)!.fwdBytes, env));
    const profile = builtinHardwareProfile(parseClusterShorthand('1x8-h100-sxm'));
    const q: StageQuery = {
      layers: 32, position: 'only', inFlight: 1, pp: 1, mesh: { nodes: 1, gpusPerNode: 8 }, microBatchSize: 1, gradAccumSteps: 1,
      dp: 8, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 3, offload: NO_OFFLOAD,
    };
    const at = (elementwise: 'fused' | 'eager') => compileStageModel({
      model: getModel('llama3.1-8b'), profile, training: parseTrainingSpec({ globalBatch: 8, seqLen: 4096, flashAttention: true, elementwise }),
    }).estimate(q);
    const slow = at('eager');
    const fast = at('fused');
    expect(slow.steadyTimeS).toBeGreaterThan(fast.steadyTimeS * 1.03);
    expect(slow.memory.activations).toBeGreaterThan(fast.memory.activations);
  });
});
