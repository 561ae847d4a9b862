import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../test/run-cli';

const examples = path.resolve(__dirname, '../../../../examples/plans');

describe('mist models / gpus', () => {
  it('gpus --local reports the CUDA backend (or exactly why it cannot run) and the addon build', async () => {
    const json = await runCli(['gpus', '--local', '--json']);
    expect(json.code, json.stderr).toBe(0);
    const r = JSON.parse(json.stdout) as { addon: string; cuda: { available: boolean; reason?: string; devices: unknown[] }; collectives: Array<{ name: string }> };
    expect(r.addon).toMatch(/^mist_native(_v4)?$/);
    expect(r.collectives.map((b) => b.name)).toEqual(['cpu', 'nccl']);
    if (!r.cuda.available) expect(r.cuda.reason).toMatch(/\S/);
    const table = await runCli(['gpus', '--local']);
    expect(table.stdout).toMatch(r.cuda.available ? /CUDA compute backend: available/ : /CUDA compute backend: unavailable: /);
    expect(table.stdout).toMatch(/native addon build: mist_native/);
  });

  it('lists the catalog as a table and as JSON', async () => {
    const table = await runCli(['models']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/gpt3-175b\s+gpt\s+174\.\d+B/);
    const json = await runCli(['models', '--json']);
    const models = JSON.parse(json.stdout) as Array<{ name: string; params: number }>;
    expect(models.find((m) => m.name === 'llama2-70b')?.params).toBeGreaterThan(68e9);
  });

  it('shows a mixture of experts\' active parameters and experts; its JSON reads back', async () => {
    const table = await runCli(['models']);
    // Mixtral 8x7B: 46.7B parameters, 12.9B active (Jiang et al. 2024, Sec. 2).
    expect(table.stdout).toMatch(/mixtral-8x7b\s+mixtral\s+46\.70B\s+12\.88B\s+8 top-2/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-models-'));
    const file = path.join(dir, 'mixtral.json');
    fs.writeFileSync(file, (await runCli(['models', '--model', 'mixtral-8x7b', '--json'])).stdout);
    const back = await runCli(['models', '--model', file, '--json']);
    expect(back.code, back.stderr).toBe(0);
    expect(JSON.parse(back.stdout)).toMatchObject({ name: 'mixtral-8x7b', moe: { experts: 8, topK: 2 }, activeParams: expect.any(Number) });
  });

  it('lists GPUs', async () => {
    const res = await runCli(['gpus', '--json']);
    expect(JSON.parse(res.stdout).map((g: { name: string }) => g.name)).toContain('h100-sxm');
  });

  it('shows help with an example and refuses unknown flags with exit 2', async () => {
    const help = await runCli(['models', '--help']);
    expect(help.stdout).toMatch(/Examples:\n  mist models/);
    const bad = await runCli(['models', '--frobnicate']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/frobnicate/);
  });
});

describe('mist validate', () => {
  it('accepts a good plan', async () => {
    const res = await runCli(['validate', path.join(examples, 'gpt3-1.3b-1x2-l4.json')]);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/valid plan/);
  });

  it('prints every broken rule by field and exits 2', async () => {
    const res = await runCli(['validate', path.join(examples, 'broken.json')]);
    expect(res.code).toBe(2);
    for (const field of ['stages[0].zero', 'stages[0].dp', 'stages[0].tp', 'stages[1].layers', 'seqLen']) {
      expect(res.stderr).toContain(`  - ${field}: got`);
    }
    const json = await runCli(['validate', path.join(examples, 'broken.json'), '--json']);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout).valid).toBe(false);
  });

  it('names an unreadable file', async () => {
    const res = await runCli(['validate', '/nonexistent/plan.json']);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/path: got "\/nonexistent\/plan.json"; cannot be read/);
  });
});
