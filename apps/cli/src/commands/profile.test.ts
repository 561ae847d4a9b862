import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { builtinHardwareProfile, cpuMachineKind, parseClusterShorthand, parseHardwareProfile } from '@mist/core';
import { type ProfileHostOptions, profileHost, SMOKE_GRID } from '@mist/profiler';
import { runCli } from '../test/run-cli';
import { makeProfileCommand } from './profile';

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'mist-profile-'));
const plan = path.resolve(__dirname, '../../../../examples/plans/gpt3-1.3b-1x2-l4.json');

describe('mist profile', () => {
  it('measures, shows progress on stderr, writes a profile core accepts and prints every fit\'s error', async () => {
    const seen: ProfileHostOptions[] = [];
    // The real profiler on the smoke-test grid (seconds instead of a minute).
    const cmd = makeProfileCommand((o) => {
      seen.push(o);
      return profileHost({ ...o, grid: SMOKE_GRID });
    });
    const out = path.join(tmp(), 'host.json');
    let stdout = '', stderr = '';
    const io = { stdout: (t: string) => { stdout += t; }, stderr: (t: string) => { stderr += t; }, isTTY: false };
    expect(await cmd.run({ quick: true, out, threads: '1' }, [], io)).toBe(0);
    expect(seen[0]).toMatchObject({ quick: true, threadsPerDevice: 1 });
    const profile = parseHardwareProfile(JSON.parse(fs.readFileSync(out, 'utf8')));
    expect(profile.machineKind).toBe(cpuMachineKind());
    expect(stderr).toMatch(/profile (\d+)\/\1 \(100%\)/);
    expect(stdout).toContain(`written to ${out}`);
    expect(stdout).toMatch(/Fits and their error/);
    expect(stdout).toMatch(/matmul\s+4\s+[\d.]+%\s+[\d.]+%/);
    expect(stdout).toMatch(/allReduce/);
  });

  it('asks for --out (or --json)', async () => {
    const res = await runCli(['profile', '--quick']);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/--out FILE is required/);
  });
});

describe('mist analyze --profile checks the machine kind', () => {
  const write = (machineKind: string): string => {
    const file = path.join(tmp(), 'p.json');
    fs.writeFileSync(file, JSON.stringify({ ...builtinHardwareProfile(parseClusterShorthand('1x2-l4')), source: 'measured', machineKind }));
    return file;
  };

  it('refuses a profile from another kind of machine with a clear message, and takes it with --force', async () => {
    const foreign = write('Imaginary CPU 9000 (256 cores)');
    const refused = await runCli(['analyze', '--plan', plan, '--profile', foreign]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/measured on another kind of machine; this one is ".*cores\)".*--force/);
    const forced = await runCli(['analyze', '--plan', plan, '--profile', foreign, '--force']);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toMatch(/gpt3-1\.3b on 1x2-l4 \(measured\)/);
  });

  it('accepts a profile of this machine kind', async () => {
    const res = await runCli(['analyze', '--plan', plan, '--profile', write(cpuMachineKind())]);
    expect(res.code).toBe(0);
  });
});
