// The device caching allocator's logic over a simulated address space (no GPU needed): rounding,
// best-fit reuse, splitting and merging, the release-and-retry on exhaustion, and its statistics.
import { describe, expect, it } from 'vitest';

import { cudaAddon } from './addon-cuda';
import type { NativeTestAllocator } from './addon-cuda';

const MiB = 1 << 20;
const addon = cudaAddon();

function allocator(capacity = 1024 * MiB): NativeTestAllocator {
  return addon.allocatorTestCreate(capacity);
}

describe('CachingAllocator', () => {
  it('rounds requests to 512 bytes and carves small ones from one 2 MiB segment', () => {
    const a = allocator();
    const p = addon.allocatorTestAllocate(a, 1);
    const q = addon.allocatorTestAllocate(a, 513);
    const s = addon.allocatorTestStats(a);
    expect(q - p).toBe(512);
    expect(s.allocated).toBe(512 + 1024);
    expect(s.requested).toBe(514);
    expect(s.reserved).toBe(2 * MiB);
    expect(s.segments).toBe(1);
    expect(s.rawAllocations).toBe(1);
  });

  it('reuses a freed block (best fit) without asking the device again', () => {
    const a = allocator();
    const big = addon.allocatorTestAllocate(a, 8 * MiB);
    addon.allocatorTestFree(a, big);
    const again = addon.allocatorTestAllocate(a, 6 * MiB);
    const s = addon.allocatorTestStats(a);
    expect(again).toBe(big);
    expect(s.rawAllocations).toBe(1);
    expect(s.cacheHits).toBe(1);
    expect(s.allocated).toBe(6 * MiB);
    expect(s.reserved).toBe(8 * MiB);
    expect(s.peakAllocated).toBe(8 * MiB);
  });

  it('merges free neighbours so a segment can serve one request of its whole size again', () => {
    const a = allocator();
    const blocks = [0, 1, 2, 3].map(() => addon.allocatorTestAllocate(a, 256 * 1024));
    addon.allocatorTestFree(a, blocks[1]);
    addon.allocatorTestFree(a, blocks[3]);
    let s = addon.allocatorTestStats(a);
    // Free: block 1 (256 KiB) and blocks 3.. end of segment (2 MiB - 768 KiB): not contiguous.
    expect(s.largestFreeBlock).toBe(2 * MiB - 768 * 1024);
    expect(s.fragmentation).toBeCloseTo(1 - (2 * MiB - 768 * 1024) / (2 * MiB - 512 * 1024), 12);
    addon.allocatorTestFree(a, blocks[2]);
    addon.allocatorTestFree(a, blocks[0]);
    s = addon.allocatorTestStats(a);
    expect(s.largestFreeBlock).toBe(2 * MiB);
    expect(s.fragmentation).toBe(0);
    expect(s.allocated).toBe(0);
    addon.allocatorTestEmptyCache(a);
    expect(addon.allocatorTestStats(a)).toMatchObject({ reserved: 0, segments: 0, rawReleases: 1 });
  });

  it('releases cached segments and retries before reporting out of memory', () => {
    const a = allocator(10 * MiB);
    const first = addon.allocatorTestAllocate(a, 8 * MiB);
    addon.allocatorTestFree(a, first);
    // 8 MiB is cached; 9 MiB does not fit beside it, but does once the cache is released.
    addon.allocatorTestAllocate(a, 9 * MiB - 100);
    const s = addon.allocatorTestStats(a);
    expect(s.rawReleases).toBe(1);
    expect(s.reserved).toBe(10 * MiB);
    expect(() => addon.allocatorTestAllocate(a, 4 * MiB)).toThrow(/out of device memory: tried to allocate 4\.0+ MiB; 10\.0+ MiB allocated, 10\.0+ MiB reserved in 1 segments/);
    expect(addon.allocatorTestStats(a).outOfMemory).toBe(1);
  });

  it('refuses to free an address it did not hand out', () => {
    const a = allocator();
    const p = addon.allocatorTestAllocate(a, 100);
    expect(() => addon.allocatorTestFree(a, p + 512)).toThrow(/is not a live allocation/);
    addon.allocatorTestFree(a, p);
    expect(() => addon.allocatorTestFree(a, p)).toThrow(/is not a live allocation/);
  });

  it('keeps exact totals through a random workload', () => {
    const a = allocator(4096 * MiB);
    let seed = 7;
    const rand = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const live = new Map<number, number>();
    let peak = 0;
    for (let step = 0; step < 3000; step++) {
      if (live.size > 0 && rand() < 0.45) {
        const keys = [...live.keys()];
        const address = keys[Math.floor(rand() * keys.length)];
        addon.allocatorTestFree(a, address);
        live.delete(address);
      } else {
        const bytes = rand() < 0.7 ? Math.floor(rand() * 200_000) + 1 : Math.floor(rand() * 24 * MiB) + 1;
        const address = addon.allocatorTestAllocate(a, bytes);
        expect(live.has(address)).toBe(false);
        live.set(address, bytes);
      }
      const s = addon.allocatorTestStats(a);
      const rounded = [...live.values()].reduce((sum, b) => sum + Math.ceil(b / 512) * 512, 0);
      expect(s.requested).toBe([...live.values()].reduce((sum, b) => sum + b, 0));
      expect(s.allocated).toBeGreaterThanOrEqual(rounded);
      expect(s.reserved).toBeGreaterThanOrEqual(s.allocated);
      peak = Math.max(peak, s.allocated);
      expect(s.peakAllocated).toBe(peak);
      expect(s.liveAllocations).toBe(live.size);
    }
    // No two live blocks overlap.
    const spans = [...live.entries()].map(([address, bytes]) => [address, address + Math.ceil(bytes / 512) * 512]).sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < spans.length; i++) expect(spans[i][0]).toBeGreaterThanOrEqual(spans[i - 1][1]);
  });
});
