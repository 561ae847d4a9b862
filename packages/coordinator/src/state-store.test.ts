import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { StateStore } from './state-store';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('state store (SQLite)', () => {
  it('persists jobs and their history across a restart and marks running jobs interrupted', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-state-'));
    dirs.push(dir);
    const first = new StateStore(dir);
    first.createJob({ id: 'j1', name: 'tiny', requestJson: '{"model":"gpt-tiny"}' }, 1000);
    first.createJob({ id: 'j2', name: 'done', requestJson: '{}' }, 1001);
    first.transition('j1', 'placing', 'placing stages', 1002);
    first.transition('j1', 'starting', 'workers starting', 1003);
    first.transition('j1', 'running', 'step 1', 1004);
    first.setCheckpoint('j1', 20);
    first.transition('j2', 'cancelled', 'by user', 1005);
    first.close();

    const second = new StateStore(dir);
    expect(second.listJobs().map((j) => [j.id, j.state])).toEqual([['j1', 'running'], ['j2', 'cancelled']]);
    const interrupted = second.markUnfinishedInterrupted(2000);
    expect(interrupted.map((j) => [j.id, j.state, j.lastCheckpointStep])).toEqual([['j1', 'interrupted', 20]]);
    expect(second.events('j1').map((e) => e.state)).toEqual(['queued', 'placing', 'starting', 'running', 'interrupted']);
    second.close();
  });

  it('refuses an illegal transition', () => {
    const store = new StateStore(':memory:');
    store.createJob({ id: 'j', name: 'x', requestJson: '{}' });
    store.transition('j', 'failed', 'boom');
    expect(() => store.transition('j', 'running', 'again')).toThrow(/cannot go from failed to running/);
    store.close();
  });
});
