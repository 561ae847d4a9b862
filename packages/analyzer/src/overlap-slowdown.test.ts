// The slowdown of compute beside collectives (profile.overlap.commSlowdown) lasts only while the
// collectives run (stage-model.ts besideExtra): a phase with comm seconds of ZeRO traffic beside it
// grows by comm * (1 - 1/slowdown), not by a share of the whole phase, and a stage whose end-of-step
// sync moves nothing (ZeRO-2/3 reduced every micro-batch) pays nothing for it, however the sync's
// flag-gated terms round.
import { builtinHardwareProfile, getModel, type HardwareProfile, NO_OFFLOAD, parseClusterShorthand, parseHardwareProfile, parseTrainingSpec, type ZeroLevel } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { besideExtra } from './stage-model';
import { compileStageModel, type StageQuery } from './compile';

const model = getModel('gpt3-6.7b');
const base = builtinHardwareProfile(parseClusterShorthand('8x8-a100-40gb'), 'bf16');
const withSlowdown = (commSlowdown: number): HardwareProfile => parseHardwareProfile({ ...base, overlap: { ...base.overlap, commSlowdown } });
const training = parseTrainingSpec({ globalBatch: 1152, seqLen: 2048, paramDtype: 'bf16', computeDtype: 'bf16', flashAttention: true });
const compiled = (p: HardwareProfile) => compileStageModel({ model, profile: p, training });

function query(zero: ZeroLevel, over: Partial<StageQuery> = {}): StageQuery {
  return {
    layers: 32, position: 'only', inFlight: 1, pp: 1, mesh: { nodes: 8, gpusPerNode: 8 }, microBatchSize: 18,
    gradAccumSteps: 1, dp: 64, tp: 1, sequenceParallel: false, ckptLayers: 32, zero, offload: NO_OFFLOAD, ...over,
  };
}

describe('compute slowed only while collectives run beside it', () => {
  it('besideExtra: transfer * (1 - 1/s) while the compute outlasts it, the overhang once the transfer is longer', () => {
    const at = (work: number, transfer: number, s: number): number => {
      const e = besideExtra(work, transfer, s);
      return e.k === 'num' ? e.v : Math.max(transfer * (1 - 1 / s), transfer - work);
    };
    expect(at(10, 2, 1.25)).toBeCloseTo(0.4, 12);
    expect(at(10, 0, 1.25)).toBe(0);
    expect(at(1, 5, 1.25)).toBeCloseTo(4, 12);
    // Continuous where the two meet (transfer = work * s).
    expect(at(4, 5, 1.25)).toBeCloseTo(1, 12);
  });

  it('a ZeRO-3 stage\'s end of step is its optimizer step alone: no slowed backward for a sync of nothing', () => {
    // The sync's all-reduce and reduce-scatter terms, gated by the ZeRO flags, cancel to a rounding
    // residue; the end of step must not read it as a sync running. With the slowdown applied to the
    // whole last backward whenever the sync was above 0, about half of these stages paid
    // (slowdown - 1) x that backward (llama2-7b on 64 A100s, micro-batch 18: 0.56 s for a 2 ms step).
    for (const [name, cluster] of [['llama2-7b', '8x8-a100-40gb'], ['gpt3-2.7b', '2x8-a100-80gb'], ['gpt3-13b', '4x8-h100-sxm'], ['gpt3-6.7b', '8x8-a100-40gb']]) {
      const m = getModel(name);
      const c = parseClusterShorthand(cluster);
      const stage = compileStageModel({ model: m, profile: builtinHardwareProfile(c, 'bf16'), training });
      for (const microBatchSize of [1, 4, 18]) {
        const e = stage.estimate(query(3, { layers: m.layers, microBatchSize, mesh: { nodes: c.nodes, gpusPerNode: c.gpusPerNode }, dp: c.nodes * c.gpusPerNode, ckptLayers: 0 }));
        expect(e.lastTimeS).toBeCloseTo(e.time.optimizer, 12);
      }
    }
  });

  it('a ZeRO-3 phase grows by its gathers and reduce-scatters times (1 - 1/s), whatever its compute', () => {
    const slow = compiled(withSlowdown(2));
    const none = compiled(withSlowdown(1));
    for (const ckptLayers of [0, 32]) {
      const q = query(3, { ckptLayers });
      const a = slow.estimate(q);
      const b = none.estimate(q);
      // One micro-batch per step: the dp comm column is the forward and backward traffic of it.
      expect(a.time.dpComm).toBeLessThan(a.time.forward);
      expect(a.steadyTimeS - b.steadyTimeS).toBeCloseTo(a.time.dpComm * (1 - 1 / 2), 9);
      // The compute's own time does not read the slowdown.
      expect(a.time.backward).toBe(b.time.backward);
    }
  });

  it('no slowdown so large that a phase outlasts its compute plus all of its traffic', () => {
    const q = query(3, { ckptLayers: 0 });
    const huge = compiled(withSlowdown(50)).estimate(q);
    const none = compiled(withSlowdown(1)).estimate(q);
    expect(huge.steadyTimeS).toBeLessThan(none.steadyTimeS + huge.time.dpComm);
    expect(huge.steadyTimeS).toBeGreaterThan(none.steadyTimeS + 0.9 * huge.time.dpComm);
  });
});
