// Selective recompute (Korthikanti et al. 2022, Sec. 5) in the CPU executor. The executor runs the
// fused attention only, which keeps no s x s tensor: core's selective set of that variant is empty,
// so the switch is accepted and changes nothing, neither losses and gradients nor what is kept.
// The analyzer reads the same set (its estimates with flash attention are unchanged by the switch).
import { getModel, layerBlock, selectiveSet } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { Stage, TransformerLayer, layerParamDecls, ParamStore } from './index';

const batch = 2, seq = 16, T = batch * seq;
const tokens = Int32Array.from({ length: T }, (_, i) => (i * 37 + 11) % 256);
const targets = Int32Array.from({ length: T }, (_, i) => (i * 53 + 7) % 256);
const input = { batch, seq, tokens, targets };

async function lossAndGrads(selectiveRecompute: boolean): Promise<{ loss: number; grads: Float32Array }> {
  const stage = new Stage({ model: { ...getModel('gpt-tiny'), dropout: 0.1 }, seed: 5, ckptLayers: 1, selectiveRecompute });
  stage.zeroGrads();
  const dropout = { step: 2, firstSample: 0 };
  const f = await stage.forward(input, { gradScale: 1, dropout });
  await stage.backward(f.context!);
  return { loss: f.lossSum, grads: Float32Array.from(stage.grads) };
}

describe('selective recompute in the CPU executor', () => {
  it('has an empty selective set with the fused attention it runs, for every model it runs', () => {
    for (const name of ['gpt-tiny', 'llama-tiny']) expect(selectiveSet(layerBlock(getModel(name)), true)).toEqual({ ops: [], dropped: [] });
  });

  it('gives bit-for-bit the losses and gradients of no selective recompute (dropout on, a checkpointed layer among them)', async () => {
    const off = await lossAndGrads(false);
    const on = await lossAndGrads(true);
    expect(on.loss).toBe(off.loss);
    expect(on.grads).toEqual(off.grads);
  });

  it('keeps the same tensors: nothing of the fused attention is dropped', async () => {
    const model = getModel('gpt-tiny');
    const x = Float32Array.from({ length: T * model.hidden }, (_, i) => Math.sin(i));
    const kept = async (selectiveRecompute: boolean): Promise<string[]> => {
      const store = new ParamStore(layerParamDecls(model, 0), { seed: 1, tp: 1, tpRank: 0 });
      const layer = new TransformerLayer({ model, index: 0, tp: 1, tpRank: 0, checkpoint: false, selectiveRecompute }, store);
      expect(layer.selectiveDropped).toEqual([]);
      const { saved } = await layer.forward(x, batch, seq, true);
      return Object.keys(saved!.acts!).sort();
    };
    expect(await kept(true)).toEqual(await kept(false));
  });
});
