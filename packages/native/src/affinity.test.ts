import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { deviceCores } from './affinity';

describe('deviceCores', () => {
  it('gives device d the T cores counted down from the last: device 0 the highest', () => {
    expect(deviceCores(0, 1, 8)).toEqual([7]);
    expect(deviceCores(3, 2, 8)).toEqual([1, 0]);
  });

  it('wraps around when devices outnumber the cores, and never asks for more cores than exist', () => {
    expect([0, 1, 2, 3].map((d) => deviceCores(d, 1, 2))).toEqual([[1], [0], [1], [0]]);
    expect(deviceCores(1, 4, 2)).toEqual([1, 0]);
  });

  it('names a bad device or thread count', () => {
    expect(() => deviceCores(-1, 1)).toThrow(/device must be a non-negative integer, got -1/);
    expect(() => deviceCores(0, 0)).toThrow(/threads must be a positive integer, got 0/);
  });
});

// Pinning runs in a child process: pinning the test runner would slow every other test.
describe.runIf(os.platform() === 'linux')('pinProcessToCores', () => {
  const run = (script: string): { status: number | null; stdout: string; stderr: string } => {
    const dist = path.resolve(__dirname, '../dist/index.js');
    const r = spawnSync(process.execPath, ['-e', `const n = require(${JSON.stringify(dist)}); ${script}`], { encoding: 'utf8' });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  it('pins every thread of the process, threads started later included', () => {
    const last = os.cpus().length - 1;
    const r = run(`
      const pinned = n.pinProcessToCores([${last}]);
      const b = new n.KernelBatch(), a = new Float32Array(4);
      b.copy(a, a);
      b.run().then(() => {
        const fs = require('fs');
        const tasks = fs.readdirSync('/proc/self/task');
        const lists = tasks.map((t) => /Cpus_allowed_list:\\s*(\\S+)/.exec(fs.readFileSync('/proc/self/task/' + t + '/status', 'utf8'))[1]);
        console.log(JSON.stringify({ pinned, lists }));
      });`);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { pinned: number; lists: string[] };
    expect(out.pinned).toBeGreaterThan(1); // the JavaScript thread and Node's own threads
    expect(new Set(out.lists)).toEqual(new Set([String(last)]));
  });

  it('refuses a core the host does not have, naming it', () => {
    const r = run(`try { n.pinProcessToCores([4096]); } catch (e) { console.log(e.message); }`);
    expect(r.stdout).toMatch(/core 4096 is outside 0\.\.\d+/);
  });
});
