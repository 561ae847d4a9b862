import { describe, expect, it } from 'vitest';
import { type ModelSpec, getModel, parseModelSpec } from '@mist/core';
import { ParamStore, Stage, TransformerLayer, layerParamDecls } from './index';
import { directionalCheck } from './testing/fd';
import { LocalTpGroup } from './testing/local-tp';

const batch = 2, seq = 16, T = batch * seq;
const tokens = Int32Array.from({ length: T }, (_, i) => (i * 37 + 11) % 256);
const targets = Int32Array.from({ length: T }, (_, i) => (i * 53 + 7) % 256);
const input = { batch, seq, tokens, targets };

const falconTiny: ModelSpec = parseModelSpec({
  name: 'falcon-tiny', family: 'falcon', layers: 2, hidden: 64, heads: 4, kvHeads: 1, ffnHidden: 128, vocab: 256, maxSeq: 64,
  norm: 'layernorm', activation: 'gelu', positional: 'rope', tiedEmbeddings: true, bias: false, parallelAttention: true,
});

/** Loss gradient by backward, then a directional finite-difference check of every tensor (the dropout draws fixed). */
async function gradCheckStage(stage: Stage): Promise<void> {
  stage.zeroGrads();
  const dropout = stage.model.dropout > 0 ? { step: 3, firstSample: 4 } : undefined;
  const f = await stage.forward(input, { gradScale: 1, dropout }); // gradient of the summed loss
  await stage.backward(f.context!);
  // A training forward (the same masks) that is never followed by a backward leaves the gradients alone.
  const loss = async (): Promise<number> => (await stage.forward(input, dropout ? { dropout } : { train: false })).lossSum;
  for (const e of stage.paramEntries) {
    const r = await directionalCheck(e.name, stage.params, stage.grads, e.offset, e.size, loss);
    if (e.name.endsWith('attn.bk')) {
      // A key bias shifts every score of a query by the same amount: softmax ignores it.
      expect(r.analytic, e.name).toBeLessThan(1e-5);
    } else {
      expect(r.relError, `${e.name} (|g| = ${r.analytic})`).toBeLessThan(1e-3);
    }
  }
}

describe('stage gradients match finite differences', () => {
  it('gpt-tiny, the full model', async () => {
    await gradCheckStage(new Stage({ model: getModel('gpt-tiny'), seed: 1 }));
  });
  it('llama-tiny, the full model (RMSNorm, RoPE, GQA, SwiGLU, untied head)', async () => {
    await gradCheckStage(new Stage({ model: getModel('llama-tiny'), seed: 2 }));
  });
  it('a falcon-style parallel block with multi-query attention', async () => {
    await gradCheckStage(new Stage({ model: falconTiny, seed: 3 }));
  });
  it('gpt-tiny with dropout 0.1 (embedding, attention probabilities, residual branches), a checkpointed layer among them', async () => {
    await gradCheckStage(new Stage({ model: { ...getModel('gpt-tiny'), dropout: 0.1 }, seed: 11, ckptLayers: 2 }));
  });

  it('one layer on its own, input gradient included', async () => {
    const model = getModel('llama-tiny');
    const store = new ParamStore(layerParamDecls(model, 1), { seed: 4, tp: 1, tpRank: 0 });
    const layer = new TransformerLayer({ model, index: 1, tp: 1, tpRank: 0, checkpoint: false }, store);
    const H = model.hidden;
    const x = Float32Array.from({ length: T * H }, (_, i) => Math.sin(i * 0.37));
    const w = Float32Array.from({ length: T * H }, (_, i) => Math.cos(i * 0.11));
    const { saved } = await layer.forward(x, batch, seq, true);
    const dx = await layer.backward(saved!, w);
    const loss = async (): Promise<number> => {
      const { y } = await layer.forward(x, batch, seq, false);
      let s = 0;
      for (let i = 0; i < y.length; i++) s += w[i] * y[i];
      return s;
    };
    for (const e of store.entries) {
      const r = await directionalCheck(e.name, store.params, store.grads, e.offset, e.size, loss);
      expect(r.relError, e.name).toBeLessThan(1e-3);
    }
    const rx = await directionalCheck('x', x, dx, 0, x.length, loss);
    expect(rx.relError).toBeLessThan(1e-3);
  });
});

describe('stage behaviour', () => {
  it('forward-only gives exactly the training forward loss', async () => {
    const stage = new Stage({ model: getModel('gpt-tiny'), seed: 5 });
    const train = await stage.forward(input);
    const evalOnly = await stage.forward(input, { train: false });
    expect(evalOnly.context).toBeNull();
    expect(evalOnly.loss).toBe(train.loss);
    expect(train.loss!).toBeGreaterThan(Math.log(256) - 0.1); // initial loss near ln(vocab)
    expect(train.loss!).toBeLessThan(Math.log(256) + 0.1);
    const logits = await stage.forward({ batch, seq, tokens }, { train: false });
    expect(logits.logits!.length).toBe(T * 256);
  });

  it('activation checkpointing gives bit-identical gradients', async () => {
    const grads = async (ckptLayers: number): Promise<Float32Array> => {
      const stage = new Stage({ model: getModel('llama-tiny'), seed: 6, ckptLayers });
      const f = await stage.forward(input);
      await stage.backward(f.context!);
      return stage.grads.slice();
    };
    const plain = await grads(0), ckpt = await grads(3);
    expect(Buffer.from(ckpt.buffer).equals(Buffer.from(plain.buffer))).toBe(true);
  });

  it('the same seed gives the same parameters, another seed others', () => {
    const a = new Stage({ model: getModel('gpt-tiny'), seed: 7 }).params;
    const b = new Stage({ model: getModel('gpt-tiny'), seed: 7 }).params;
    const c = new Stage({ model: getModel('gpt-tiny'), seed: 8 }).params;
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    expect(Buffer.from(a.buffer).equals(Buffer.from(c.buffer))).toBe(false);
  });

  it('two pipeline stages give the loss and gradients of one stage', async () => {
    const model = getModel('gpt-tiny'); // tied embeddings: the last stage holds a copy of embed.wte
    const whole = new Stage({ model, seed: 9 });
    const f = await whole.forward(input);
    await whole.backward(f.context!);

    const first = new Stage({ model, seed: 9, layers: [0, 1] });
    const last = new Stage({ model, seed: 9, layers: [2, 3] });
    expect(first.hasHead || last.hasEmbedding).toBe(false);
    expect(last.tiedEmbeddingCopy).toBe(true);
    const f1 = await first.forward(input);
    const f2 = await last.forward({ batch, seq, hidden: f1.output!, targets });
    expect(f2.loss).toBe(f.loss);
    const dHidden = await last.backward(f2.context!);
    expect(await first.backward(f1.context!, dHidden!)).toBeNull();
    for (const e of whole.paramEntries) {
      const parts = [first, last].filter((s) => s.paramEntries.some((p) => p.name === e.name));
      const sum = new Float32Array(e.size);
      for (const s of parts) s.grad(e.name).forEach((v, i) => (sum[i] += v));
      expect(Buffer.from(sum.buffer).equals(Buffer.from(whole.grad(e.name).slice().buffer)), e.name).toBe(true);
    }
  });

  /** tp = 2 ranks of `model` against one process: losses and every gradient (joined over the shards). */
  async function expectTpMatches(model: ModelSpec, sequenceParallel: boolean, ckptLayers = 0): Promise<LocalTpGroup> {
    const dropout = model.dropout > 0 ? { step: 2, firstSample: 6 } : undefined;
    {
      const ref = new Stage({ model, seed: 10 });
      const fr = await ref.forward(input, { dropout });
      await ref.backward(fr.context!);

      const group = new LocalTpGroup(2);
      const ranks = [0, 1].map((r) => new Stage({ model, seed: 10, tp: 2, tpRank: r, hooks: group.hooks(r), sequenceParallel, ckptLayers }));
      const results = await Promise.all(ranks.map(async (s) => {
        const f = await s.forward(input, { dropout });
        await s.backward(f.context!);
        return f.loss!;
      }));
      expect(Math.abs(results[0] - fr.loss!)).toBeLessThan(1e-5);
      expect(results[1]).toBe(results[0]);
      for (const e of ranks[0].paramEntries) {
        const full = ref.grad(e.name);
        const [g0, g1] = ranks.map((s) => s.grad(e.name));
        let joined: Float32Array;
        if (e.shard === 'none') {
          joined = g0;
          expect(Array.from(g1)).toEqual(Array.from(g0));
        } else if (e.shard === 'rows' || e.localShape.length === 1) {
          joined = Float32Array.from([...g0, ...g1]);
        } else {
          const [rows, cols] = e.localShape as [number, number];
          joined = new Float32Array(rows * cols * 2);
          for (let r = 0; r < rows; r++) {
            joined.set(g0.subarray(r * cols, (r + 1) * cols), r * 2 * cols);
            joined.set(g1.subarray(r * cols, (r + 1) * cols), r * 2 * cols + cols);
          }
        }
        let num = 0, den = 0;
        for (let i = 0; i < full.length; i++) {
          num += (joined[i] - full[i]) ** 2;
          den += full[i] ** 2;
        }
        // (the floor covers attn.bk, whose gradient is zero up to rounding)
        expect(Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-3), `${model.name} ${e.name}`).toBeLessThan(1e-4);
      }
      return group;
    }
  }

  it('tensor parallelism (tp = 2, Megatron column/row split) reproduces tp = 1', async () => {
    for (const name of ['gpt-tiny', 'llama-tiny']) {
      const model = getModel(name);
      const group = await expectTpMatches(model, false);
      // 2 forward + 2 backward all-reduces per layer; the vocab-parallel embedding's sum, the
      // loss's max and sums, the head's input gradient
      expect(group.log.length).toBe(4 * model.layers + 4);
      expect(group.log.filter((s) => s.layer < 0 || s.layer >= model.layers).map((s) => s.point).sort())
        .toEqual(['embed-out', 'head-in-grad', 'loss-max', 'loss-sum']);
    }
  });

  it('with dropout, tp = 2 draws the masks of tp = 1 (heads split over the ranks)', async () => {
    await expectTpMatches({ ...getModel('gpt-tiny'), dropout: 0.1 }, false);
  });

  it('sequence parallelism (tp = 2): gathers into and scatters out of the TP regions, and reproduces tp = 1', async () => {
    for (const model of [{ ...getModel('gpt-tiny'), dropout: 0.1 }, getModel('llama-tiny'), { ...falconTiny, kvHeads: 2 }, { ...falconTiny, kvHeads: 2, parallelAttentionTwoNorms: true }]) {
      const group = await expectTpMatches(model, true, 1);
      const at = (layer: number): string[] => group.log.map((s, i) => (s.layer === layer ? `${group.kinds[i]}:${s.point}` : '')).filter(Boolean);
      if (model.parallelAttention) continue;
      // layer 1 (not checkpointed): forward gather/scatter per region, backward the gather of each saved GEMM input, the mirrored scatter/gather, the replicated gradients
      expect(at(1)).toEqual([
        'allGather:attn-in-grad', 'reduceScatter:attn-out', 'allGather:mlp-in-grad', 'reduceScatter:mlp-out',
        'allGather:mlp-out', 'allGather:mlp-in-grad', 'reduceScatter:mlp-in-grad', 'allGather:attn-out', 'allGather:attn-in-grad', 'reduceScatter:attn-in-grad',
        'allReduce:sp-grads',
      ]);
      expect(at(-1)).toEqual(['reduceScatter:embed-out', 'allGather:embed-out']);
    }
  });

  it('dropout: a step draws its own masks, evaluation none, and training a dropout model without a draw is refused', async () => {
    const model = { ...getModel('gpt-tiny'), dropout: 0.1 };
    const stage = new Stage({ model, seed: 12 });
    const lossAt = async (step: number, firstSample = 0): Promise<number> => (await stage.forward(input, { dropout: { step, firstSample } })).loss!;
    const evaluated = (await stage.forward(input, { train: false })).loss!;
    const a = await lossAt(1), again = await lossAt(1), b = await lossAt(2), c = await lossAt(1, 2);
    expect(again).toBe(a);
    expect(new Set([a, b, c, evaluated]).size).toBe(4);
    await expect(stage.forward(input)).rejects.toThrow(/needs ForwardOptions.dropout/);
  });

  it('explains what it cannot do', () => {
    expect(() => new Stage({ model: getModel('llama-tiny'), seed: 1, tp: 4, tpRank: 0, hooks: { allReduce: () => undefined } }))
      .toThrow(/not implemented: tp=4 larger than the 2 key\/value heads/);
    expect(() => new Stage({ model: getModel('gpt-tiny'), seed: 1, tp: 2, tpRank: 0 })).toThrow(/needs TP hooks/);
    expect(() => new Stage({ model: getModel('gpt-tiny'), seed: 1, layers: [2, 5] })).toThrow(/must lie within 0..3/);
  });
});
