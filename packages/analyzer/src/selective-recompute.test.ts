// Selective activation recomputation (Korthikanti et al. 2022, Sec. 5) in the stage model: the
// layers not fully checkpointed keep sbh * 34 instead of sbh(34 + 5as/h) (GPT, dropout 0.1, no TP),
// and pay the attention core's forward again in backward.
import { getModel, NO_OFFLOAD, parseClusterShorthand, parseTrainingSpec, builtinHardwareProfile } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { compileStageModel, type StageQuery } from './compile';
import { evaluate, mul } from './expr';
import { layerOps } from './op-graph';

const model = getModel('gpt3-1.3b');
const profile = builtinHardwareProfile(parseClusterShorthand('2x8-a100-40gb'));
const noFlash = compileStageModel({ model, profile, training: parseTrainingSpec({ globalBatch: 64, seqLen: 2048, flashAttention: false }) });
const flash = compileStageModel({ model, profile, training: parseTrainingSpec({ globalBatch: 64, seqLen: 2048, flashAttention: true }) });

function query(over: Partial<StageQuery> = {}): StageQuery {
  return {
    layers: 6, position: 'middle', inFlight: 3, pp: 4, mesh: { nodes: 1, gpusPerNode: 8 },
    microBatchSize: 2, gradAccumSteps: 4, dp: 8, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 0,
    offload: NO_OFFLOAD, ...over,
  };
}

describe('selective recompute in the stage model', () => {
  const s = 2048, h = model.hidden, a = model.heads, b = 2;

  it('removes the 5as/h term of every layer not fully checkpointed', () => {
    const full = noFlash.estimate(query());
    const sel = noFlash.estimate(query({ selectiveRecompute: true }));
    expect(full.memory.activations).toBe(3 * 6 * s * b * h * (34 + (5 * a * s) / h));
    expect(sel.memory.activations).toBe(3 * 6 * s * b * h * 34);
    // With 2 of 6 layers fully checkpointed only the other 4 drop their core.
    const mixed = noFlash.estimate(query({ selectiveRecompute: true, ckptLayers: 2 }));
    expect(mixed.memory.activations).toBe(3 * (4 * s * b * h * 34 + 2 * 2 * s * b * h));
    expect(sel.peakMemoryBytes).toBeLessThan(full.peakMemoryBytes);
  });

  it("adds the attention core's forward time to the backward, a few percent of the step", () => {
    const full = noFlash.estimate(query());
    const sel = noFlash.estimate(query({ selectiveRecompute: true }));
    expect(full.time.recompute).toBe(0);
    expect(sel.time.recompute).toBeGreaterThan(0);
    expect(sel.time.forward).toBe(full.time.forward);
    expect(sel.steadyTimeS).toBeGreaterThan(full.steadyTimeS);
    // Cheaper than recomputing whole layers (the unfused softmax and dropout are memory-bound, so the
    // time share is above the FLOP share at this small width).
    const ckpt = noFlash.estimate(query({ ckptLayers: 6 }));
    expect(sel.time.recompute).toBeLessThan(ckpt.time.recompute / 2);
    // No checkpointed layer left to select: every layer fully recomputed makes the switch moot.
    const allCkpt = noFlash.estimate(query({ ckptLayers: 6, selectiveRecompute: true }));
    expect(allCkpt.time.recompute).toBe(ckpt.time.recompute);
    expect(allCkpt.memory.activations).toBe(ckpt.memory.activations);
  });

  it('adds 4bs^2h GEMM FLOPs per layer: about 1% of a GPT-3 175B step at s = 2048 (Korthikanti et al.: a few percent)', () => {
    const big = getModel('gpt3-175b');
    const env = { s: 2048, h: big.hidden, a: big.heads, k: big.kvHeads, f: big.ffnHidden, V: big.vocab, fa: 0, b: 1, t: 1, sp: 0, cp: 1 };
    const ops = layerOps(big, { actBytes: 2 });
    const flops = (pick: (o: (typeof ops)[number]) => boolean, both: boolean): number => ops.filter(pick)
      .reduce((n, o) => n + evaluate(mul(o.when, o.fwdFlops), env) + (both ? evaluate(mul(o.when, o.bwdFlops), env) : 0), 0);
    // QK^T and attention over V: 4bs^2h; softmax and dropout add a few FLOPs per score.
    expect(flops((o) => o.selective === true && o.kind === 'matmul', false)).toBe(4 * 2048 * 2048 * big.hidden);
    const extra = flops((o) => o.selective === true, false);
    const share = extra / flops(() => true, true);
    expect(share).toBeGreaterThan(0.005);
    expect(share).toBeLessThan(0.03);
  });

  it('changes nothing with flash attention (its kernel keeps no s x s tensor)', () => {
    expect(flash.estimate(query({ selectiveRecompute: true }))).toEqual(flash.estimate(query()));
  });

  it('marks exactly the attention core ops as selective, and only they carry dropped bytes', () => {
    const ops = layerOps(model, { actBytes: 2 });
    expect(ops.filter((o) => o.selective).map((o) => o.name)).toEqual(['attn.scores', 'attn.softmax', 'attn.dropout', 'attn.values']);
    expect(ops.filter((o) => o.selectiveSaved !== undefined && !(o.selectiveSaved.k === 'num' && o.selectiveSaved.v === 0)).map((o) => o.name))
      .toEqual(['attn.softmax', 'attn.dropout', 'attn.values']);
  });
});
