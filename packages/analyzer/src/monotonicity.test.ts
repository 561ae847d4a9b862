// Properties the tuner relies on, checked over random valid candidates with the batch kernel.
import { builtinHardwareProfile, getModel, parseClusterShorthand, parseTrainingSpec } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { compileStageModel } from './compile';
import { IN, INPUT_WIDTH, OUT, OUTPUT_WIDTH } from './layout';

const setups = [
  { model: 'gpt3-2.7b', cluster: '2x8-a100-40gb', flash: false },
  { model: 'llama2-13b', cluster: '2x4-l4', flash: true },
  { model: 'falcon-7b', cluster: '1x8-h100-sxm', flash: true },
];

function randomCandidates(layers: number, heads: number, gpn: number, nodes: number, n: number, seed: number): Float64Array {
  let x = seed;
  const rnd = (): number => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
  const tps = [1, 2, 4, 8].filter((t) => gpn % t === 0 && heads % t === 0);
  const input = new Float64Array(n * INPUT_WIDTH);
  for (let i = 0; i < n; i++) {
    const o = i * INPUT_WIDTH;
    const L = 1 + Math.floor(rnd() * layers);
    const pp = 1 + Math.floor(rnd() * 4);
    const meshNodes = 1 + Math.floor(rnd() * nodes);
    const tp = tps[Math.floor(rnd() * tps.length)];
    input[o + IN.LAYERS] = L;
    input[o + IN.POSITION] = pp === 1 ? 3 : Math.floor(rnd() * 3);
    input[o + IN.IN_FLIGHT] = 1 + Math.floor(rnd() * pp);
    input[o + IN.PP] = pp;
    input[o + IN.MESH_NODES] = meshNodes;
    input[o + IN.MESH_GPUS_PER_NODE] = gpn;
    input[o + IN.MICRO_BATCH] = 1 + Math.floor(rnd() * 8);
    input[o + IN.GRAD_ACCUM] = 1 + Math.floor(rnd() * 8);
    input[o + IN.DP] = (meshNodes * gpn) / tp;
    input[o + IN.TP] = tp;
    input[o + IN.SP] = rnd() < 0.5 ? 0 : 1;
    input[o + IN.CKPT] = Math.floor(rnd() * (L + 1));
    input[o + IN.ZERO] = Math.floor(rnd() * 4);
    input[o + IN.CP] = 1;
    for (const c of [IN.OFF_WEIGHTS, IN.OFF_GRADS, IN.OFF_OPTIM, IN.OFF_ACT]) input[o + c] = rnd() < 0.5 ? 0 : rnd();
  }
  return input;
}

type Row = (col: number) => number;

/**
 * Evaluates the candidates and a modified copy of them; check(before, after, inputRow) returns a
 * description of a violation or undefined. Expects no violation and returns how many were compared.
 */
function compare(
  evaluate: (i: Float64Array, o: Float64Array, n: number) => void, input: Float64Array, n: number,
  modify: (row: Float64Array, o: number) => boolean, check: (before: Row, after: Row, inRow: Row) => string | undefined,
): number {
  const changed = input.slice();
  const keep: boolean[] = [];
  for (let i = 0; i < n; i++) keep.push(modify(changed, i * INPUT_WIDTH));
  const a = new Float64Array(n * OUTPUT_WIDTH);
  const b = new Float64Array(n * OUTPUT_WIDTH);
  evaluate(input, a, n);
  evaluate(changed, b, n);
  let checked = 0;
  const violations: string[] = [];
  for (let i = 0; i < n; i++) {
    if (!keep[i]) continue;
    checked++;
    const bad = check((c) => a[i * OUTPUT_WIDTH + c], (c) => b[i * OUTPUT_WIDTH + c], (c) => input[i * INPUT_WIDTH + c]);
    if (bad && violations.length < 5) violations.push(`candidate ${Array.from(input.subarray(i * INPUT_WIDTH, (i + 1) * INPUT_WIDTH)).join(',')}: ${bad}`);
  }
  expect(violations).toEqual([]);
  return checked;
}

const tol = (x: number): number => 1e-9 * Math.abs(x) + 1e-12;
const notAbove = (what: string, after: number, before: number): string | undefined =>
  after <= before + tol(before) ? undefined : `${what} rose from ${before} to ${after}`;
const notBelow = (what: string, after: number, before: number): string | undefined =>
  after >= before - tol(before) ? undefined : `${what} fell from ${before} to ${after}`;

describe.each(setups)('monotonicity: $model on $cluster', ({ model: name, cluster: cl, flash }) => {
  const model = getModel(name);
  const cluster = parseClusterShorthand(cl);
  const profile = builtinHardwareProfile(cluster);
  const compiled = compileStageModel({ model, training: parseTrainingSpec({ globalBatch: 64, seqLen: 2048, flashAttention: flash }), profile });
  const ev = compiled.evaluateBatch;
  const n = 3000;
  const input = randomCandidates(model.layers, model.heads, cluster.gpusPerNode, cluster.nodes, n, 7 + model.layers);
  const iteration = (r: Row, q: Row): number => r(OUT.FIRST) + r(OUT.LAST) + (q(IN.GRAD_ACCUM) - 1) * r(OUT.STEADY);

  it('more ckptLayers never raises memory', () => {
    const k = compare(ev, input, n, (r, o) => r[o + IN.CKPT] < r[o + IN.LAYERS] && (r[o + IN.CKPT] += 1) > 0, (a, b) =>
      notAbove('peak', b(OUT.PEAK_MEMORY), a(OUT.PEAK_MEMORY)) ??
      notAbove('activations', b(OUT.MEM_ACTIVATIONS), a(OUT.MEM_ACTIVATIONS)));
    expect(k).toBeGreaterThan(n / 2);
  });

  it('more ckptLayers never lowers time (without activation offload, whose traffic checkpointing shrinks)', () => {
    const k = compare(ev, input, n, (r, o) => r[o + IN.OFF_ACT] === 0 && r[o + IN.CKPT] < r[o + IN.LAYERS] && (r[o + IN.CKPT] += 1) > 0, (a, b, q) =>
      notBelow('steady', b(OUT.STEADY), a(OUT.STEADY)) ?? notBelow('first', b(OUT.FIRST), a(OUT.FIRST)) ??
      notBelow('iteration', iteration(b, q), iteration(a, q)));
    expect(k).toBeGreaterThan(n / 4);
  });

  it.each([['weights', IN.OFF_WEIGHTS], ['grads', IN.OFF_GRADS], ['optim', IN.OFF_OPTIM], ['activations', IN.OFF_ACT]])(
    'more %s offload never raises device memory', (_name, col) => {
      compare(ev, input, n, (r, o) => {
        const before = r[o + col];
        r[o + col] = Math.min(1, before + 0.25);
        return r[o + col] > before;
      }, (a, b) => notAbove('peak', b(OUT.PEAK_MEMORY), a(OUT.PEAK_MEMORY)));
    });

  it('higher zero never raises memory', () => {
    const k = compare(ev, input, n, (r, o) => r[o + IN.ZERO] < 3 && (r[o + IN.ZERO] += 1) > 0,
      (a, b) => notAbove('peak', b(OUT.PEAK_MEMORY), a(OUT.PEAK_MEMORY)));
    expect(k).toBeGreaterThan(n / 2);
  });

  it('doubling b doubles activation memory and raises the peak', () => {
    compare(ev, input, n, (r, o) => (r[o + IN.MICRO_BATCH] *= 2) > 0, (a, b) => {
      const ratio = b(OUT.MEM_ACTIVATIONS) / a(OUT.MEM_ACTIVATIONS);
      if (Math.abs(ratio - 2) > 1e-9) return `activations grew ${ratio}x`;
      return b(OUT.PEAK_MEMORY) > a(OUT.PEAK_MEMORY) ? undefined : 'peak did not grow';
    });
  });

  it('produces finite, non-negative outputs', () => {
    const out = new Float64Array(n * OUTPUT_WIDTH);
    ev(input, out, n);
    const bad = Array.from(out).filter((v) => !Number.isFinite(v) || v < -1e-9);
    expect(bad).toEqual([]);
  });
});
