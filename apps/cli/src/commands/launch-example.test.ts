// The job file shown by `mist launch --help` runs on CPU agents (the agents README's demo uses): with
// CPU devices, tuning needs a measured profile, so the example names one.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { cpuDevices, runAgent } from '@mist/app-agent';
import { startCoordinator } from '@mist/coordinator';
import { builtinHardwareProfile, parseClusterShorthand } from '@mist/core';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../test/run-cli';
import { launchCommand } from './launch';

const FIXTURE_WORKER = path.resolve(__dirname, '../../../agent/src/test/fixture-worker.js');
const TOKEN = 'cli-example-token';
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** `count` ports free now, at a random base below the ephemeral range (as launch.test.ts does). */
async function freePortRange(count: number): Promise<{ first: number; count: number }> {
  const free = (port: number) => new Promise<boolean>((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
  for (;;) {
    const first = 10000 + Math.floor(Math.random() * (32000 - 10000 - count));
    let ok = true;
    for (let p = first; p < first + count && ok; p++) ok = await free(p);
    if (ok) return { first, count };
  }
}

describe('mist launch --help', () => {
  it('shows a job file that tunes and runs on CPU agents', async () => {
    const example = launchCommand.examples.find((e) => e.startsWith('job.json: '));
    expect(example).toBeDefined();
    const job = JSON.parse(example!.slice('job.json: '.length)) as { profile?: string; run: { steps: number } };
    expect(job.profile).toBe('host.json');
    expect(launchCommand.examples.some((e) => e.startsWith('mist profile --quick --out host.json'))).toBe(true);

    const coord = await startCoordinator({ listen: '127.0.0.1:0', stateDir: ':memory:', token: TOKEN, stopGraceS: 1 });
    cleanups.push(() => coord.stop());
    for (const host of ['host-a', 'host-b']) {
      const agent = await runAgent({
        coordinator: coord.address, token: TOKEN, deviceList: cpuDevices(2), hostName: host, address: '127.0.0.1',
        portRange: await freePortRange(16), workerScript: FIXTURE_WORKER, workerEnv: { MIST_FIXTURE_MODE: 'succeed' },
      });
      cleanups.push(() => agent.stop(1));
      await agent.registered;
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-launch-example-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    // A profile as `mist profile` writes one (its numbers do not matter here: the fixture worker trains nothing).
    fs.writeFileSync(path.join(dir, 'host.json'), JSON.stringify(builtinHardwareProfile(parseClusterShorthand('1x2-l4'))));
    fs.writeFileSync(path.join(dir, 'job.json'), JSON.stringify({ ...job, run: { ...job.run, steps: 3 } }));
    const res = await runCli(['launch', path.join(dir, 'job.json'), '--coordinator', coord.address, '--token', TOKEN]);
    expect(res.stderr).not.toMatch(/cannot tune for the agents' devices/);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/: succeeded/);
    // Without the profile, the same job cannot be tuned for CPU devices: why the example names one.
    const { profile: _p, ...bare } = job;
    fs.writeFileSync(path.join(dir, 'bare.json'), JSON.stringify({ ...bare, run: { ...job.run, steps: 3 } }));
    const without = await runCli(['launch', path.join(dir, 'bare.json'), '--coordinator', coord.address, '--token', TOKEN]);
    expect(without.code).not.toBe(0);
    expect(without.stderr).toMatch(/cannot tune for the agents' devices/);
  });
});
