// Checks of the op graphs against published formulas (Korthikanti et al. 2022) and core's parameter counts.
import { embeddingParams, getModel, headParams, layerParams, type ModelSpec, modelCatalog } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { evaluate, type Expr, substitute } from './expr';
import { checkpointBytes, layerOps, sumOps } from './op-graph';
import { embeddingParamsPerRank, finalNormParams, layerParamsPerRank, lmHeadParamsPerRank } from './params';

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
      expect(evaluate(layerParamsPerRank(m), env)).toBe(layerParams(m));
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
