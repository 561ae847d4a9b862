// A job cannot make an agent write checkpoints outside its --checkpoint-root.
// Real coordinator and agent process (fixture workers).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CoordinatorConnection, startCoordinator } from '@mist/coordinator';
import { afterEach, describe, expect, it } from 'vitest';
import { checkCheckpointDir } from './checkpoint-root';
import { freePortRange, spawnAgent } from './test/helpers';
import { follow, lastState, TOKEN, tinySpec } from './test/jobs';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('--checkpoint-root', () => {
  it('refuses checkpoint directories outside the root (../, symbolic links) and runs those inside', async () => {
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-ckroot-'));
    cleanups.push(() => fs.rmSync(scratch, { recursive: true, force: true }));
    const root = path.join(scratch, 'root');
    fs.mkdirSync(root);
    fs.symlinkSync(scratch, path.join(root, 'link-out'));
    const coord = await startCoordinator({ listen: '127.0.0.1:0', stateDir: ':memory:', token: TOKEN, stopGraceS: 1 });
    cleanups.push(() => coord.stop());
    const ports = await freePortRange(16);
    const agent = await spawnAgent(coord.address, TOKEN, ['--cpu-devices', '4', '--host-name', 'h', '--address', '127.0.0.1', '--worker-ports', `${ports.first}:${ports.count}`, '--checkpoint-root', root]);
    cleanups.push(async () => {
      agent.child.kill('SIGTERM');
      await agent.exited;
    });
    const conn = new CoordinatorConnection(coord.address, { token: TOKEN });
    cleanups.push(() => conn.close());
    for (const bad of [path.join(root, '..', 'escaped'), path.join(root, 'link-out', 'escaped')]) {
      const job = await conn.submit(tinySpec(2, { checkpointDir: bad, checkpointInterval: 1 }));
      const end = lastState(await follow(conn, job.id));
      expect(end.state).toBe('JOB_STATE_FAILED');
      expect(end.message).toMatch(/cannot start: run\.checkpointDir ".*escaped": outside this agent's --checkpoint-root/);
    }
    expect(fs.existsSync(path.join(scratch, 'escaped'))).toBe(false);
    const ok = await conn.submit(tinySpec(2, { checkpointDir: path.join(root, 'job-ok'), checkpointInterval: 1 }));
    expect(lastState(await follow(conn, ok.id)).state).toBe('JOB_STATE_SUCCEEDED');
  }, 60_000);

  it('without a root, still refuses relative paths and NUL bytes', () => {
    expect(() => checkCheckpointDir('pwn-rel-ckpt', undefined)).toThrow(/must be an absolute path/);
    expect(() => checkCheckpointDir('/tmp/a\0b', undefined)).toThrow(/NUL byte/);
    expect(checkCheckpointDir('/tmp/x/../y', undefined)).toBe('/tmp/y');
  });
});
