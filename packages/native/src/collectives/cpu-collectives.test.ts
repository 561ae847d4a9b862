// Multi-process tests of the CPU backend: real node processes (test-worker.js) on 127.0.0.1 with
// port 0, connected through addresses gathered over IPC. Each worker checks its own result
// exactly against values computed independently in JavaScript.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, runAll, startWorkers, stopWorkers } from './test-cluster.js';

type Worker = Awaited<ReturnType<typeof startWorkers>>[number];

let workers: Worker[] = [];

beforeAll(async () => {
  workers = await startWorkers(4);
});

afterAll(async () => {
  await stopWorkers(workers);
});

describe.each([2, 3, 4])('cpu backend with worldSize %i', (worldSize) => {
  let ranks: Worker[] = [];

  beforeAll(async () => {
    ranks = await connect(workers, worldSize);
  });

  afterAll(async () => {
    await Promise.all(ranks.map((w) => w.request('destroy')));
  });

  // 1003 is not a multiple of 2, 3 or 4; 2_000_003 spans several 1 MiB slices per ring segment.
  it.each([
    ['sum', 1],
    ['sum', 1003],
    ['sum', 2_000_003],
    ['avg', 7],
    ['avg', 1003],
    ['max', 7],
    ['max', 1003],
  ])('allReduce %s of %i floats', async (op, count) => {
    expect(await runAll(ranks, 'allReduce', { count, op })).toEqual(ranks.map(() => count));
  });

  it.each([1, 5, 300_001])('allGather of %i floats per rank', async (count) => {
    expect(await runAll(ranks, 'allGather', { count })).toEqual(ranks.map(() => count * worldSize));
  });

  it.each([
    ['sum', 3],
    ['avg', 3],
    ['max', 3],
    ['sum', 300_001],
  ])('reduceScatter %s with %i floats per rank', async (op, count) => {
    expect(await runAll(ranks, 'reduceScatter', { count, op })).toEqual(ranks.map(() => count));
  });

  it.each([
    [0, 7],
    [worldSize - 1, 1_000_003],
  ])('broadcast from root %i of %i floats', async (root, count) => {
    expect(await runAll(ranks, 'broadcast', { count, root })).toEqual(ranks.map(() => count));
  });

  it.each([5, 500_001])('grouped ring send/recv and ordered send/recv of %i floats', async (count) => {
    expect(await runAll(ranks, 'sendRecv', { count })).toEqual(ranks.map(() => count));
  });

  it('splits into two groups (by rank parity, reverse key order) that reduce independently', async () => {
    const sizes = await runAll(ranks, 'split', { count: 1001 });
    expect(sizes).toEqual(ranks.map((_, r) => Math.ceil((worldSize - (r % 2)) / 2)));
  });

  it('barrier completes on every rank', async () => {
    expect(await runAll(ranks, 'barrier')).toEqual(ranks.map(() => true));
  });
});

describe('large buffers', () => {
  it('all-reduces 16M + 3 floats over 4 ranks exactly', async () => {
    const ranks = await connect(workers, 4);
    try {
      const count = 16 * 1024 * 1024 + 3;
      expect(await runAll(ranks, 'allReduce', { count, op: 'sum' })).toEqual([count, count, count, count]);
    } finally {
      await Promise.all(ranks.map((w) => w.request('destroy')));
    }
  });
});
