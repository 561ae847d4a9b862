// `run.data` may be a token file (a flat array of uint16/uint32 token ids). Real
// coordinator, two agents and executor worker processes; the job's losses equal those of the local
// launcher on the same file, and a file with an id outside the vocabulary fails naming run.data.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { getModel, parseTrainingSpec } from '@mist/core';
import { CoordinatorConnection, startCoordinator } from '@mist/coordinator';
import { launchLocal } from '@mist/executor';
import { afterEach, describe, expect, it } from 'vitest';
import { runAgent } from './agent';
import { cpuDevices } from './devices';
import { freePortRange } from './test/helpers';
import { follow, lastState, TOKEN, tinyPlan, tinySpec } from './test/jobs';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('token files as training data', () => {
  it('trains from a uint32 token file with the local launcher\'s losses; refuses ids outside the vocabulary', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-tokens-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const ids = Uint32Array.from({ length: 4096 }, (_, i) => (i * 7919 + (i >> 3)) % 256);
    const good = path.join(dir, 'train.bin');
    fs.writeFileSync(good, Buffer.from(ids.buffer));
    const bad = path.join(dir, 'bad.bin');
    fs.writeFileSync(bad, Buffer.from(Uint32Array.of(1, 2, 300, 4).buffer));

    const coord = await startCoordinator({ listen: '127.0.0.1:0', stateDir: ':memory:', token: TOKEN, stopGraceS: 1 });
    cleanups.push(() => coord.stop());
    for (const host of ['host-a', 'host-b']) {
      const agent = await runAgent({ coordinator: coord.address, token: TOKEN, deviceList: cpuDevices(2), hostName: host, address: '127.0.0.1', portRange: await freePortRange(16) });
      cleanups.push(() => agent.stop(1));
      await agent.registered;
    }
    const conn = new CoordinatorConnection(coord.address, { token: TOKEN });
    cleanups.push(() => conn.close());

    const steps = 3;
    const job = await conn.submit(tinySpec(steps, { learningRate: 3e-3, dataPath: good, dataDtype: 'uint32' }));
    const events = await follow(conn, job.id);
    expect(lastState(events).state).toBe('JOB_STATE_SUCCEEDED');
    const losses = events.filter((e) => e.worker?.rank === 2 && e.worker.metrics?.loss !== undefined).map((e) => e.worker!.metrics!.loss as number);
    const local = await launchLocal({
      plan: tinyPlan(), model: getModel('gpt-tiny'), training: parseTrainingSpec({ globalBatch: 8, seqLen: 64, paramDtype: 'fp32', computeDtype: 'fp32' }),
      run: { steps, seed: 1, lr: 3e-3, data: { file: good, dtype: 'uint32' } },
    });
    expect(losses).toHaveLength(steps);
    losses.forEach((l, i) => expect(Math.abs(l - local.steps[i].loss) / local.steps[i].loss).toBeLessThan(1e-5));

    const refused = await conn.submit(tinySpec(steps, { dataPath: bad, dataDtype: 'uint32' }));
    const end = lastState(await follow(conn, refused.id));
    expect(end.state).toBe('JOB_STATE_FAILED');
    expect(end.message).toMatch(/run\.data .*bad\.bin: token 2 is 300, outside the model's vocabulary of 256/);
  }, 90_000);
});
