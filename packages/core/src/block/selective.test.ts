import { describe, expect, it } from 'vitest';
import { getModel, modelCatalog } from '../model-catalog';
import { type DimEnv, evalDim } from './dim';
import { layerBlock } from './layer-block';
import { opCheckpointSet, selectiveSet } from './selective';

describe('the selective-recompute set of the layer block', () => {
  it('is the unfused attention core; it drops the softmax output, its dropout output and mask, and keeps q, k, v and the attention output', () => {
    const gpt = layerBlock(getModel('gpt3-125m'));
    const set = selectiveSet(gpt, false);
    expect(set.ops).toEqual(['attn.scores', 'attn.softmax', 'attn.dropout', 'attn.values']);
    expect([...set.dropped].sort()).toEqual(['attn.mask', 'pdrop', 'probs']);
  });

  it('is empty with flash attention for every catalog model (the kernel keeps no s x s tensor)', () => {
    for (const m of modelCatalog()) expect(selectiveSet(layerBlock(m), true), m.name).toEqual({ ops: [], dropped: [] });
  });

  it("drops 5as/h bytes per sbh with dropout and 2as/h without (Korthikanti et al. 2022, Sec. 5)", () => {
    const env: DimEnv = { b: 2, s: 64, h: 64, a: 4, k: 4, f: 256, V: 100, t: 1, sp: 0, fa: 0 };
    const bytes = (model: string): number => {
      const block = layerBlock(getModel(model));
      return selectiveSet(block, false).dropped.reduce((n, t) => {
        const x = block.tensors[t];
        return n + evalDim(x.rows, env) * evalDim(x.width, env) * (x.dtype === 'mask' ? 1 : 2);
      }, 0);
    };
    const sbh = env.s * env.b * env.h;
    expect(getModel('gpt3-125m').dropout).toBeGreaterThan(0);
    expect(bytes('gpt3-125m') / sbh).toBe((5 * env.a * env.s) / env.h);
    const noDropout = modelCatalog().find((m) => m.dropout === 0 && !m.parallelAttention && m.positional !== 'alibi');
    expect(noDropout).toBeDefined();
    expect(bytes(noDropout!.name) / sbh).toBe((2 * env.a * env.s) / env.h);
  });
});

describe("torchtitan's per-op selective checkpointing of the layer block", () => {
  it('keeps the input, wq, wv, w1 and w2 products and the flash output; recomputes wk, wo, w3 and every other op (Llama)', () => {
    const set = opCheckpointSet(layerBlock(getModel('llama3.1-8b')), true);
    // GEMMs in forward order: wq (1, kept), wk (2), wv (3, kept), wo (4), gate w1 (5, kept), up w3 (6), down w2 (7, kept).
    expect([...set.kept].sort()).toEqual(['attn', 'gate', 'lse', 'mo', 'q', 'v', 'x'].sort());
    expect(set.recomputedGemms.get('attn.qkv')).toEqual([1]);
    expect(set.recomputedGemms.get('attn.proj')).toEqual([0]);
    expect(set.recomputedGemms.get('mlp.fc1')).toEqual([1]);
    expect(set.recomputedGemms.get('mlp.fc2')).toEqual([]);
    expect(set.recomputed.has('attn.flash')).toBe(false);
    for (const op of ['norm.attn', 'attn.rope', 'mlp.swiglu', 'attn.residual', 'norm.mlp', 'mlp.residual']) expect(set.recomputed.has(op), op).toBe(true);
    expect(set.keptBy.get('norm.attn')).toEqual(['x']);
  });

  it('recomputes the unfused attention core (batched products are not in the save list)', () => {
    const set = opCheckpointSet(layerBlock(getModel('gpt3-125m')), false);
    for (const op of ['attn.scores', 'attn.softmax', 'attn.values']) expect(set.recomputed.has(op), op).toBe(true);
    expect(set.kept).not.toContain('probs');
  });
});
