// CPU backend behaviours that need no separate processes: ranks share this process, each
// communicator still runs on its own thread over real TCP connections.
import { describe, expect, it } from 'vitest';
import { createCommunicator, listenCpu, type Communicator, type ListenCpuOptions } from './index';

async function localRanks(worldSize: number, listen: ListenCpuOptions = {}): Promise<Communicator<Float32Array>[]> {
  const listeners = await Promise.all(Array.from({ length: worldSize }, () => listenCpu(listen)));
  const peers = listeners.map((l) => l.address);
  return Promise.all(listeners.map((listener, rank) => createCommunicator({ backend: 'cpu', rank, worldSize, peers, listener })));
}

describe('cpu backend in one process', () => {
  it('advertises a reachable address when listening on all interfaces', async () => {
    const comms = await localRanks(2, { host: '0.0.0.0' });
    const bufs = [Float32Array.of(1, 2, 3), Float32Array.of(10, 20, 30)];
    await Promise.all(comms.map((c, r) => c.allReduce(bufs[r], 'sum')));
    expect([...bufs[0]]).toEqual([11, 22, 33]);
    expect([...bufs[1]]).toEqual([11, 22, 33]);
    await Promise.all(comms.map((c) => c.destroy()));
  });

  it('runs a group of collectives and send/recv issued in different orders on the two ranks', async () => {
    const [a, b] = await localRanks(2);
    const sum = [Float32Array.of(1, 2), Float32Array.of(3, 4)];
    const fromB = new Float32Array(3);
    const fromA = new Float32Array(3);
    await Promise.all([
      a.group([
        { kind: 'allReduce', buffer: sum[0] },
        { kind: 'recv', buffer: fromB, peer: 1 },
        { kind: 'send', buffer: Float32Array.of(7, 8, 9), peer: 1 },
      ]),
      b.group((g) => {
        g.send(Float32Array.of(4, 5, 6), 0);
        g.allReduce(sum[1]);
        g.recv(fromA, 0);
      }),
    ]);
    expect([...sum[0], ...sum[1]]).toEqual([4, 6, 4, 6]);
    expect([...fromB]).toEqual([4, 5, 6]);
    expect([...fromA]).toEqual([7, 8, 9]);
    await Promise.all([a.destroy(), b.destroy()]);
  });

  it('sends 2(n-1)/n of the buffer per rank in a ring all-reduce', async () => {
    const worldSize = 4;
    const comms = await localRanks(worldSize);
    const count = 1 << 20;
    const before = comms.map((c) => c.trafficStats()?.bytesSent ?? 0);
    await Promise.all(comms.map((c) => c.allReduce(new Float32Array(count).fill(1))));
    comms.forEach((c, r) => {
      const sent = (c.trafficStats()?.bytesSent ?? 0) - before[r];
      expect(sent / (count * 4)).toBeCloseTo((2 * (worldSize - 1)) / worldSize, 3);
    });
    await Promise.all(comms.map((c) => c.destroy()));
  });
});
