// A GPU's measured profile replaces the calibrated datasheet one: `mist profile --device cuda --save`
// keeps it ($MIST_PROFILE_DIR), `mist analyze` and `mist tune` use it for clusters of that GPU (carried
// to their shape) unless --datasheet or an engine target asks for the built-in one, and a --profile of
// the same GPU on another cluster shape is carried to the --cluster given.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CUDA_SMOKE_GRID, profileCuda, profilerTesting } from '@mist/profiler';
import { writeGpt13bPlan } from '../test/plan-file';
import { runCli } from '../test/run-cli';
import { scratchDir } from '../test/scratch';
import { makeProfileCommand } from './profile';

describe('a kept measured GPU profile', () => {
  let before: string | undefined;
  let store = '';
  beforeEach(() => {
    before = process.env.MIST_PROFILE_DIR;
    store = scratchDir('profiles');
    process.env.MIST_PROFILE_DIR = store;
  });
  afterEach(() => {
    if (before === undefined) delete process.env.MIST_PROFILE_DIR;
    else process.env.MIST_PROFILE_DIR = before;
  });

  /** Profiles the simulated H100 (profiler's testing runtime) with --save; returns the written file. */
  async function keepSimulatedH100(dir: string): Promise<string> {
    const rt = profilerTesting.simulatedCudaRuntime();
    const cmd = makeProfileCommand(undefined, { probe: rt.probe, profile: (o) => profileCuda({ ...o, grid: CUDA_SMOKE_GRID, runtime: rt }) });
    const out = path.join(dir, 'gpu.json');
    let stderr = '';
    const io = { stdout: () => undefined, stderr: (t: string) => { stderr += t; }, isTTY: false };
    expect(await cmd.run({ device: 'cuda', quick: true, save: true, out }, [], io)).toBe(0);
    expect(stderr).toMatch(/kept as the measured h100-sxm profile: .*h100-sxm\.bf16\.json/);
    expect(fs.readdirSync(store)).toEqual(['h100-sxm.bf16.json']);
    return out;
  }

  it('mist analyze predicts an H100 plan with it; --datasheet and an engine target keep the built-in profile', async () => {
    const dir = scratchDir('kept');
    await keepSimulatedH100(dir);
    const plan = writeGpt13bPlan(dir, { cluster: '2x8-h100-sxm', nodes: 2, tp: 2 });
    const kept = await runCli(['analyze', plan, '--json']);
    expect(kept.code).toBe(0);
    expect(kept.stderr).toMatch(/using the measured h100-sxm profile .*h100-sxm\.bf16\.json .*--datasheet for the built-in one/);
    expect(JSON.parse(kept.stdout).profile).toBe('measured');
    const datasheet = await runCli(['analyze', plan, '--json', '--datasheet']);
    expect(JSON.parse(datasheet.stdout).profile).toBe('datasheet:h100-sxm');
    expect(datasheet.stderr).not.toMatch(/measured/);
    expect(JSON.parse(datasheet.stdout).iterationTimeS).not.toBe(JSON.parse(kept.stdout).iterationTimeS);
    const engine = await runCli(['analyze', plan, '--json', '--target', 'megatron']);
    expect(JSON.parse(engine.stdout).profile).toBe('datasheet:h100-sxm');
    // Another GPU has no kept profile.
    const l4 = await runCli(['analyze', writeGpt13bPlan(scratchDir('kept'), { cluster: '1x8-l4' }), '--json']);
    expect(JSON.parse(l4.stdout).profile).toBe('datasheet:l4');
  });

  it('mist fit sizes clusters of the GPU with it', async () => {
    await keepSimulatedH100(scratchDir('kept'));
    const r = await runCli(['fit', '--model', 'gpt3-1.3b', '--gpu', 'h100-sxm', '--max-gpus', '8']);
    expect(r.code).toBe(0);
    expect(r.stderr.match(/using the measured h100-sxm profile/g)).toHaveLength(1);
    expect(r.stdout).toMatch(/Usable memory per GPU: .* of the measured profile's /);
    const datasheet = await runCli(['fit', '--model', 'gpt3-1.3b', '--gpu', 'h100-sxm', '--max-gpus', '8', '--datasheet']);
    expect(datasheet.stdout).toMatch(/of the datasheet's /);
  });

  it('mist tune and mist analyze carry a --profile of the same GPU to the cluster given; tune refuses another GPU', async () => {
    const dir = scratchDir('kept');
    const profile = await keepSimulatedH100(dir);
    const base = ['tune', '--model', 'gpt3-1.3b', '--global-batch', '32', '--seq', '1024', '--no-cache', '--no-gains', '--profile', profile];
    const carried = await runCli([...base, '--cluster', '2x8-h100-sxm', '--json']);
    expect(carried.code).toBe(0);
    expect(carried.stderr).toMatch(/--profile .*gpu\.json: measured on 1x1-h100-sxm \(1 x 1\); carried to 2x8-h100-sxm/);
    expect(JSON.parse(carried.stdout).plan.cluster).toBe('2x8-h100-sxm');
    // mist analyze carries it to the plan's cluster the same way.
    const plan = writeGpt13bPlan(dir, { cluster: '2x8-h100-sxm', nodes: 2, tp: 2 });
    const analyzed = await runCli(['analyze', plan, '--profile', profile, '--json']);
    expect(analyzed.code).toBe(0);
    expect(analyzed.stderr).toMatch(/carried to 2x8-h100-sxm/);
    expect(JSON.parse(analyzed.stdout)).toMatchObject({ profile: 'measured', cluster: '2x8-h100-sxm' });
    const other = await runCli([...base, '--cluster', '1x8-a100-80gb']);
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/is not the cluster of --profile .*GPU h100-sxm in the profile, a100-80gb given.*profile that GPU/);
  });

  it('--save needs --device cuda', async () => {
    const r = await runCli(['profile', '--save', '--out', path.join(scratchDir('kept'), 'host.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--save needs --device cuda: a CPU profile describes this host/);
  });
});
