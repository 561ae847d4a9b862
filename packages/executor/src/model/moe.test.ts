// The mixture-of-experts MLP of the layer runner (moe.ts): its gradients — the experts', the
// router's through the gate probabilities, and the layer input's through both the router and the
// dispatched rows — match finite differences, routing is dropless and unbalanced (experts receive
// different row counts), and the stacked weights become one parameter per local expert.
import { layerBlock, type ModelSpec, parseModelSpec } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { expertParamName, localExperts } from './moe';
import { ParamStore, TransformerLayer, layerParamDecls } from './index';
import { directionalCheck } from './testing/fd';

const batch = 2, seq = 8, T = batch * seq;

/** The finite-difference step along the normalised gradient: the loss moves well above float32 noise, no token changes its experts. */
const FD_STEP = 0.02;
/** The router's initial weights scaled up, so that the gate is far from uniform (its logits start near 0). */
const ROUTER_SCALE = 40;

const swigluMoe: ModelSpec = parseModelSpec({
  name: 'moe-swiglu', family: 'mixtral', layers: 2, hidden: 32, heads: 4, kvHeads: 2, ffnHidden: 48, vocab: 64, maxSeq: 32,
  norm: 'rmsnorm', activation: 'swiglu', positional: 'rope', tiedEmbeddings: false, bias: false, moe: { experts: 4, topK: 2 },
});

const geluMoe: ModelSpec = parseModelSpec({
  name: 'moe-gelu', family: 'gpt', layers: 2, hidden: 32, heads: 4, kvHeads: 4, ffnHidden: 64, vocab: 64, maxSeq: 32,
  norm: 'layernorm', activation: 'gelu', positional: 'learned', tiedEmbeddings: true, bias: true, moe: { experts: 3, topK: 2, ffnHidden: 40 },
});

/** A layer whose router is scaled by ROUTER_SCALE. */
function moeLayer(model: ModelSpec, seed: number): { layer: TransformerLayer; store: ParamStore } {
  const store = new ParamStore(layerParamDecls(model, 1), { seed, tp: 1, tpRank: 0 });
  const router = store.param('layers.1.moe.router');
  for (let i = 0; i < router.length; i++) router[i] *= ROUTER_SCALE;
  return { layer: new TransformerLayer({ model, index: 1, tp: 1, tpRank: 0, checkpoint: false }, store), store };
}

describe('mixture-of-experts layer', () => {
  // Finite differences need the gate's choices fixed: every loss evaluation checks that no token
  // changed its experts (the top-k selection has no gradient; a change would make the loss jump).
    // Seeds whose tokens have no near-tie at the k-th expert (the check below asserts it).
  const cases: Array<[ModelSpec, number, number, number]> = [[swigluMoe, 1, 6, 4], [geluMoe, 2, 8, 3]];
  for (const [model, b, s, seed] of cases) {
    it(`${model.name} (top-${model.moe?.topK} of ${model.moe?.experts}): gradients of the router, experts, norm and input match finite differences`, async () => {
      const { layer, store } = moeLayer(model, seed);
      const H = model.hidden, n = b * s * H;
      const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37));
      const w = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.11));
      const { saved } = await layer.forward(x, b, s, true);
      const K = model.moe?.topK ?? 1;
      // Each token's set of experts (their order among the topK does not change the output).
      const chosen = (index: Float32Array): string[] => Array.from({ length: index.length / K }, (_, t) => [...index.subarray(t * K, (t + 1) * K)].sort().join());
      const routing = chosen(saved!.acts!['moe.index'] as Float32Array);
      const dx = await layer.backward(saved!, w);
      const loss = async (): Promise<number> => {
        const { y, saved: again } = await layer.forward(x, b, s, true);
        expect(chosen(again!.acts!['moe.index'] as Float32Array), 'the gate chose other experts under the step').toEqual(routing);
        let sum = 0;
        for (let i = 0; i < y.length; i++) sum += w[i] * y[i];
        return sum;
      };
      const checked = store.entries.filter((e) => /\.(moe\.|norm2\.)/.test(e.name));
      expect(checked.length).toBe(2 + 1 + (model.bias ? 2 : 1) * (model.activation === 'swiglu' ? 3 : 2) * (model.moe?.experts ?? 0) - (model.norm === 'rmsnorm' ? 1 : 0));
      for (const e of checked) {
        const r = await directionalCheck(e.name, store.params, store.grads, e.offset, e.size, loss, FD_STEP);
        expect(r.relError, `${e.name} (|g| = ${r.analytic})`).toBeLessThan(5e-3);
        expect(r.analytic, `${e.name} has a gradient`).toBeGreaterThan(0);
      }
      const rx = await directionalCheck('x', x, dx, 0, x.length, loss, FD_STEP);
      expect(rx.relError).toBeLessThan(5e-3);
    });
  }

  it('routes dropless and unbalanced: each token to topK distinct experts, probabilities summing to 1, unequal rows per expert', async () => {
    const { layer } = moeLayer(swigluMoe, 5);
    const x = Float32Array.from({ length: T * swigluMoe.hidden }, (_, i) => Math.sin(i * 0.71) + Math.cos(i * 0.05));
    const { saved } = await layer.forward(x, batch, seq, true);
    const acts = saved!.acts!;
    const probs = acts['moe.probs'] as Float32Array, index = acts['moe.index'] as Float32Array, counts = acts['moe.recvCounts'] as Float32Array;
    const K = 2;
    for (let n = 0; n < T; n++) {
      expect(index[n * K]).not.toBe(index[n * K + 1]);
      expect(probs[n * K] + probs[n * K + 1]).toBeCloseTo(1, 6);
      expect(probs[n * K]).toBeGreaterThanOrEqual(probs[n * K + 1]);
    }
    // Every copy reaches an expert (no capacity, nothing dropped), and the experts get different counts.
    expect([...counts].reduce((a, b) => a + b, 0)).toBe(T * K);
    expect(new Set(counts).size).toBeGreaterThan(1);
  });

  it('stacked expert weights are one parameter per expert this rank holds, the same values whatever ep is', () => {
    const one = new ParamStore(layerParamDecls(swigluMoe, 0), { seed: 9, tp: 1, tpRank: 0 });
    const half = new ParamStore(layerParamDecls(swigluMoe, 0, { ep: 2, rank: 1 }), { seed: 9, tp: 1, tpRank: 0 });
    const stacked = layerBlock(swigluMoe).weights.filter((w) => w.experts).map((w) => `layers.0.${w.name}`);
    expect(stacked.sort()).toEqual(['layers.0.moe.wd', 'layers.0.moe.wg', 'layers.0.moe.wu']);
    for (const name of stacked) {
      for (let e = 0; e < 4; e++) expect(one.has(expertParamName(name, e))).toBe(true);
      expect(half.has(expertParamName(name, 1))).toBe(false);
      for (const e of [2, 3]) expect([...half.param(expertParamName(name, e))]).toEqual([...one.param(expertParamName(name, e))]);
    }
    expect(half.param('layers.0.moe.router')).toEqual(one.param('layers.0.moe.router'));
    expect(() => localExperts(4, 3, 0)).toThrow(/allowed: a divisor of the model's 4 experts/);
  });
});
