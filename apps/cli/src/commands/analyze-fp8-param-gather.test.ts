// `mist analyze --fp8-param-gather` / `mist export --fp8-param-gather`: the fp8 layers' weights kept and
// all-gathered as fp8 (TrainingSpec.fp8ParamGather), predicted and written as each engine spells it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../test/run-cli';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-fp8pg-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function writePlan(name: string, fp8: boolean, zero: number): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, JSON.stringify({
    version: 1, model: 'llama3-8b', cluster: '1x8-h100-sxm', seqLen: 4096, globalBatch: 16, gradAccumSteps: 2, ...(fp8 ? { fp8: 'current' } : {}),
    stages: [{ layers: [0, 31], mesh: { nodes: 1, gpusPerNode: 8 }, microBatchSize: 1, dp: 8, tp: 1, sequenceParallel: false,
      ckptLayers: 32, zero, offload: { weights: 0, grads: 0, optim: 0, activations: 0 } }],
  }));
  return file;
}

interface AnalyzeJson {
  iterationTimeS: number;
  fp8ParamGather?: boolean;
  stages: { peakMemoryBytes: number }[];
}

describe('--fp8-param-gather', () => {
  it('mist analyze: less memory and time under ZeRO-3, said in the summary and --json; refused without fp8, naming the field', async () => {
    const plan = writePlan('fp8.json', true, 3);
    const run = async (...args: string[]): Promise<AnalyzeJson> => {
      const r = await runCli(['analyze', plan, '--json', ...args]);
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as AnalyzeJson;
    };
    const bf16 = await run();
    const fp8 = await run('--fp8-param-gather');
    expect(bf16.fp8ParamGather).toBeUndefined();
    expect(fp8.fp8ParamGather).toBe(true);
    expect(fp8.stages[0].peakMemoryBytes).toBeLessThan(bf16.stages[0].peakMemoryBytes);
    expect(fp8.iterationTimeS).toBeLessThan(bf16.iterationTimeS);
    expect((await runCli(['analyze', plan, '--fp8-param-gather'])).stdout.split('\n')[0]).toMatch(/fp8 weights kept and gathered as fp8/);
    const none = await runCli(['analyze', writePlan('plain.json', false, 3), '--fp8-param-gather']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/fp8ParamGather.*allowed with it: delayed, current/);
  }, 60_000);

  it('mist export: torchtitan\'s FSDP float8 all-gather; refused by name for a plan DeepSpeed would run', async () => {
    const plan = writePlan('fp8-export.json', true, 3);
    const out = path.join(dir, 'titan');
    const r = await runCli(['export', '--plan', plan, '--to', 'torchtitan', '--fp8-param-gather', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readFileSync(path.join(out, 'train.toml'), 'utf8')).toMatch(/enable_fsdp_float8_all_gather = true/);
    const ds = await runCli(['export', '--plan', plan, '--to', 'deepspeed', '--fp8-param-gather', '--out', path.join(dir, 'ds')]);
    expect(ds.code).not.toBe(0);
    expect(ds.stderr).toMatch(/fp8/);
  }, 60_000);
});
