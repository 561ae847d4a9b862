// Failure behaviour of the CPU backend: dead peers, silent peers, bad arguments and destroy() must
// end in a rejected Promise with a message naming the operation and the peer, never a hang or a
// crash. Multi-process cases use test-worker.js; single-process cases put two ranks in this one.
import { afterEach, describe, expect, it } from 'vitest';
import { createCommunicator, listenCpu, type Communicator } from './index';
import { connect, startWorkers, stopWorkers } from './test-cluster.js';

type Worker = Awaited<ReturnType<typeof startWorkers>>[number];
interface FailureReport {
  message: string;
  elapsedMs: number;
  later: string;
}

/** Two connected ranks inside this process. */
async function localPair(timeoutMs: number): Promise<Communicator<Float32Array>[]> {
  const listeners = await Promise.all([listenCpu(), listenCpu()]);
  const peers = listeners.map((l) => l.address);
  return Promise.all(
    listeners.map((listener, rank) => createCommunicator({ backend: 'cpu', rank, worldSize: 2, peers, listener, timeoutMs })),
  );
}

describe('cpu backend failures across processes', () => {
  let workers: Worker[] = [];

  afterEach(async () => {
    await stopWorkers(workers);
  });

  it('rejects on every other rank, naming the dead rank, when one rank is killed mid all-reduce', async () => {
    const timeoutMs = 3000;
    workers = await startWorkers(4);
    const ranks = await connect(workers, 4, timeoutMs);
    const victim = 2;
    const survivors = ranks.filter((_, r) => r !== victim);
    const reports = survivors.map((w) => w.run('allReduceExpectFailure', { count: 8 * 1024 * 1024 }) as Promise<FailureReport>);
    void ranks[victim].run('allReduceThenDie', { count: 8 * 1024 * 1024 }).catch(() => undefined);
    expect((await ranks[victim].exited).signal).toBe('SIGKILL');

    for (const report of await Promise.all(reports)) {
      expect(report.message).toMatch(/^allReduce failed on rank \d of 4: /);
      expect(report.message).toMatch(/peer rank 2 \(127\.0\.0\.1:\d+\)/);
      expect(report.elapsedMs).toBeLessThan(timeoutMs + 2000);
      expect(report.later).toMatch(/^barrier failed on rank \d of 4: the communicator is unusable after an earlier failure: allReduce failed/);
    }
  });

  it('rejects naming the peer when a peer process exited before the call', async () => {
    workers = await startWorkers(3);
    const ranks = await connect(workers, 3, 3000);
    await ranks[1].kill();
    const reports = (await Promise.all(
      [ranks[0], ranks[2]].map((w) => w.run('allReduceExpectFailure', { count: 1000 })),
    )) as FailureReport[];
    for (const report of reports) expect(report.message).toMatch(/peer rank 1 \(127\.0\.0\.1:\d+\)/);
  });
});

describe('cpu backend failures within one process', () => {
  it('times out, naming the silent peer, when a rank never joins the collective', async () => {
    const [a, b] = await localPair(300);
    const start = Date.now();
    await expect(a.allReduce(new Float32Array(10))).rejects.toThrow(
      /^allReduce failed on rank 0 of 2: timed out after 300 ms without progress waiting for data from peer rank 1/,
    );
    expect(Date.now() - start).toBeLessThan(3000);
    await Promise.all([a.destroy(), b.destroy()]);
  });

  it('rejects invalid arguments without breaking the communicator', async () => {
    const [a, b] = await localPair(5000);
    await expect(a.allGather(new Float32Array(3), new Float32Array(5))).rejects.toThrow(
      'allGather: output has 5 elements but worldSize 2 x input 3 = 6 are needed',
    );
    await expect(a.send(new Float32Array(1), 0)).rejects.toThrow('send: peer 0 is this rank itself');
    await expect(a.broadcast(new Float32Array(1), 7)).rejects.toThrow('broadcast: root 7 is not a rank');
    const wrongType = new Float64Array(4) as unknown as Float32Array;
    await expect(a.allReduce(wrongType)).rejects.toThrow('must be a Float32Array');
    const x = Float32Array.of(1, 2);
    const y = Float32Array.of(10, 20);
    await Promise.all([a.allReduce(x, 'max'), b.allReduce(y, 'max')]);
    expect([...x, ...y]).toEqual([10, 20, 10, 20]);
    await Promise.all([a.destroy(), b.destroy()]);
  });

  it('rejects mismatched buffer sizes on two ranks with a clear error', async () => {
    const [a, b] = await localPair(5000);
    const results = await Promise.allSettled([a.send(new Float32Array(4), 1), b.recv(new Float32Array(8), 0)]);
    expect(results[1]).toMatchObject({ status: 'rejected' });
    expect(String((results[1] as PromiseRejectedResult).reason)).toMatch(
      /peer rank 0 \(127\.0\.0\.1:\d+\) sent 16 bytes where this rank expects 32/,
    );
    await Promise.all([a.destroy(), b.destroy()]);
  });

  it('rejects a pending call when the communicator is destroyed', async () => {
    const [a, b] = await localPair(30_000);
    const pending = expect(a.allReduce(new Float32Array(100))).rejects.toThrow(/the communicator was destroyed/);
    await a.destroy();
    await pending;
    await expect(a.barrier()).rejects.toThrow('the communicator was destroyed');
    await b.destroy();
  });

  it('fails creation with the missing peer named when a peer never connects', async () => {
    const listener = await listenCpu();
    const absent = await listenCpu();
    const peers = [listener.address, absent.address];
    absent.close();
    await expect(createCommunicator({ backend: 'cpu', rank: 0, worldSize: 2, peers, listener, timeoutMs: 300 })).rejects.toThrow(
      /^connect failed on rank 0 of 2: timed out after 300 ms waiting for peer rank\(s\) 1 \(127\.0\.0\.1:\d+\) to connect/,
    );
    await expect(
      createCommunicator({ backend: 'cpu', rank: 1, worldSize: 2, peers, timeoutMs: 300 }),
    ).rejects.toThrow(/^connect failed on rank 1 of 2: cannot connect to peer rank 0 \(127\.0\.0\.1:\d+\)/);
  });
});
