// The all-to-all built from grouped sends and receives: every rank ends with what each rank sent
// it, parts of different lengths, empty ones skipped on both sides.
import { describe, expect, it } from 'vitest';
import { allToAll } from './all-to-all';
import { localWorld } from './testing/local-world';

describe('all-to-all over the CPU communicator', () => {
  it('3 ranks, uneven and empty parts, the own part copied', async () => {
    const world = await localWorld(3);
    try {
      // Rank r sends (r + p) % 3 floats to rank p, each float r * 100 + p * 10 + i.
      const len = (from: number, to: number): number => (from + to) % 3;
      const parts = await Promise.all(world.map(async (comm, r) => {
        const send = [0, 1, 2].map((p) => Float32Array.from({ length: len(r, p) }, (_, i) => r * 100 + p * 10 + i));
        const recv = [0, 1, 2].map((p) => new Float32Array(len(p, r)));
        await allToAll(comm, send, recv);
        return recv;
      }));
      parts.forEach((recv, r) => recv.forEach((got, p) => expect([...got]).toEqual(Array.from({ length: len(p, r) }, (_, i) => p * 100 + r * 10 + i))));
      await expect(allToAll(world[0], [new Float32Array(1)], [new Float32Array(1)])).rejects.toThrow(/one per rank \(3\)/);
    } finally {
      await Promise.all(world.map((c) => c.destroy()));
    }
  });
});
