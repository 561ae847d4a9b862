// Megatron-Core's communication overlaps in the stage model: TrainingSpec.tpCommOverlap (the
// sequence-parallel TP collectives pipelined with their GEMMs, --tp-comm-overlap) and
// paramGatherOverlap (the ZeRO-1/2 post-step all-gather beside the next first forward,
// --overlap-param-gather). Off, nothing changes; on, the steady time never falls below the time
// without TP communication, `last` falls, and steady, first and first + last still never fall with
// more checkpointing or offloading (what the tuner's intra-stage search rests on, tuner pareto.ts).
import { builtinHardwareProfile, getModel, type HardwareProfile, type ModelSpec, NO_OFFLOAD, type Offload, parseClusterShorthand, parseTrainingSpec } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { type CompiledStageModel, compileStageModel, type StageQuery, writeStageQuery } from './compile';
import { INPUT_WIDTH, OUT, OUTPUT_WIDTH } from './layout';
import { evaluate } from './expr';
import { layerOps } from './op-graph';

const gpt = getModel('gpt3-13b');
const profile = builtinHardwareProfile(parseClusterShorthand('2x8-h100-sxm'), 'bf16');

function compiled(
  model: ModelSpec, over: { tpCommOverlap?: boolean; tpBackwardOverlap?: boolean; paramGatherOverlap?: boolean; gradReduceOverlap?: boolean; seqLen?: number } = {}, p: HardwareProfile = profile,
): CompiledStageModel {
  return compileStageModel({ model, profile: p, training: parseTrainingSpec({ globalBatch: 64, seqLen: 2048, paramDtype: 'bf16', computeDtype: 'bf16', ...over }) });
}

function query(over: Partial<StageQuery> = {}): StageQuery {
  return {
    layers: 10, position: 'middle', inFlight: 2, pp: 4, mesh: { nodes: 1, gpusPerNode: 8 },
    microBatchSize: 1, gradAccumSteps: 8, dp: 2, tp: 4, sequenceParallel: true, ckptLayers: 0, zero: 1,
    offload: NO_OFFLOAD, ...over,
  };
}

/** Every output column of each query. */
function outputs(m: CompiledStageModel, qs: readonly StageQuery[]): Float64Array[] {
  const input = new Float64Array(qs.length * INPUT_WIDTH);
  const output = new Float64Array(qs.length * OUTPUT_WIDTH);
  qs.forEach((q, i) => writeStageQuery(q, input, i));
  m.evaluateBatch(input, output, qs.length);
  return qs.map((_, i) => output.subarray(i * OUTPUT_WIDTH, (i + 1) * OUTPUT_WIDTH));
}

const off = compiled(gpt);
const tpOn = compiled(gpt, { tpCommOverlap: true });
const gatherOn = compiled(gpt, { paramGatherOverlap: true });
const bothOn = compiled(gpt, { tpCommOverlap: true, paramGatherOverlap: true });
const reduceAfter = compiled(gpt, { gradReduceOverlap: false });

describe('the layer GEMMs each TP collective is pipelined with (op-graph.ts tpOverlapGemms)', () => {
  const pairs = (model: ModelSpec): string[] => layerOps(model, { actBytes: 2 }).flatMap((o) =>
    o.comm.filter((c) => c.gemms).map((c) => `${o.name}:${c.phase}:${c.collective}:${c.gemms!.join('+')}`));

  it('pairs the sequence-parallel all-gathers and reduce-scatters with QKV, the projection, FC1 and FC2', () => {
    // An entry's backward: the all-gather of the kept shard, the all-reduce (no SP) or reduce-scatter
    // of the input gradient, all beside its column-parallel GEMMs (the all-reduce for tpBackwardOverlap only).
    expect(pairs(gpt)).toEqual([
      'attn.entry:forward:allGather:attn.qkv', 'attn.entry:backward:allGather:attn.qkv', 'attn.entry:backward:allReduce:attn.qkv', 'attn.entry:backward:reduceScatter:attn.qkv',
      'attn.exit:forward:reduceScatter:attn.proj', 'attn.exit:backward:allGather:attn.proj',
      'mlp.entry:forward:allGather:mlp.fc1', 'mlp.entry:backward:allGather:mlp.fc1', 'mlp.entry:backward:allReduce:mlp.fc1', 'mlp.entry:backward:reduceScatter:mlp.fc1',
      'mlp.exit:forward:reduceScatter:mlp.fc2', 'mlp.exit:backward:allGather:mlp.fc2',
    ]);
    // The exits' all-reduces of TP without sequence parallelism are never overlapped.
    expect(layerOps(gpt, { actBytes: 2 }).flatMap((o) => o.comm).filter((c) => c.collective === 'allReduce' && c.gemms && c.at !== 'entry')).toEqual([]);
    // Linears that keep the gathered input do not gather it again in backward.
    const gathered = layerOps(gpt, { actBytes: 2, sequenceParallelInput: 'gathered' }).flatMap((o) => o.comm.filter((c) => c.phase === 'backward' && c.at === 'entry'));
    expect(gathered.map((c) => c.collective)).toEqual(['allReduce', 'reduceScatter', 'allReduce', 'reduceScatter']);
  });

  it('gathers the fp8 copies in fp8 linear layers (1 byte an element); reductions stay in the compute dtype', () => {
    const env = { s: 2048, h: 5120, a: 40, k: 40, f: 20480, V: 50257, fa: 1, b: 2, t: 4, sp: 1, cp: 1 };
    const bytesOf = (fp8: 'none' | 'current') => layerOps(gpt, { actBytes: 2, fp8 }).flatMap((o) => o.comm.map((c) => [`${o.name}:${c.phase}:${c.collective}`, evaluate(c.bytes, env)] as const));
    const bf16 = new Map(bytesOf('none'));
    for (const [key, bytes] of bytesOf('current')) expect(bytes, key).toBe(key.endsWith('allGather') ? bf16.get(key)! / 2 : bf16.get(key)!);
  });

  it('leaves the experts\' TP collectives and the all-to-alls of a mixture of experts exposed (no userbuffers for expert layers)', () => {
    expect(pairs(getModel('mixtral-8x7b'))).toEqual([
      'attn.entry:forward:allGather:attn.qkv', 'attn.entry:backward:allGather:attn.qkv', 'attn.entry:backward:allReduce:attn.qkv', 'attn.entry:backward:reduceScatter:attn.qkv',
      'attn.exit:forward:reduceScatter:attn.proj', 'attn.exit:backward:allGather:attn.proj',
    ]);
  });

  it('follows a parallel block\'s exit through the branch sum to both row-parallel GEMMs', () => {
    expect(pairs(getModel('falcon-7b'))).toEqual([
      'attn.entry:forward:allGather:attn.qkv+mlp.fc1', 'attn.entry:backward:allGather:attn.qkv+mlp.fc1', 'attn.entry:backward:allReduce:attn.qkv+mlp.fc1', 'attn.entry:backward:reduceScatter:attn.qkv+mlp.fc1',
      'parallel.exit:forward:reduceScatter:mlp.fc2+attn.proj', 'parallel.exit:backward:allGather:mlp.fc2+attn.proj',
    ]);
  });
});

describe('with the options off', () => {
  it('compiles the same stage model as a training spec without them', () => {
    expect(compiled(gpt, { tpCommOverlap: false, paramGatherOverlap: false }).kernelSource).toBe(off.kernelSource);
  });

  it('leaves stages the options do not touch unchanged: no sequence parallelism or tp 1 (TP), ZeRO-0 or -3 (gather)', () => {
    for (const q of [query({ sequenceParallel: false }), query({ tp: 1, dp: 8, sequenceParallel: false }), query({ tp: 1, dp: 8, sequenceParallel: true })]) {
      expect(tpOn.estimate(q).steadyTimeS).toBe(off.estimate(q).steadyTimeS);
    }
    for (const zero of [0, 3] as const) {
      expect(gatherOn.estimate(query({ zero })).lastTimeS / off.estimate(query({ zero })).lastTimeS).toBeCloseTo(1, 14);
    }
    // One option does not touch the other's term.
    expect(tpOn.estimate(query()).lastTimeS).toBe(off.estimate(query()).lastTimeS);
    expect(gatherOn.estimate(query()).steadyTimeS).toBe(off.estimate(query()).steadyTimeS);
  });
});

describe('tpCommOverlap', () => {
  const grid: StageQuery[] = [];
  for (const tp of [2, 4, 8]) {
    for (const b of [1, 2, 4]) {
      for (const ckptLayers of [0, 5, 10]) {
        for (const position of ['first', 'middle', 'last', 'only'] as const) {
          grid.push(query({ tp, dp: 8 / tp, microBatchSize: b, ckptLayers, position, pp: position === 'only' ? 1 : 4 }));
        }
      }
    }
  }

  it('hides part of the TP time: the steady time falls, by at most the raw TP time (T_TP_COMM, unchanged)', () => {
    for (const q of grid) {
      const a = off.estimate(q), o = tpOn.estimate(q);
      expect(o.time.tpComm).toBe(a.time.tpComm);
      expect(a.time.tpComm).toBeGreaterThan(0);
      expect(o.steadyTimeS).toBeLessThan(a.steadyTimeS);
      expect(o.steadyTimeS).toBeGreaterThanOrEqual(a.steadyTimeS - a.time.tpComm - 1e-12);
      expect(o.firstTimeS - o.steadyTimeS).toBeCloseTo(a.firstTimeS - a.steadyTimeS, 12);
    }
  });

  it('never costs more than the exposed collectives when a GEMM beside a collective is not slowed (commSlowdown 1)', () => {
    const free: HardwareProfile = { ...profile, overlap: { ...profile.overlap, commSlowdown: 1 } };
    const a = compiled(gpt, {}, free), o = compiled(gpt, { tpCommOverlap: true }, free);
    for (const q of grid) {
      const x = a.estimate(q), y = o.estimate(q);
      expect(y.steadyTimeS).toBeLessThanOrEqual(x.steadyTimeS);
      expect(y.steadyTimeS).toBeGreaterThanOrEqual(x.steadyTimeS - x.time.tpComm - 1e-12);
    }
  });

  it('keeps the experts\' collectives exposed: a mixture of experts hides no more than its attention\'s TP time', () => {
    const mixtral = getModel('mixtral-8x7b');
    const a = compiled(mixtral), o = compiled(mixtral, { tpCommOverlap: true });
    const q = query({ layers: 8, tp: 4, dp: 2, ep: 2 });
    const x = a.estimate(q), y = o.estimate(q);
    expect(y.steadyTimeS).toBeLessThan(x.steadyTimeS);
    // The dense model of the same attention with an MoE-free MLP would hide more: the expert part is not hidden.
    const dense = compiled({ ...mixtral, moe: undefined, name: 'mixtral-dense' });
    const dOn = compiled({ ...mixtral, moe: undefined, name: 'mixtral-dense' }, { tpCommOverlap: true });
    const hidden = x.steadyTimeS - y.steadyTimeS;
    const hiddenDense = dense.estimate(query({ layers: 8, tp: 4, dp: 2 })).steadyTimeS - dOn.estimate(query({ layers: 8, tp: 4, dp: 2 })).steadyTimeS;
    expect(hidden).toBeLessThan(hiddenDense);
  });
});

describe('tpBackwardOverlap (Megatron-LM\'s asynchronous backward collectives of its column-parallel linears)', () => {
  const asyncOn = compiled(gpt, { tpBackwardOverlap: true });
  const qs = [query(), query({ sequenceParallel: false }), query({ tp: 8, dp: 1, ckptLayers: 5 }), query({ tp: 2, dp: 4, sequenceParallel: false, position: 'last' })];

  it('hides part of the entries\' backward collectives, with or without SP: steady falls, by less than the TP time', () => {
    for (const q of qs) {
      const a = off.estimate(q), o = asyncOn.estimate(q);
      expect(o.time.tpComm).toBe(a.time.tpComm);
      expect(o.steadyTimeS).toBeLessThan(a.steadyTimeS);
      expect(o.steadyTimeS).toBeGreaterThan(a.steadyTimeS - a.time.tpComm);
    }
    // Forward collectives are not touched: with SP, --tp-comm-overlap hides more (it pipelines them too).
    expect(tpOn.estimate(query()).steadyTimeS).toBeLessThan(asyncOn.estimate(query()).steadyTimeS);
    // tp 1: nothing to hide.
    const q1 = query({ tp: 1, dp: 8, sequenceParallel: false });
    expect(asyncOn.estimate(q1).steadyTimeS).toBe(off.estimate(q1).steadyTimeS);
  });

  it('is part of --tp-comm-overlap\'s pipelining under SP: both on cost what --tp-comm-overlap alone costs', () => {
    const both = compiled(gpt, { tpCommOverlap: true, tpBackwardOverlap: true });
    for (const q of [query(), query({ tp: 8, dp: 1, ckptLayers: 5 })]) expect(both.estimate(q).steadyTimeS).toBeCloseTo(tpOn.estimate(q).steadyTimeS, 12);
  });
});

describe('paramGatherOverlap', () => {
  it('hides the ZeRO-1/2 parameter all-gather behind the next first forward: last falls, by no more than the gather', () => {
    for (const zero of [1, 2] as const) {
      for (const q of [query({ zero }), query({ zero, tp: 1, dp: 16, sequenceParallel: false, mesh: { nodes: 2, gpusPerNode: 8 } })]) {
        const a = off.estimate(q), o = gatherOn.estimate(q);
        expect(o.lastTimeS).toBeLessThan(a.lastTimeS);
        expect(o.lastTimeS).toBeGreaterThan(0);
        expect(o.time.dpComm).toBe(a.time.dpComm);
      }
    }
  });
});

describe('gradReduceOverlap false (the reduction after the backward: Megatron-LM without --overlap-grad-reduce)', () => {
  it('exposes the whole ZeRO-0 all-reduce / ZeRO-1 reduce-scatter in last; ZeRO-2/3 and dp 1 are unchanged', () => {
    for (const zero of [0, 1] as const) {
      const q = query({ zero, tp: 1, dp: 16, sequenceParallel: false, mesh: { nodes: 2, gpusPerNode: 8 } });
      const a = off.estimate(q), x = reduceAfter.estimate(q);
      // The whole sync: the tuner's end-of-step time grows by at least what overlap hid.
      expect(x.lastTimeS).toBeGreaterThan(a.lastTimeS);
      expect(x.steadyTimeS).toBe(a.steadyTimeS);
      expect(x.firstTimeS).toBe(a.firstTimeS);
      expect(x.time.dpComm).toBe(a.time.dpComm);
      // What overlap hid comes back, no more than the sync (a part of dpComm).
      expect(x.lastTimeS - a.lastTimeS).toBeLessThanOrEqual(x.time.dpComm);
    }
    for (const q of [query({ zero: 2 }), query({ zero: 3 }), query({ zero: 0, dp: 1, mesh: { nodes: 1, gpusPerNode: 4 } })]) {
      const { lastTimeS: x, ...rest } = reduceAfter.estimate(q);
      const { lastTimeS: a, ...restOff } = off.estimate(q);
      expect(rest).toEqual(restOff);
      expect(Math.abs(x - a)).toBeLessThanOrEqual(1e-12 * a); // the same sum, compiled in another order
    }
  });
});

describe('monotone in the checkpoint/offload grid', () => {
  const ratios = [0, 0.5, 1];
  const box = (base: Partial<StageQuery>): StageQuery[] => {
    const out: StageQuery[] = [];
    for (const ckptLayers of [0, 5, 10]) {
      for (const weights of ratios) for (const grads of ratios) for (const optim of ratios) for (const activations of ratios) {
        const offload: Offload = { weights, grads, optim, activations };
        out.push(query({ ...base, ckptLayers, offload }));
      }
    }
    return out;
  };
  const configs: Partial<StageQuery>[] = [];
  for (const zero of [0, 1, 2, 3] as const) {
    configs.push({ zero }, { zero, tp: 1, dp: 16, sequenceParallel: false, mesh: { nodes: 2, gpusPerNode: 8 }, position: 'only', pp: 1, inFlight: 1 });
  }
  // Short sequences: a forward phase shorter than the parameter gather, which then shows past it and
  // falls as offloading lengthens the phase (the floor is not the point's own last).
  const models = { off, tpOn, gatherOn, bothOn, reduceAfter, shortOff: compiled(gpt, { seqLen: 128 }), shortOn: compiled(gpt, { seqLen: 128, tpCommOverlap: true, paramGatherOverlap: true }) };

  it('steady, first and first + last never fall with more checkpointing or offloading (last alone may), with and without the overlaps', () => {
    // With activation offload, checkpointing shrinks the offloaded activations and so the copies of
    // both phases: times are monotone over more checkpointing only without activation offload, and
    // over more offloading at one checkpoint level (the boxes the tuner bounds, intra-stage.ts).
    const geq = (x: StageQuery, y: StageQuery): boolean => x.ckptLayers >= y.ckptLayers &&
      (['weights', 'grads', 'optim', 'activations'] as const).every((k) => x.offload[k] >= y.offload[k]) &&
      (x.ckptLayers === y.ckptLayers || x.offload.activations === 0);
    let lastFalls = 0;
    for (const [name, m] of Object.entries(models)) {
      for (const c of configs) {
        const qs = box(c);
        const os = outputs(m, qs);
        qs.forEach((p, i) => {
          const a = os[i];
          qs.forEach((q, j) => {
            if (!geq(q, p)) return;
            const b = os[j];
            const where = `${name} zero ${p.zero}: ${JSON.stringify(p)} -> ${JSON.stringify(q)}`;
            if (!(b[OUT.STEADY] >= a[OUT.STEADY] * (1 - 1e-12))) throw new Error(`steady falls, ${where}`);
            if (!(b[OUT.FIRST] >= a[OUT.FIRST] * (1 - 1e-12))) throw new Error(`first falls, ${where}`);
            if (!(b[OUT.FIRST] + b[OUT.LAST] >= (a[OUT.FIRST] + a[OUT.LAST]) * (1 - 1e-12))) throw new Error(`first + last falls, ${where}`);
            if (b[OUT.LAST] < a[OUT.LAST] * (1 - 1e-9)) lastFalls++;
          });
        });
      }
    }
    // The case the tuner's (steady, first, first + last) criteria exist for.
    expect(lastFalls).toBeGreaterThan(0);
  });
});
