// A model with squared-ReLU MLPs (Nemotron-4's activation) runs on the CPU executor: the layer runs
// the native squaredRelu kernels, and single-process training lowers the loss.
import { getModel, parseModelSpec } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { trainSingleProcess } from '../train';

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** llama-tiny's shape with Nemotron-4's block: LayerNorm, squared ReLU (two MLP matrices), RoPE, no bias. */
const nemotronTiny = parseModelSpec({
  ...getModel('llama-tiny'), name: 'nemotron-tiny', family: 'nemotron', norm: 'layernorm', activation: 'squared-relu', ffnHidden: 256,
});

describe('squared-ReLU MLPs in the executor', () => {
  it('train on the corpus: the loss falls well below ln(vocab)', async () => {
    const r = await trainSingleProcess({ model: nemotronTiny, steps: 60, seed: 5, globalBatch: 8, data: 'corpus' });
    expect(Math.abs(r.steps[0].loss - Math.log(256))).toBeLessThan(0.1);
    expect(r.steps.every((s) => Number.isFinite(s.loss))).toBe(true);
    expect(mean(r.steps.slice(-5).map((s) => s.loss))).toBeLessThan(0.7 * Math.log(256));
  });
});
