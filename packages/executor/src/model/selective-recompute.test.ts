// Selective recompute (Korthikanti et al. 2022, Sec. 5) in the CPU executor. With the fused
// attention core's selective set is empty, so the switch is accepted and changes nothing. With the
// unfused attention (flashAttention false) the layer drops what the set names (the s x s
// probabilities, and with dropout their mask and the dropped-out probabilities) and runs the core
// again in backward: the same losses and gradients bit for bit, fewer saved tensors.
// The analyzer reads the same set.
import { getModel, layerBlock, selectiveSet } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { Stage, TransformerLayer, layerParamDecls, ParamStore } from './index';

const batch = 2, seq = 16, T = batch * seq;
const tokens = Int32Array.from({ length: T }, (_, i) => (i * 37 + 11) % 256);
const targets = Int32Array.from({ length: T }, (_, i) => (i * 53 + 7) % 256);
const input = { batch, seq, tokens, targets };

async function lossAndGrads(selectiveRecompute: boolean, flashAttention = true): Promise<{ loss: number; grads: Float32Array }> {
  const stage = new Stage({ model: { ...getModel('gpt-tiny'), dropout: 0.1 }, seed: 5, ckptLayers: 1, selectiveRecompute, flashAttention });
  stage.zeroGrads();
  const dropout = { step: 2, firstSample: 0 };
  const f = await stage.forward(input, { gradScale: 1, dropout });
  await stage.backward(f.context!);
  return { loss: f.lossSum, grads: Float32Array.from(stage.grads) };
}

async function keptTensors(model: ReturnType<typeof getModel>, selectiveRecompute: boolean, flashAttention: boolean): Promise<{ kept: string[]; dropped: readonly string[] }> {
  const x = Float32Array.from({ length: T * model.hidden }, (_, i) => Math.sin(i));
  const store = new ParamStore(layerParamDecls(model, 0), { seed: 1, tp: 1, tpRank: 0 });
  const layer = new TransformerLayer({ model, index: 0, tp: 1, tpRank: 0, checkpoint: false, selectiveRecompute, flashAttention }, store);
  const { saved } = await layer.forward(x, batch, seq, true, { step: 1, firstSample: 0 });
  return { kept: Object.keys(saved!.acts!).sort(), dropped: layer.selectiveDropped };
}

describe('selective recompute in the CPU executor', () => {
  it('has an empty selective set with the fused attention, for every model it runs', () => {
    for (const name of ['gpt-tiny', 'llama-tiny']) expect(selectiveSet(layerBlock(getModel(name)), true)).toEqual({ ops: [], dropped: [] });
  });

  for (const flash of [true, false]) {
    it(`gives bit-for-bit the losses and gradients of no selective recompute (${flash ? 'fused' : 'unfused'} attention, dropout on, a checkpointed layer among them)`, async () => {
      const off = await lossAndGrads(false, flash);
      const on = await lossAndGrads(true, flash);
      expect(on.loss).toBe(off.loss);
      expect(on.grads).toEqual(off.grads);
    });
  }

  it('the unfused attention gives the fused attention\'s loss and gradients (float rounding apart)', async () => {
    const fused = await lossAndGrads(false, true);
    const unfused = await lossAndGrads(true, false);
    expect(Math.abs(unfused.loss - fused.loss) / Math.abs(fused.loss)).toBeLessThan(1e-5);
    let d = 0, n = 0;
    for (let i = 0; i < fused.grads.length; i++) {
      d += (unfused.grads[i] - fused.grads[i]) ** 2;
      n += fused.grads[i] ** 2;
    }
    expect(Math.sqrt(d / n)).toBeLessThan(1e-4);
  });

  it('keeps the same tensors with the fused attention: nothing is dropped', async () => {
    const model = getModel('gpt-tiny');
    const on = await keptTensors(model, true, true), off = await keptTensors(model, false, true);
    expect(on.dropped).toEqual([]);
    expect(on.kept).toEqual(off.kept);
  });

  it('drops exactly core\'s selective set with the unfused attention (with and without dropout)', async () => {
    for (const model of [getModel('gpt-tiny'), { ...getModel('gpt-tiny'), dropout: 0.1 }, getModel('llama-tiny')]) {
      const set = selectiveSet(layerBlock(model), false);
      expect(set.dropped).toContain('probs');
      const on = await keptTensors(model, true, false), off = await keptTensors(model, false, false);
      expect(on.dropped).toEqual(set.dropped);
      expect(off.kept).toEqual(expect.arrayContaining([...set.dropped]));
      expect(on.kept).toEqual(off.kept.filter((t) => !set.dropped.includes(t)));
    }
  });
});
