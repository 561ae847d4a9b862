// Selective recompute of the attention core (Korthikanti et al. 2022, Sec. 5) as a search
// dimension: searched per stage in the Mist space only without flash attention (with it the switch
// changes nothing), one choice for the model and apart from whole-layer recompute in Megatron-LM's space.
import { engineCapabilities, planCapabilityViolations } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { parallelConfigs, selectiveLevels } from './enumerate';
import { mistSpace, megatronSpace, NO_OFFLOAD_LEVELS } from './search-space';
import { planSpaceViolations } from './space-membership';
import { tinyContext } from './test/tiny-context';
import { tune } from './tuner';

const space = mistSpace({ zero: [0, 1], offload: NO_OFFLOAD_LEVELS, frontierSize: Infinity, maxCp: 1 });
const tight = tinyContext('1x4-l4', 1.2e6, 8);
const noFlash = { ...tight, training: { ...tight.training, flashAttention: false } };

describe('selective recompute in the search', () => {
  it('is a choice only without flash attention and with the space switch on', () => {
    expect(selectiveLevels(mistSpace(), false)).toEqual([false, true]);
    expect(selectiveLevels(mistSpace(), true)).toEqual([false]);
    expect(selectiveLevels(mistSpace({ selectiveRecompute: false }), false)).toEqual([false]);
    const mesh = { nodes: 1, gpusPerNode: 4 };
    const plain = parallelConfigs(mistSpace(), tight.model, 64, mesh, 8);
    const both = parallelConfigs(mistSpace(), tight.model, 64, mesh, 8, [false, true]);
    expect(both.length).toBe(2 * plain.length);
    expect(plain.every((c) => !c.selectiveRecompute)).toBe(true);
  });

  it('the tuned plan uses it where memory is tight, and never with flash attention or with the switch off', async () => {
    const on = await tune(noFlash, { space });
    expect(on.plan!.stages.some((s) => s.selectiveRecompute === true)).toBe(true);
    expect(planSpaceViolations(on.plan!, space)).toEqual([]);
    expect(planSpaceViolations(on.plan!, { ...space, selectiveRecompute: false })).toContain('stages[0].selectiveRecompute: on, the space has it off');
    const off = await tune(noFlash, { space: { ...space, selectiveRecompute: false } });
    expect(off.plan!.stages.every((s) => s.selectiveRecompute === undefined)).toBe(true);
    expect(off.objectiveS!).toBeGreaterThan(on.objectiveS!);
    const flash = await tune(tight, { space });
    expect(flash.plan!.stages.every((s) => s.selectiveRecompute === undefined)).toBe(true);
  });

  it("Megatron-LM's space: selective in every stage or none, never beside whole-layer recompute", async () => {
    for (const mem of [1.2e6, 1.5e6, 2.5e6]) {
      const base = tinyContext('1x4-l4', mem, 8);
      const ctx = { ...base, training: { ...base.training, flashAttention: false } };
      const r = await tune(ctx, { space: megatronSpace({ offload: NO_OFFLOAD_LEVELS }) });
      if (!r.plan) continue;
      expect(planCapabilityViolations(r.plan, engineCapabilities('megatron'))).toEqual([]);
      const sel = r.plan.stages.map((s) => s.selectiveRecompute === true);
      expect(sel.every((x) => x === sel[0])).toBe(true);
      if (sel[0]) expect(r.plan.stages.every((s) => s.ckptLayers === 0)).toBe(true);
    }
  });
});
