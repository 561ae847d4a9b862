import { describe, expect, it } from 'vitest';
import { getModel, modelCatalog } from '../model-catalog';
import { embeddingParams, headParams, layerParams, parseModelSpec } from '../model';
import { dadd, dchoose, ddiv, dmax, dmul, dnamed, dsub, dsym, type DimEnv, evalDim } from './dim';
import { layerBlock } from './layer-block';
import { blockLaunches } from './launches';
import { embeddingBlock, headBlock } from './pre-post-blocks';
import type { BlockDescription } from './types';

const env = (over: Partial<DimEnv> = {}): DimEnv => ({ b: 2, s: 16, h: 64, a: 4, k: 2, f: 128, V: 256, t: 1, sp: 0, fa: 1, ...over });

describe('symbolic sizes', () => {
  it('evaluate every node kind', () => {
    const d = dnamed('x', dadd(dmul(dsym('b'), dsym('s')), dsub(dsym('h'), 4), ddiv(dsym('f'), dsym('t')), dmax(dsym('k'), 3), dchoose(dsym('sp'), 100, 1000)));
    expect(evalDim(d, env({ t: 2 }))).toBe(32 + 60 + 64 + 3 + 1000);
    expect(evalDim(d, env({ sp: 1 }))).toBe(32 + 60 + 128 + 3 + 100);
  });
});

/** Dataflow checks: every tensor read is the input or written earlier; weights declared once and all used. */
function checkDataflow(block: BlockDescription): void {
  const written = new Set([block.input, ...(block.data ?? [])]);
  const used = new Set<string>();
  for (const op of block.ops) {
    for (const t of [...op.inputs, ...op.saves]) {
      expect(block.tensors[t], `${op.name} reads ${t}`).toBeDefined();
      if (op.saves.includes(t) && op.outputs.includes(t)) continue;
      expect(written.has(t), `${op.name} reads ${t} before it is written`).toBe(true);
    }
    for (const t of op.outputs) {
      expect(block.tensors[t], `${op.name} writes ${t}`).toBeDefined();
      written.add(t);
    }
    const names = op.kind === 'linear' ? [...op.weights, ...op.biases] : op.kind === 'tpExit' ? op.biases
      : op.kind === 'norm' ? [op.gamma, ...(op.beta ? [op.beta] : [])]
        : op.kind === 'embedding' ? [op.wte, ...(op.wpe ? [op.wpe] : [])] : [];
    names.forEach((n) => used.add(n));
  }
  expect(written.has(block.output)).toBe(true);
  const declared = block.weights.map((w) => w.name);
  expect(new Set(declared).size).toBe(declared.length);
  expect([...used].sort()).toEqual([...declared].sort());
}

describe('the layer block of every catalog model', () => {
  it('is consistent dataflow whose weights are all used', () => {
    for (const m of modelCatalog()) checkDataflow(layerBlock(m));
  });

  it('declares exactly core\'s layerParams parameters', () => {
    for (const m of modelCatalog()) {
      const e = env({ h: m.hidden, a: m.heads, k: m.kvHeads, f: m.ffnHidden, V: m.vocab });
      const n = layerBlock(m).weights.reduce((acc, w) => acc + (w.experts ?? 1) * w.shape.reduce<number>((p, d) => p * evalDim(d, e), 1), 0);
      expect(n, m.name).toBe(layerParams(m));
    }
  });

  it('has two tensor-parallel regions per sequential layer and one (entered once per norm) per parallel layer', () => {
    const points = (name: string): string[] => layerBlock(getModel(name)).ops.filter((o) => o.kind === 'tpEntry' || o.kind === 'tpExit')
      .map((o) => `${o.kind}:${(o as { point: string }).point}`);
    expect(points('gpt-tiny')).toEqual(['tpEntry:attn-in-grad', 'tpExit:attn-out', 'tpEntry:mlp-in-grad', 'tpExit:mlp-out']);
    expect(points('falcon-7b')).toEqual(['tpEntry:parallel-in-grad', 'tpExit:parallel-out']);
    expect(points('falcon-40b')).toEqual(['tpEntry:attn-in-grad', 'tpEntry:mlp-in-grad', 'tpExit:parallel-out']);
  });

  it('keeps each op\'s inputs for backward and drops the attention scores with flash attention', () => {
    const gpt = layerBlock(getModel('gpt-tiny'));
    const kept = (flash: boolean): string[] => [...new Set(gpt.ops.filter((o) => !o.when || (o.when === 'flash') === flash).flatMap((o) => o.saves))];
    expect(kept(true)).toEqual(['x', 'h1', 'q', 'k', 'v', 'lse', 'attn', 'x1', 'h2', 'u', 'act']);
    expect(kept(false)).toContain('probs');
    expect(kept(true)).not.toContain('probs');
  });

  it('drops out only when model.dropout > 0: 1-byte masks on the residual branches and, unfused, on the probabilities', () => {
    const tiny = getModel('gpt-tiny');
    expect(tiny.dropout).toBe(0);
    expect(getModel('gpt3-125m').dropout).toBe(0.1);
    expect(getModel('llama3.1-8b').dropout).toBe(0);
    const plain = layerBlock(tiny);
    expect(Object.values(plain.tensors).filter((t) => t.dtype === 'mask')).toHaveLength(0);
    expect(plain.ops.filter((o) => o.kind === 'dropout' || (o.kind === 'residual' && o.dropout))).toHaveLength(0);
    const drop = layerBlock({ ...tiny, dropout: 0.1 });
    const saved = (flash: boolean): string[] => [...new Set(drop.ops.filter((o) => !o.when || (o.when === 'flash') === flash).flatMap((o) => o.saves))];
    expect(saved(true)).toEqual(['x', 'h1', 'q', 'k', 'v', 'lse', 'attn', 'attn.residual.mask', 'x1', 'h2', 'u', 'act', 'mlp.residual.mask']);
    expect(saved(false)).toEqual(expect.arrayContaining(['probs', 'attn.mask', 'pdrop']));
    expect(embeddingBlock({ ...tiny, dropout: 0.1 }).output).toBe('xd');
    expect(embeddingBlock(tiny).output).toBe('x');
  });

  it('refuses ALiBi, naming the allowed positions', () => {
    const m = parseModelSpec({ ...getModel('gpt-tiny'), name: 'alibi-tiny', positional: 'alibi' });
    expect(() => layerBlock(m)).toThrow(/positional 'alibi'.*allowed: learned, rope/);
  });
});

describe('kernel launches of a block', () => {
  it('count GEMMs and their bias kernels, the residual copy and the gradient sum of a tensor read by two GEMMs', () => {
    const gpt = blockLaunches(layerBlock(getModel('gpt-tiny')));
    expect(gpt.get('attn.qkv')).toEqual({ forward: 3, forwardAux: 3, backward: 6, backwardAux: 3 });
    expect(gpt.get('attn.residual')).toEqual({ forward: 1, forwardAux: 0, backward: 1, backwardAux: 0 });
    expect(gpt.get('attn.exit')).toEqual({ forward: 0, forwardAux: 0, backward: 0, backwardAux: 0 });
    expect(blockLaunches(layerBlock(getModel('llama-tiny'))).get('attn.rope')).toEqual({ forward: 2, forwardAux: 0, backward: 2, backwardAux: 0 });
    // falcon-7b: one norm output read by qkv and fc1; qkv's backward (the later one) adds fc1's gradient to its own
    const falcon = blockLaunches(layerBlock(getModel('falcon-7b')));
    expect(falcon.get('attn.qkv')?.backwardAux).toBe(1);
    expect(falcon.get('branch_sum')).toEqual({ forward: 1, forwardAux: 0, backward: 0, backwardAux: 0 });
    expect(blockLaunches(layerBlock(getModel('falcon-40b'))).get('attn.qkv')?.backwardAux).toBe(0);
  });

  it('refuse a description whose backward transforms in place a gradient nobody produced', () => {
    const b = layerBlock(getModel('llama-tiny'));
    const broken: BlockDescription = { ...b, ops: b.ops.filter((o) => o.name !== 'attn.flash') };
    expect(() => blockLaunches(broken)).toThrow(/attn.rope.*gradient of q in place/);
  });
});

describe('the embedding and head blocks', () => {
  const count = (b: BlockDescription, e: DimEnv, tied: boolean): number =>
    b.weights.filter((w) => tied || !w.tied).reduce((acc, w) => acc + w.shape.reduce<number>((p, d) => p * evalDim(d, e), 1), 0);

  it('are consistent dataflow and declare core\'s embeddingParams and headParams', () => {
    for (const m of modelCatalog()) {
      const e = env({ h: m.hidden, a: m.heads, k: m.kvHeads, f: m.ffnHidden, V: m.vocab });
      checkDataflow(embeddingBlock(m));
      checkDataflow(headBlock(m));
      expect(count(embeddingBlock(m), e, true), m.name).toBe(embeddingParams(m));
      // a tied head reads the embedding's table (declared by the head only on a stage without the embedding)
      expect(count(headBlock(m), e, false), m.name).toBe(headParams(m));
    }
  });

  it('sum the vocab-parallel lookup, the LM head\'s input gradient and the loss\'s per-token figures over the ranks', () => {
    const points = (b: BlockDescription): string[] => b.ops.flatMap((o) => (o.kind === 'tpEntry' || o.kind === 'tpExit' ? [o.point] : o.kind === 'crossEntropy' ? o.points : []));
    expect(points(embeddingBlock(getModel('gpt-tiny')))).toEqual(['embed-out']);
    expect(points(headBlock(getModel('llama-tiny')))).toEqual(['head-in-grad', 'loss-max', 'loss-sum', 'loss-sum']);
  });
});
