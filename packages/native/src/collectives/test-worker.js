// One rank of the multi-process collectives tests (forked by test-cluster.js). Plain JavaScript so
// it runs under bare node; it loads the TypeScript API from source through the repository's require
// hook (tools/scripts/ts-register.js), so the tests exercise exactly the code under test without a build.
// The parent drives it with IPC messages { id, cmd, ...args } and gets { id, ok, value | error }.
'use strict';
const path = require('node:path');

require(path.resolve(__dirname, '../../../../tools/scripts/ts-register.js'));
const api = require('./index.ts');

// The value rank `rank` contributes at index `i`: small integers (so float32 sums are exact) that
// repeat every PERIOD indices, so expected results are a table lookup even for 16M elements.
const PERIOD = 1000;
function value(rank, i) {
  return ((i * 7 + rank * 13) % PERIOD) - 500 + rank;
}

function filled(rank, count, offset = 0) {
  const a = new Float32Array(count);
  for (let i = 0; i < Math.min(count, PERIOD); i++) a[i] = value(rank, i + offset);
  for (let len = PERIOD; len < count; len *= 2) a.copyWithin(len, 0, Math.min(len, count - len));
  return a;
}

/** expected[i % PERIOD] is the reduction over `ranks` of their values at index i. */
function reducedTable(op, ranks) {
  const table = new Float64Array(PERIOD);
  for (let j = 0; j < PERIOD; j++) {
    let acc = op === 'max' ? -Infinity : 0;
    for (const r of ranks) acc = op === 'max' ? Math.max(acc, value(r, j)) : acc + value(r, j);
    table[j] = op === 'avg' ? Math.fround(acc / ranks.length) : acc;
  }
  return table;
}

/** Counts mismatches; reports the first one. */
function compare(actual, expectedAt) {
  let bad = 0;
  let first = '';
  for (let i = 0; i < actual.length; i++) {
    const e = expectedAt(i);
    if (actual[i] !== e) {
      if (bad === 0) first = `index ${i}: got ${actual[i]}, expected ${e}`;
      bad++;
    }
  }
  if (bad > 0) throw new Error(`${bad} of ${actual.length} elements wrong, first at ${first}`);
  return actual.length;
}

const range = (n) => Array.from({ length: n }, (_, i) => i);
let listener;
let comm;

const scenarios = {
  async allReduce({ count, op }) {
    const buf = filled(comm.rank, count);
    await comm.allReduce(buf, op);
    const table = reducedTable(op, range(comm.worldSize));
    return compare(buf, (i) => table[i % PERIOD]);
  },
  async allGather({ count }) {
    const out = new Float32Array(count * comm.worldSize);
    await comm.allGather(filled(comm.rank, count), out);
    return compare(out, (i) => value(Math.floor(i / count), i % count));
  },
  async reduceScatter({ count, op }) {
    const out = new Float32Array(count);
    await comm.reduceScatter(filled(comm.rank, count * comm.worldSize), out, op);
    const table = reducedTable(op, range(comm.worldSize));
    return compare(out, (i) => table[(comm.rank * count + i) % PERIOD]);
  },
  async broadcast({ count, root }) {
    const buf = comm.rank === root ? filled(root, count) : new Float32Array(count);
    await comm.broadcast(buf, root);
    return compare(buf, (i) => value(root, i));
  },
  // Every rank sends to its right and receives from its left in one group (a cycle of blocking
  // sends would deadlock without grouping), then ranks 0 and 1 do an ordered send/recv pair.
  async sendRecv({ count }) {
    const n = comm.worldSize;
    const right = (comm.rank + 1) % n;
    const left = (comm.rank + n - 1) % n;
    const fromLeft = new Float32Array(count);
    await comm.group((g) => {
      g.send(filled(comm.rank, count), right);
      g.recv(fromLeft, left);
    });
    compare(fromLeft, (i) => value(left, i));
    const pair = new Float32Array(count);
    if (comm.rank === 0) {
      await comm.send(filled(0, count, 5), 1);
      await comm.recv(pair, 1);
      compare(pair, (i) => value(1, i + 9));
    } else if (comm.rank === 1) {
      await comm.recv(pair, 0);
      compare(pair, (i) => value(0, i + 5));
      await comm.send(filled(1, count, 9), 0);
    }
    return count;
  },
  // Two groups by parity, ranked in reverse order of the parent ranks.
  async split({ count }) {
    const color = comm.rank % 2;
    const child = await comm.split(color, -comm.rank);
    const members = range(comm.worldSize).filter((r) => r % 2 === color);
    const expectedRank = members.length - 1 - members.indexOf(comm.rank);
    if (child.worldSize !== members.length || child.rank !== expectedRank) {
      throw new Error(`child is rank ${child.rank} of ${child.worldSize}, expected ${expectedRank} of ${members.length}`);
    }
    const buf = filled(comm.rank, count);
    await child.allReduce(buf, 'sum');
    const table = reducedTable('sum', members);
    compare(buf, (i) => table[i % PERIOD]);
    const none = await comm.split(-1, 0);
    if (none !== null) throw new Error('a negative color must give null');
    await child.barrier();
    await child.destroy();
    return child.worldSize;
  },
  async barrier() {
    await comm.barrier();
    return true;
  },
  // Expects the collective to fail; reports the message and how long it took.
  async allReduceExpectFailure({ count }) {
    const start = Date.now();
    try {
      await comm.allReduce(filled(comm.rank, count), 'sum');
    } catch (e) {
      const elapsedMs = Date.now() - start;
      let later = '';
      try {
        await comm.barrier();
      } catch (e2) {
        later = e2.message;
      }
      return { message: e.message, elapsedMs, later };
    }
    throw new Error('allReduce succeeded although a peer died');
  },
  // Starts a large all-reduce and dies while it runs.
  async allReduceThenDie({ count }) {
    comm.allReduce(filled(comm.rank, count), 'sum').catch(() => {});
    setImmediate(() => process.kill(process.pid, 'SIGKILL'));
    return new Promise(() => {});
  },
};

const commands = {
  async listen() {
    listener = await api.listenCpu({ host: '127.0.0.1', port: 0 });
    return listener.address;
  },
  async connect({ rank, worldSize, peers, timeoutMs }) {
    comm = await api.createCommunicator({ backend: 'cpu', rank, worldSize, peers, listener, timeoutMs });
    return { rank: comm.rank, worldSize: comm.worldSize };
  },
  async run({ scenario, args }) {
    return scenarios[scenario](args);
  },
  async destroy() {
    if (comm) await comm.destroy();
    comm = undefined;
    return true;
  },
};

process.on('message', async (msg) => {
  try {
    const value = await commands[msg.cmd](msg);
    process.send({ id: msg.id, ok: true, value });
  } catch (e) {
    process.send({ id: msg.id, ok: false, error: e instanceof Error ? e.message : String(e) });
  }
});
process.on('disconnect', () => process.exit(0));
process.send({ ready: true });
