// The training spec's elementwise 'eager' (torchtitan's llama3 model code without torch.compile;
// Megatron-LM's GPT-2 code of 2020): RMSNorm, RoPE and SwiGLU, the causal mask before the softmax,
// dropout before the residual add and the linears' biases move the bytes of their separate PyTorch
// kernels (op-graph.ts EAGER); LayerNorm and GELU, one kernel eagerly too, keep their fused costs.
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

  it('a GPT with dropout and biases: the mask pass, dropout apart from the add, and each bias add (Megatron-LM 2020)', () => {
    const gpt = { ...getModel('gpt3-1.3b'), dropout: 0.1, bias: true };
    const g = { ...env, h: 2048, a: 16, k: 16, f: 8192, fa: 0 };
    const f = byName(layerOps(gpt, { actBytes: 2 }));
    const e = byName(layerOps(gpt, { actBytes: 2, elementwise: 'eager' }));
    const at = (m: typeof f, name: string, k: 'fwdBytes' | 'bwdBytes'): number => evaluate(m.get(name)![k], g);
    const scores = g.b * g.a * g.s * g.s;
    // masked_fill_ in place, then the softmax: 4e forward (2e fused), 5e backward (3e).
    expect(at(e, 'attn.softmax', 'fwdBytes') - at(f, 'attn.softmax', 'fwdBytes')).toBe(4 * scores);
    expect(at(e, 'attn.softmax', 'bwdBytes') - at(f, 'attn.softmax', 'bwdBytes')).toBe(4 * scores);
    expect(e.get('attn.softmax')!.fwdKernels).toBe(2);
    // Dropout writes its output and the add reads it again: 2e more forward per element, backward unchanged.
    const tokens = g.b * g.s;
    expect(at(e, 'mlp.residual', 'fwdBytes') - at(f, 'mlp.residual', 'fwdBytes')).toBe(2 * 2 * tokens * g.h);
    expect(at(e, 'mlp.residual', 'bwdBytes')).toBe(at(f, 'mlp.residual', 'bwdBytes'));
    // A bias add reads and writes the linear's output (forward only): FC1's 4h columns.
    expect(at(e, 'mlp.fc1', 'fwdBytes') - at(f, 'mlp.fc1', 'fwdBytes')).toBe(2 * 2 * tokens * g.f);
    expect(at(e, 'mlp.fc1', 'bwdBytes')).toBe(at(f, 'mlp.fc1', 'bwdBytes'));
    // Without biases and dropout (Llama) none of these apply: its linears and residuals are untouched.
    const llama = getModel('llama3.1-8b');
    const lf = byName(layerOps(llama, { actBytes: 2 })), le = byName(layerOps(llama, { actBytes: 2, elementwise: 'eager' }));
    for (const name of ['attn.qkv', 'mlp.fc2', 'attn.residual', 'mlp.residual']) expect(evaluate(le.get(name)!.fwdBytes, env)).toBe(evaluate(lf.get(name)!.fwdBytes, env));
  });
});
