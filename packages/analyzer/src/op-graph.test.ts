// Checks of the op graphs against published formulas (Korthikanti et al. 2022) and core's parameter counts.
import { blockLaunches, embeddingBlock, embeddingParams, evalDim, getModel, headBlock, headParams, layerBlock, layerParams, type ModelSpec, modelCatalog } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { evaluate, type Expr, num, substitute } from './expr';
import { checkpointBytes, embeddingOps, headOps, layerOps, sumOps } from './op-graph';
import { embeddingParamsPerRank, expertParamsPerRank, finalNormParams, layerParamsPerRank, lmHeadParamsPerRank } from './params';

const opts = { actBytes: 2 };

function savedPerLayer(m: ModelSpec, env: Record<string, number>): number {
  const e: Expr = sumOps(layerOps(m, opts), (o) => o.saved);
  return evaluate(substitute(e, { h: m.hidden, a: m.heads, k: m.kvHeads, f: m.ffnHidden, V: m.vocab }), env);
}

describe('activation memory per layer (Korthikanti et al. 2022, Sec. 4)', () => {
  const gpt = getModel('gpt3-13b'); // h 5120, a 40
  const h = gpt.hidden;
  const a = gpt.heads;
  const cases = [{ s: 2048, b: 1 }, { s: 1024, b: 4 }, { s: 4096, b: 2 }];

  it('no parallelism, no flash attention: sbh(34 + 5as/h)', () => {
    for (const { s, b } of cases) {
      expect(savedPerLayer(gpt, { s, b, t: 1, sp: 0, fa: 0 })).toBe(s * b * h * (34 + (5 * a * s) / h));
    }
  });

  it('without dropout: no masks, the softmax output kept once: sbh(32 + 2as/h), and sbh(32/t + 2as/(ht)) with t + sp', () => {
    const noDrop = { ...gpt, dropout: 0 };
    for (const { s, b } of cases) {
      expect(savedPerLayer(noDrop, { s, b, t: 1, sp: 0, fa: 0 })).toBe(s * b * h * (32 + (2 * a * s) / h));
      for (const t of [2, 8]) {
        expect(savedPerLayer(noDrop, { s, b, t, sp: 1, fa: 0 }) / (s * b * h * (32 / t + (2 * a * s) / (h * t)))).toBeCloseTo(1, 12);
      }
    }
  });

  it('tensor parallel t: sbh(10 + 24/t + 5as/(ht))', () => {
    for (const t of [2, 4, 8]) {
      for (const { s, b } of cases) {
        const want = s * b * h * (10 + 24 / t + (5 * a * s) / (h * t));
        expect(savedPerLayer(gpt, { s, b, t, sp: 0, fa: 0 }) / want).toBeCloseTo(1, 12);
      }
    }
  });

  it('tensor + sequence parallel: sbh(34/t + 5as/(ht))', () => {
    for (const t of [1, 2, 4, 8]) {
      for (const { s, b } of cases) {
        const want = s * b * h * (34 / t + (5 * a * s) / (h * t));
        expect(savedPerLayer(gpt, { s, b, t, sp: 1, fa: 0 }) / want).toBeCloseTo(1, 12);
      }
    }
  });

  it('flash attention drops the 5as/h term (keeps only the fp32 log-sum-exp, 4 bytes per row and head)', () => {
    const s = 2048;
    const b = 2;
    for (const t of [1, 4]) {
      const want = s * b * h * (10 + 24 / t) + (4 * b * a * s) / t;
      expect(savedPerLayer(gpt, { s, b, t, sp: 0, fa: 1 }) / want).toBeCloseTo(1, 12);
    }
  });

  it('full recompute keeps the layer input, 2sbh (2sbh/t with SP)', () => {
    const keep = checkpointBytes(opts);
    expect(evaluate(keep, { b: 3, s: 2048, h, t: 4, sp: 0 })).toBe(2 * 2048 * 3 * h);
    expect(evaluate(keep, { b: 3, s: 2048, h, t: 4, sp: 1 })).toBe((2 * 2048 * 3 * h) / 4);
  });

  it('llama (no dropout, GQA, SwiGLU) saves less than GPT per hidden unit and scales with 1/t in the TP regions', () => {
    const llama = getModel('llama2-70b');
    const one = savedPerLayer(llama, { s: 4096, b: 1, t: 1, sp: 1, fa: 1 });
    const eight = savedPerLayer(llama, { s: 4096, b: 1, t: 8, sp: 1, fa: 1 });
    expect(eight / one).toBeCloseTo(1 / 8, 3); // with SP and kvHeads divisible by t everything shards
    // norms 2x2, qkv input 2, Q 2, K,V 2*2*(8/64), proj input 2, fc1 input 2, swiglu 4f/h, fc2 input 2f/h (per sbh)
    const perSbh = 4 + 2 + 2 + 4 * (8 / 64) + 2 + 2 + (6 * 28672) / 8192;
    const lse = 4 * 64 * 4096;
    expect(one).toBeCloseTo(4096 * 8192 * perSbh + lse, 0);
  });
});

describe('parameters per TP rank', () => {
  it('equal core counts at t = 1 for every catalog model', () => {
    for (const m of modelCatalog()) {
      const env = { h: m.hidden, a: m.heads, k: m.kvHeads, f: m.ffnHidden, V: m.vocab, t: 1 };
      expect(evaluate(layerParamsPerRank(m), env) + evaluate(expertParamsPerRank(m, num(1)), env)).toBe(layerParams(m));
      expect(evaluate(embeddingParamsPerRank(m), env)).toBe(embeddingParams(m));
      const head = evaluate(finalNormParams(m), env) + (m.tiedEmbeddings ? 0 : evaluate(lmHeadParamsPerRank(), env));
      expect(head).toBe(headParams(m));
    }
  });

  it('shard the matrices over t and replicate norms and key/value heads beyond kvHeads', () => {
    const m = getModel('llama2-70b'); // kvHeads 8
    const env = (t: number) => ({ h: m.hidden, a: m.heads, k: m.kvHeads, f: m.ffnHidden, V: m.vocab, t });
    const p8 = evaluate(layerParamsPerRank(m), env(8));
    expect(p8).toBe((layerParams(m) - 2 * m.hidden) / 8 + 2 * m.hidden);
    // t = 16 > kvHeads: each rank keeps one whole key and value head
    const d = m.hidden / m.heads;
    const p16 = evaluate(layerParamsPerRank(m), env(16));
    expect(p16).toBe(m.hidden * (m.hidden / 16 + 2 * d) + (m.hidden / 16) * m.hidden + (3 * m.hidden * m.ffnHidden) / 16 + 2 * m.hidden);
  });
});

describe('the layer is core\'s block description, costed', () => {
  const envOf = (m: ModelSpec, over: Record<string, number>) => ({ h: m.hidden, a: m.heads, k: m.kvHeads, f: m.ffnHidden, V: m.vocab, ...over });

  it('has one op per description op (layer, embedding, head), launching the kernels the description declares (the executor runs the same: executor kernel-count.test.ts)', () => {
    const parts = [[layerBlock, layerOps], [embeddingBlock, embeddingOps], [headBlock, headOps]] as const;
    for (const m of modelCatalog()) for (const [describe, translate] of parts) {
      const block = describe(m);
      const launches = blockLaunches(block);
      const ops = translate(m, opts);
      expect(ops.map((o) => o.name), m.name).toEqual(block.ops.map((o) => o.name));
      for (const o of ops) {
        const l = launches.get(o.name)!;
        expect([o.fwdKernels, o.fwdAux, o.bwdKernels, o.bwdAux], `${m.name} ${o.name}`).toEqual([l.forward, l.forwardAux, l.backward, l.backwardAux]);
      }
    }
  });

  it('costs a GEMM [m, k] x [k, n] at 2mkn FLOPs forward and 4mkn backward, from the description\'s shapes', () => {
    const m = getModel('llama3-8b');
    const dimEnv = { b: 2, s: 512, t: 4, sp: 1, fa: 1, h: m.hidden, a: m.heads, k: m.kvHeads, f: m.ffnHidden, V: m.vocab };
    const env = dimEnv;
    for (const op of layerBlock(m).ops) {
      if (op.kind !== 'linear') continue;
      const x = layerOps(m, opts).find((o) => o.name === op.name)!;
      const cols = op.cols.reduce<number>((n, c) => n + evalDim(c, dimEnv), 0);
      const mkn = evalDim(op.rows, dimEnv) * evalDim(op.inner, dimEnv) * cols;
      expect(evaluate(x.fwdFlops, env)).toBe(2 * mkn);
      expect(evaluate(x.bwdFlops, env)).toBe(4 * mkn);
    }
  });

  it('charges every TP collective the executor calls: two backward sums for falcon-40b\'s two norms, one for falcon-7b\'s', () => {
    const backwardSums = (name: string): number => layerOps(getModel(name), opts).flatMap((o) => o.comm)
      .filter((c) => c.phase === 'backward' && c.collective === 'allReduce').length;
    expect(backwardSums('falcon-7b')).toBe(1);
    expect(backwardSums('falcon-40b')).toBe(2);
    expect(backwardSums('gpt3-1.3b')).toBe(2);
  });

  it('counts a tensor kept by several ops once (falcon-7b\'s norm output feeds qkv and fc1)', () => {
    const m = getModel('falcon-7b');
    const env = { s: 128, b: 1, t: 1, sp: 0, fa: 1 };
    const fc1 = layerOps(m, opts).find((o) => o.name === 'mlp.fc1')!;
    expect(evaluate(substitute(fc1.saved, envOf(m, {})), env)).toBe(0);
  });
});
