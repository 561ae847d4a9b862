// The layer keeps for backward exactly the tensors core's block description says its ops save
// (plus the norms' statistics), calls the TP hooks at the description's points, and refuses ops it
// does not run.
import { getModel, layerBlock, parseModelSpec } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { BlockRunner } from './block-runner';
import { TransformerLayer, layerParamDecls } from './layer';
import { ParamStore } from './params';
import { Scratch } from './scratch';
import { LocalTpGroup } from './testing/local-tp';

const batch = 2, seq = 8;

describe('a layer run from its block description', () => {
  it('keeps the tensors the description\'s ops save, and only its input when checkpointed', async () => {
    for (const name of ['gpt-tiny', 'llama-tiny']) {
      const model = getModel(name);
      const block = layerBlock(model);
      const saves = new Set(block.ops.filter((o) => o.when !== 'noFlash').flatMap((o) => o.saves));
      const wanted = [...saves].filter((t) => t !== block.input && block.tensors[t].dtype !== 'mask').sort();
      const x = Float32Array.from({ length: batch * seq * model.hidden }, (_, i) => Math.sin(i));
      for (const checkpoint of [false, true]) {
        const store = new ParamStore(layerParamDecls(model, 0), { seed: 1, tp: 1, tpRank: 0 });
        const layer = new TransformerLayer({ model, index: 0, tp: 1, tpRank: 0, checkpoint }, store);
        const { saved } = await layer.forward(x, batch, seq, true);
        expect(saved!.x).toBe(x);
        if (checkpoint) {
          expect(saved!.acts).toBeUndefined();
        } else {
          const kept = Object.entries(saved!.acts!).filter(([, v]) => v instanceof Float32Array).map(([k]) => k).sort();
          expect(kept, name).toEqual(wanted);
          const stats = Object.keys(saved!.acts!).filter((k) => !(saved!.acts![k] instanceof Float32Array));
          expect(stats).toEqual(block.ops.filter((o) => o.kind === 'norm').map((o) => o.name));
        }
      }
    }
  });

  it('calls the TP hooks at the description\'s entry and exit points (falcon with two norms: two backward sums)', async () => {
    const model = parseModelSpec({
      name: 'falcon-two-norms', family: 'falcon', layers: 2, hidden: 64, heads: 4, kvHeads: 2, ffnHidden: 128, vocab: 256, maxSeq: 64,
      norm: 'layernorm', activation: 'gelu', positional: 'rope', tiedEmbeddings: true, bias: false, parallelAttention: true, parallelAttentionTwoNorms: true,
    });
    const block = layerBlock(model);
    const group = new LocalTpGroup(2);
    const x = Float32Array.from({ length: batch * seq * model.hidden }, (_, i) => Math.cos(i));
    await Promise.all([0, 1].map(async (r) => {
      const store = new ParamStore(layerParamDecls(model, 1), { seed: 1, tp: 2, tpRank: r });
      const layer = new TransformerLayer({ model, index: 1, tp: 2, tpRank: r, checkpoint: false, hooks: group.hooks(r) }, store);
      const { y, saved } = await layer.forward(x, batch, seq, true);
      await layer.backward(saved!, y.slice());
    }));
    const exits = block.ops.flatMap((o) => (o.kind === 'tpExit' ? [o.point] : []));
    const entries = block.ops.flatMap((o) => (o.kind === 'tpEntry' ? [o.point] : [])).reverse();
    expect(group.log.map((s) => s.point)).toEqual([...exits, ...entries]);
  });

  it('refuses the ops of the embedding and the head, naming what it runs', () => {
    const model = getModel('gpt-tiny');
    const runner = new BlockRunner({
      model, block: { ...layerBlock(model), ops: [{ name: 'loss', kind: 'crossEntropy', points: [], inputs: ['x'], outputs: ['y'], saves: [] }] },
      index: 0, prefix: 'layers.0', tp: 1, tpRank: 0, sequenceParallel: false, seed: 1, store: new ParamStore(layerParamDecls(model, 0), { seed: 1, tp: 1, tpRank: 0 }), scratch: new Scratch(),
    });
    return expect(runner.forward(new Float32Array(batch * seq * model.hidden), batch, seq, false)).rejects.toThrow(/not implemented: block op loss \(crossEntropy\).*it runs norm, linear/);
  });
});
