import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { builtinHardwareProfile, getModel, parseClusterShorthand, parsePlan } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { runCli } from '../test/run-cli';

describe('mist tune', () => {
  it('prints the best plan, the baselines and speedups; --out writes a plan `mist analyze` accepts', async () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mist-tune-')), 'plan.json');
    const res = await runCli(['tune', '--model', 'gpt3-1.3b', '--cluster', '1x2-l4', '--global-batch', '16', '--seq', '1024',
      '--offload-step', '0.5', '--out', out, '--progress', '--no-cache']);
    expect(res.stderr).toMatch(/tune mist .*candidates/);
    // The final line says it is done, with no time left to estimate.
    expect(res.stderr).toMatch(/tune mist [^\n\r]*done, /);
    expect(res.stderr).not.toMatch(/done, [^\n\r]*ETA/);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/Best plan \(mist space\)/);
    expect(res.stdout).toMatch(/megatron\s+\S+ s/);
    expect(res.stdout).toMatch(/deepspeed/);
    const plan = parsePlan(JSON.parse(fs.readFileSync(out, 'utf8')), { model: getModel('gpt3-1.3b'), cluster: parseClusterShorthand('1x2-l4') });
    const analyzed = await runCli(['analyze', '--plan', out, '--json']);
    expect(analyzed.code).toBe(0);
    expect(JSON.parse(analyzed.stdout).allFit).toBe(true);
    expect(plan.stages.length).toBeGreaterThan(0);
  });

  it('--json has the plan, the prediction, tuning time, candidates and both baselines', async () => {
    const res = await runCli(['tune', '--model', 'gpt3-1.3b', '--cluster', '1x2-l4', '--global-batch', '16', '--seq', '1024',
      '--offload-step', '0.5', '--json']);
    expect(res.code).toBe(0);
    const j = JSON.parse(res.stdout);
    expect(j.plan.stages.length).toBeGreaterThan(0);
    expect(j.predicted.iterationTimeS).toBeGreaterThan(0);
    expect(j.tuningTimeS).toBeGreaterThan(0);
    expect(j.candidatesEvaluated).toBeGreaterThan(0);
    expect(j.groupsSearched).toBeGreaterThan(0);
    for (const b of ['megatron', 'deepspeed']) {
      expect(j.baselines[b]).toHaveProperty('plan');
      expect(j.baselines[b].predicted).toHaveProperty('iterationTimeS');
      if (j.baselines[b].predicted.iterationTimeS !== null) {
        expect(j.predicted.iterationTimeS).toBeLessThanOrEqual(j.baselines[b].predicted.iterationTimeS);
      }
    }
  });

  it('gpt3-175b on one L4: nothing fits, host memory is the limit (no plan that offloads more than the host holds)', async () => {
    const args = ['tune', '--model', 'gpt3-175b', '--cluster', '1x1-l4', '--global-batch', '8', '--seq', '2048'];
    const res = await runCli(args);
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(/No plan of the mist space fits/);
    expect(res.stdout).not.toMatch(/Best plan/);
    expect(res.stderr).toMatch(/mist tune: nothing in the mist space fits in .* of host memory per GPU: host memory is the limit/);
    expect(res.stderr).toMatch(/try more GPUs or nodes with more host memory/);
    const j = JSON.parse((await runCli([...args, '--json'])).stdout);
    expect(j.plan).toBeNull();
    expect(j.noFit.binding).toBe('host');
    expect(j.noFit.hostShortfallBytes).toBeGreaterThan(0);
    expect(j.noFit.hostCapacityBytes).toBeGreaterThan(0);
  });

  it('says what is missing when nothing fits, and refuses bad flags', async () => {
    // A GPU with 100 kB of usable memory: nothing of gpt-tiny fits.
    const base = builtinHardwareProfile(parseClusterShorthand('1x2-l4'));
    const usable = 100e3;
    const reserve = base.cluster.gpu.memoryBytes - base.memory.ncclBufferBytes - usable / (1 - base.memory.fragmentation);
    const profileFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mist-tune-')), 'profile.json');
    fs.writeFileSync(profileFile, JSON.stringify({ ...base, memory: { ...base.memory, cudaContextBytes: reserve } }));
    const res = await runCli(['tune', '--model', 'gpt-tiny', '--profile', profileFile, '--global-batch', '8', '--seq', '64', '--json']);
    expect(res.code).toBe(1);
    const j = JSON.parse(res.stdout);
    expect(j.plan).toBeNull();
    expect(j.predicted.iterationTimeS).toBeNull();
    expect(j.noFit.shortfallBytes).toBeGreaterThan(0);
    expect(j.noFit.hints.join(' ')).toMatch(/more GPUs/);
    const bad = await runCli(['tune', '--model', 'gpt3-1.3b', '--cluster', '1x2-l4', '--global-batch', '16', '--seq', '1024', '--space', 'alpa']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--space: got "alpa"/);
  });

  it('--target searches only what the engine runs; --baseline reports the speedup over the user\'s plan', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-tune-'));
    const out = path.join(dir, 'megatron.json');
    const args = ['tune', '--model', 'gpt3-1.3b', '--cluster', '1x4-l4', '--global-batch', '32', '--seq', '1024', '--no-cache'];
    const res = await runCli([...args, '--target', 'megatron', '--out', out, '--json']);
    expect(res.code).toBe(0);
    const j = JSON.parse(res.stdout);
    expect(j.space).toBe('megatron');
    const plan = parsePlan(JSON.parse(fs.readFileSync(out, 'utf8')));
    const s0 = plan.stages[0];
    for (const s of plan.stages) {
      expect([s.tp, s.dp, s.microBatchSize, s.zero <= 1, Object.values(s.offload).every((x) => x === 0)]).toEqual([s0.tp, s0.dp, s0.microBatchSize, true, true]);
    }
    // The megatron plan as the user's own setup: the Mist plan is at least as fast.
    const cmp = await runCli([...args, '--offload-step', '0.5', '--baseline', out]);
    expect(cmp.code).toBe(0);
    expect(cmp.stdout).toMatch(/Your plan \(.*megatron\.json\): iteration .* speedup of the best plan over it (\d+\.\d+)x/);
    const speedup = Number(/over it (\d+\.\d+)x/.exec(cmp.stdout)![1]);
    expect(speedup).toBeGreaterThanOrEqual(1);
    const wrongBatch = await runCli(['tune', '--model', 'gpt3-1.3b', '--cluster', '1x4-l4', '--global-batch', '64', '--seq', '1024', '--baseline', out]);
    expect(wrongBatch.code).toBe(2);
    expect(wrongBatch.stderr).toMatch(/globalBatch is 32, the tune is for 64/);
    const badTarget = await runCli([...args, '--target', 'alpa']);
    expect(badTarget.code).toBe(2);
    expect(badTarget.stderr).toMatch(/--target: got "alpa"; expected one of megatron, nemo, deepspeed, torchtitan/);
  });

  it('checks --out and a --profile/--cluster mismatch before searching', async () => {
    const t0 = Date.now();
    const missing = await runCli(['tune', '--model', 'gpt3-175b', '--cluster', '64x8-a100-80gb', '--global-batch', '1536', '--seq', '2048',
      '--out', path.join(os.tmpdir(), 'no-such-dir-mist', 'plan.json')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--out .*the folder .*no-such-dir-mist does not exist/);
    expect(Date.now() - t0).toBeLessThan(30_000);
    const profileFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mist-tune-')), 'profile.json');
    fs.writeFileSync(profileFile, JSON.stringify(builtinHardwareProfile(parseClusterShorthand('1x2-l4'))));
    const mismatch = await runCli(['tune', '--model', 'gpt3-1.3b', '--profile', profileFile, '--cluster', '1x8-a10g', '--global-batch', '16', '--seq', '1024']);
    expect(mismatch.code).toBe(2);
    expect(mismatch.stderr).toMatch(/--cluster 1x8-a10g is not the cluster of --profile .*2 GPUs per node in the profile, 8 given, GPU l4 in the profile, a10g given/);
  });
});
