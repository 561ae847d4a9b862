// The engine search's grid point cache (engine-cache.ts): a re-tune of an engine space with another
// global batch re-costs cached points from their lines and finds the plan a search without cache
// finds, with fewer analyzer evaluations; a tune where nothing fits still diagnoses it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { builtinHardwareProfile, getModel, parseClusterShorthand, parseTrainingSpec } from '@mist/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bestLineAt, saturatedAt, usefulLines } from './engine-cache';
import { engineSpace } from './search-space';
import { tinyContext } from './test/tiny-context';
import { tune } from './tuner';

describe('engine grid point cache', () => {
  let dir = '';
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-engine-cache-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('keeps the lines best at some G and takes the least at each G', () => {
    const line = (alpha: number, slope: number, partition = 0) => ({ alpha, slope, partition, v: 1 });
    const kept = usefulLines([line(10, 1), line(4, 2, 1), line(12, 1.5, 2), line(1, 3, 3), line(4, 2.5, 4)]);
    expect(kept.map((l) => l.partition)).toEqual([0, 1, 3]);
    expect(bestLineAt(kept, 1)).toEqual({ totalS: 4, line: line(1, 3, 3) });
    expect(bestLineAt(kept, 4)).toEqual({ totalS: 12, line: line(4, 2, 1) });
    expect(bestLineAt(kept, 100).line).toEqual(line(10, 1));
    expect(bestLineAt([], 3)).toEqual({ totalS: Infinity, line: null });
  });

  it('counts a G saturated when every stage keeps its G-free in-flight count (analyzer inFlightMicroBatches)', () => {
    expect(saturatedAt(4, 4, 1)).toBe(true);
    expect(saturatedAt(3, 4, 1)).toBe(false);
    // v = 2 on 4 ranks: stage 0 holds (2 * 3 + 4 + 1) / 2 = 5.5 micro-batches once G * 2 >= 11.
    expect(saturatedAt(6, 4, 2)).toBe(true);
    expect(saturatedAt(4, 4, 2)).toBe(false);
  });

  for (const engine of ['megatron', 'deepspeed'] as const) {
    it(`a ${engine} re-tune with another global batch reuses the points and finds the plan of a search without cache`, async () => {
      const ctx = (batch: number) => ({
        model: getModel('gpt3-6.7b'), training: parseTrainingSpec({ globalBatch: batch, seqLen: 2048 }),
        profile: builtinHardwareProfile(parseClusterShorthand('4x8-a100-40gb')),
      });
      const space = engineSpace(engine);
      const cold = await tune(ctx(512), { space });
      const first = await tune(ctx(256), { space, cacheDir: dir });
      expect(first.plan).not.toBeNull();
      expect(fs.readdirSync(dir).some((f) => f.endsWith('.engine.json'))).toBe(true);
      const again = await tune(ctx(512), { space, cacheDir: dir });
      expect(again.objectiveS).not.toBeNull();
      expect(again.objectiveS!).toBeCloseTo(cold.objectiveS!, 9);
      expect(again.predicted!.iterationTimeS).toBeCloseTo(cold.predicted!.iterationTimeS, 9);
      expect(again.candidatesEvaluated).toBeLessThan(cold.candidatesEvaluated);
    }, 60_000);
  }

  it('a tune where nothing fits diagnoses it from rows it evaluated, not from cached points', async () => {
    const space = engineSpace('megatron');
    // The first tune caches points where nothing fits; the re-tune meets them at another G.
    expect((await tune(tinyContext('2x2-l4', 1e5, 16), { space, cacheDir: dir })).plan).toBeNull();
    const none = await tune(tinyContext('2x2-l4', 1e5, 32), { space, cacheDir: dir });
    expect(none.plan).toBeNull();
    expect(none.noFit).not.toBeNull();
    const cold = await tune(tinyContext('2x2-l4', 1e5, 32), { space });
    expect(none.noFit).toEqual(cold.noFit);
  });
});
