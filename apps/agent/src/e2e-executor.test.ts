// End to end with the real executor: coordinator + two agents (two CPU devices each) on 127.0.0.1
// run a pp=2 x dp=2 gpt-tiny job whose worker processes train for real; the losses the job streams
// equal those of the same plan run by the executor's local launcher, which itself equals one
// process training the whole model (packages/executor's equivalence tests).
import { getModel, parseTrainingSpec } from '@mist/core';
import { CoordinatorConnection, startCoordinator } from '@mist/coordinator';
import { launchLocal } from '@mist/executor';
import { afterEach, describe, expect, it } from 'vitest';
import { runAgent } from './agent';
import { cpuDevices } from './devices';
import { alive, freePortRange } from './test/helpers';
import { follow, lastState, pidsOf, TOKEN, tinyPlan, tinySpec } from './test/jobs';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('coordinator + agents + executor workers', () => {
  it('trains a pp=2 x dp=2 job with the losses of the local launcher, and reports success', async () => {
    const steps = 3;
    const coord = await startCoordinator({ listen: '127.0.0.1:0', stateDir: ':memory:', token: TOKEN, stopGraceS: 2 });
    cleanups.push(() => coord.stop());
    for (const host of ['host-a', 'host-b']) {
      const agent = await runAgent({
        coordinator: coord.address, token: TOKEN, deviceList: cpuDevices(2), hostName: host, address: '127.0.0.1',
        portRange: await freePortRange(16),
      });
      cleanups.push(() => agent.stop(1));
      await agent.registered;
    }
    const conn = new CoordinatorConnection(coord.address, { token: TOKEN });
    cleanups.push(() => conn.close());

    const spec = tinySpec(steps, { learningRate: 3e-3 });
    const job = await conn.submit(spec);
    const events = await follow(conn, job.id);
    expect(lastState(events)).toMatchObject({ state: 'JOB_STATE_SUCCEEDED' });
    const jobLosses = events
      .filter((e) => e.worker?.rank === 2 && e.worker.metrics && e.worker.metrics.loss !== undefined)
      .map((e) => e.worker!.metrics!.loss as number);
    expect(jobLosses).toHaveLength(steps);

    const local = await launchLocal({
      plan: tinyPlan(), model: getModel('gpt-tiny'),
      training: parseTrainingSpec({ globalBatch: 8, seqLen: 64, paramDtype: 'fp32', computeDtype: 'fp32' }),
      run: { steps, seed: 1, lr: 3e-3, data: 'corpus' },
    });
    local.steps.forEach((s, i) => expect(Math.abs(jobLosses[i] - s.loss) / s.loss).toBeLessThan(1e-5));
    expect(await conn.get(job.id)).toMatchObject({ state: 'JOB_STATE_SUCCEEDED', step: steps });
    expect(pidsOf(events).every((pid) => !alive(pid))).toBe(true);
  });
});
