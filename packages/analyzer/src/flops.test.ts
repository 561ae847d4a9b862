import { getModel, parseTrainingSpec } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { modelFlopsPerIteration, opGraphFlopsPerIteration } from './flops';

// Narayanan et al. 2021, Sec. 5.1 (with full recomputation).
function megatron96(B: number, s: number, l: number, h: number, V: number): number {
  return 96 * B * s * l * h * h * (1 + s / (6 * h) + V / (16 * l * h));
}

describe('FLOPs per iteration', () => {
  const training = parseTrainingSpec({ globalBatch: 512, seqLen: 2048, flashAttention: false });

  it('GPT op graph within 1% of 96Bslh^2(1 + s/(6h) + V/(16lh)) with full recompute', () => {
    for (const name of ['gpt3-1.3b', 'gpt3-13b', 'gpt3-175b']) {
      const m = getModel(name);
      const want = megatron96(512, 2048, m.layers, m.hidden, m.vocab);
      const got = opGraphFlopsPerIteration(m, training, { ckptLayers: m.layers });
      expect(Math.abs(got / want - 1)).toBeLessThan(0.01);
      expect(modelFlopsPerIteration(m, training, { fullRecompute: true }) / want).toBeCloseTo(1, 12);
    }
  });

  it('without recompute the 96 becomes 72 (no extra forward of the layers)', () => {
    const m = getModel('gpt3-13b');
    const { layers: l, hidden: h, vocab: V } = m;
    const want72 = 72 * 512 * 2048 * l * h * h * (1 + 2048 / (6 * h) + V / (12 * l * h));
    expect(modelFlopsPerIteration(m, training) / want72).toBeCloseTo(1, 12);
    expect(Math.abs(opGraphFlopsPerIteration(m, training) / want72 - 1)).toBeLessThan(0.01);
    const extraForward = 24 * 512 * 2048 * l * h * h * (1 + 2048 / (6 * h));
    expect(modelFlopsPerIteration(m, training, { fullRecompute: true }) - modelFlopsPerIteration(m, training))
      .toBeCloseTo(extraForward, -6);
  });

  it('llama counts its SwiGLU and grouped-query matmuls', () => {
    const m = getModel('llama2-70b');
    const B = 64;
    const s = 4096;
    const t = parseTrainingSpec({ globalBatch: B, seqLen: s });
    const h = m.hidden;
    const kv = (m.kvHeads / m.heads) * h;
    // per layer forward: QKV 2Bs h (h + 2kv), attention 4Bs^2h, proj 2Bsh^2, MLP 3 * 2Bs h f
    const layer = 2 * B * s * h * (h + 2 * kv) + 4 * B * s * s * h + 2 * B * s * h * h + 6 * B * s * h * m.ffnHidden;
    const want = 3 * (m.layers * layer + 2 * B * s * h * m.vocab);
    expect(modelFlopsPerIteration(m, t) / want).toBeCloseTo(1, 12);
  });
});
