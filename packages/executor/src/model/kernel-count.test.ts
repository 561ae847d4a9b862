// The kernels one layer really launches, forward and backward, counted by the native kernel trace,
// equal the launches core's block description declares (blockLaunches: what the analyzer charges a
// launch cost for), for each family of the catalog: gpt, llama, falcon's parallel block with one
// and with two norms.
import { type BlockDescription, blockLaunches, embeddingBlock, getModel, headBlock, layerBlock, type ModelSpec, modelCatalog, opRuns, parseModelSpec, selectiveSet } from '@mist/core';
import { startKernelTrace, stopKernelTrace } from '@mist/native';
import { describe, expect, it } from 'vitest';
import { Embedding, embeddingParamDecls } from './embedding';
import { Head, headParamDecls } from './head';
import { ParamStore } from './params';
import { TransformerLayer, layerParamDecls } from './layer';

/** A small model with a catalog model's structure (norm, activation, positions, bias, parallel block). */
function tinyLike(name: string): ModelSpec {
  const m = getModel(name);
  return parseModelSpec({
    name: `${name}-structure`, family: m.family, layers: 2, hidden: 64, heads: 4, kvHeads: m.kvHeads === m.heads ? 4 : 1,
    ffnHidden: 128, vocab: 256, maxSeq: 64, norm: m.norm, activation: m.activation, positional: m.positional,
    tiedEmbeddings: m.tiedEmbeddings, bias: m.bias, parallelAttention: m.parallelAttention, parallelAttentionTwoNorms: m.parallelAttentionTwoNorms,
  });
}

interface Counts {
  all: number;
  matmul: number;
}

function traced(): Counts {
  const entries = stopKernelTrace().filter((e) => e.op !== '(batch)');
  return { all: entries.reduce((n, e) => n + e.calls, 0), matmul: entries.find((e) => e.op === 'matmul')?.calls ?? 0 };
}

/**
 * Launches the description declares for the ops this executor runs: the fused attention (its
 * dropout inside the kernel), residual dropout fused with the add, and the loss's gradient written by its forward kernel (the CPU profile
 * marks cross_entropy fusedIntoForward, so the analyzer charges its backward nothing).
 */
function declared(model: ModelSpec, block: BlockDescription = layerBlock(model), flash = true): { forward: Counts; backward: Counts } {
  const launches = blockLaunches(block);
  const forward = { all: 0, matmul: 0 }, backward = { all: 0, matmul: 0 };
  for (const op of block.ops) {
    // The unfused attention's dropout runs as its own kernel; the embedding's is not drawn here.
    if (!opRuns(op, flash) || (op.kind === 'dropout' && op.when !== 'noFlash')) continue;
    const l = launches.get(op.name)!;
    forward.all += l.forward + l.forwardAux;
    if (op.kind !== 'crossEntropy') backward.all += l.backward + l.backwardAux;
    if (op.kind === 'linear') {
      forward.matmul += l.forward;
      backward.matmul += l.backward;
    }
  }
  return { forward, backward };
}

const families: Array<[string, ModelSpec]> = [
  ['gpt', getModel('gpt-tiny')],
  ['gpt with dropout 0.1', { ...getModel('gpt-tiny'), dropout: 0.1 }],
  ['llama', getModel('llama-tiny')],
  ['falcon, parallel block with one norm', tinyLike('falcon-7b')],
  ['falcon, parallel block with two norms', tinyLike('falcon-40b')],
  ['nemotron (squared ReLU)', tinyLike('nemotron-4-15b')],
];

describe('kernels launched by one layer = launches of the block description', () => {
  it('covers every family and block structure of the catalog', () => {
    const structure = (m: ModelSpec): string => `${m.family}/${m.parallelAttention}/${m.parallelAttentionTwoNorms}`;
    const covered = new Set(families.map(([, m]) => structure(m)));
    // A mixture of experts is left out: the CPU executor launches one GEMM per local expert that
    // received rows (the description counts one grouped GEMM per weight), which depends on the routing.
    for (const m of modelCatalog().filter((x) => !x.moe)) expect(covered.has(structure(m)), m.name).toBe(true);
  });

  for (const [label, model] of families) {
    it(label, async () => {
      const store = new ParamStore(layerParamDecls(model, 0), { seed: 1, tp: 1, tpRank: 0 });
      const layer = new TransformerLayer({ model, index: 0, tp: 1, tpRank: 0, checkpoint: false }, store);
      const batch = 2, seq = 8;
      const x = Float32Array.from({ length: batch * seq * model.hidden }, (_, i) => Math.sin(i));
      const want = declared(model);

      startKernelTrace();
      const { y, saved } = await layer.forward(x, batch, seq, true, { step: 1, firstSample: 0 });
      expect(traced()).toEqual(want.forward);

      startKernelTrace();
      await layer.backward(saved!, Float32Array.from(y, (_, i) => Math.cos(i)));
      expect(traced()).toEqual(want.backward);
    });
  }

  for (const [label, model] of families) {
    it(`${label}, unfused attention (flashAttention false), and with selective recompute`, async () => {
      const batch = 2, seq = 8;
      const x = Float32Array.from({ length: batch * seq * model.hidden }, (_, i) => Math.sin(i));
      const want = declared(model, layerBlock(model), false);
      // Selective recompute runs again, at the start of the backward, the selective ops that write
      // what it dropped (not the values, whose output the projection keeps).
      const set = selectiveSet(layerBlock(model), false);
      const launches = blockLaunches(layerBlock(model));
      const rerun = layerBlock(model).ops.filter((o) => set.ops.includes(o.name) && o.kind !== 'values')
        .reduce((n, o) => n + launches.get(o.name)!.forward + launches.get(o.name)!.forwardAux, 0);
      for (const selectiveRecompute of [false, true]) {
        const store = new ParamStore(layerParamDecls(model, 0), { seed: 1, tp: 1, tpRank: 0 });
        const layer = new TransformerLayer({ model, index: 0, tp: 1, tpRank: 0, checkpoint: false, flashAttention: false, selectiveRecompute }, store);
        startKernelTrace();
        const { y, saved } = await layer.forward(x, batch, seq, true, { step: 1, firstSample: 0 });
        expect(traced()).toEqual(want.forward);
        startKernelTrace();
        await layer.backward(saved!, Float32Array.from(y, (_, i) => Math.cos(i)));
        expect(traced()).toEqual({ all: want.backward.all + (selectiveRecompute ? rerun : 0), matmul: want.backward.matmul });
      }
    });
  }

  it('a checkpointed layer runs the forward again inside its backward', async () => {
    const model = getModel('gpt-tiny');
    const store = new ParamStore(layerParamDecls(model, 0), { seed: 1, tp: 1, tpRank: 0 });
    const layer = new TransformerLayer({ model, index: 0, tp: 1, tpRank: 0, checkpoint: true }, store);
    const x = Float32Array.from({ length: 2 * 8 * model.hidden }, (_, i) => Math.sin(i));
    const { y, saved } = await layer.forward(x, 2, 8, true);
    const want = declared(model);
    startKernelTrace();
    await layer.backward(saved!, y.slice());
    expect(traced().all).toBe(want.forward.all + want.backward.all);
  });

  for (const name of ['gpt-tiny', 'llama-tiny']) {
    it(`${name}: the embedding and the head`, async () => {
      const model = getModel(name);
      const batch = 2, seq = 8, T = batch * seq;
      const tokens = Int32Array.from({ length: T }, (_, i) => (i * 37) % model.vocab);
      const store = new ParamStore([...embeddingParamDecls(model), ...headParamDecls(model, true)], { seed: 1, tp: 1, tpRank: 0 });
      const embedding = new Embedding(model, store);
      const head = new Head(model, store);
      const emb = declared(model, embeddingBlock(model)), hd = declared(model, headBlock(model));

      startKernelTrace();
      const { x } = await embedding.forward(tokens, seq);
      expect(traced()).toEqual(emb.forward);
      startKernelTrace();
      const r = await head.forward(x, tokens, true, 1);
      expect(traced()).toEqual(hd.forward);
      startKernelTrace();
      const dx = await head.backward(r.saved!);
      expect(traced()).toEqual(hd.backward);
      startKernelTrace();
      await embedding.backward(tokens, seq, dx);
      expect(traced()).toEqual(emb.backward);
    });
  }
});
