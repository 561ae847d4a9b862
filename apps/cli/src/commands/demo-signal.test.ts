// SIGTERM to `mist demo` stops the coordinator, the agents and their workers
// (they used to be left running, reparented to init). A real `mist demo` process (the built CLI,
// `npm run build`), killed with SIGTERM once training has begun.
import { execFileSync, spawn } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { describe, expect, it } from 'vitest';

const MIST = path.resolve(__dirname, '../../bin/mist.js');

/** Every descendant pid of `pid` (Linux `ps`). */
function descendants(pid: number): number[] {
  const rows = execFileSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' }).trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number));
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const [child, parent] of rows) if (parent === p) { out.push(child); walk(child); }
  };
  walk(pid);
  return out;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('mist demo and SIGTERM', () => {
  it('stops the coordinator, the agents and the workers, and exits 143', async () => {
    const demo = spawn(process.execPath, [MIST, 'demo', '--steps', '100000', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => demo.once('exit', (code) => resolve(code)));
    let stderr = '';
    const stdout: string[] = [];
    demo.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    await new Promise<void>((resolve, reject) => {
      readline.createInterface({ input: demo.stdout! }).on('line', (l) => {
        stdout.push(l);
        if (/"step":/.test(l)) resolve();
      });
      // With --json the demo reports on stdout: its last lines say why it ended.
      void exited.then((code) => reject(new Error(`demo exited (${code}) before training: ${stderr}\n${stdout.slice(-10).join('\n')}`)));
    });
    const tree = descendants(demo.pid!);
    expect(tree.length).toBeGreaterThanOrEqual(3 + 4); // coordinator, 2 agents, 4 workers
    demo.kill('SIGTERM');
    expect(await exited).toBe(143);
    const deadline = Date.now() + 15_000;
    while (tree.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(tree.filter(alive)).toEqual([]);
  }, 180_000);
});
