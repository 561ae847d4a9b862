// `mist tune --fp8 auto`: the report says whether the best plan uses fp8 linear layers and its gain over
// the best plan without them; the plan records the recipe, so `mist analyze` reproduces its estimate.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../test/run-cli';

const base = ['tune', '--model', 'gpt3-1.3b', '--global-batch', '64', '--seq', '2048', '--offload-step', '0.5', '--no-cache'];

describe('mist tune --fp8', () => {
  it('auto on H100: the best plan uses fp8, with its gain over the best plan without it; analyze reproduces it', async () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mist-fp8-')), 'plan.json');
    const res = await runCli([...base, '--cluster', '1x8-h100-sxm', '--fp8', 'auto', '--out', out]);
    expect(res.code, res.stderr).toBe(0);
    const line = /fp8: the best plan uses fp8 linear layers \(delayed scaling\), (\d+\.\d\d)x faster than the best plan without fp8/.exec(res.stdout);
    expect(line, res.stdout).not.toBeNull();
    expect(Number(line![1])).toBeGreaterThan(1);
    const plan = JSON.parse(fs.readFileSync(out, 'utf8')) as { fp8?: string };
    expect(plan.fp8).toBe('delayed');
    const json = JSON.parse((await runCli([...base, '--cluster', '1x8-h100-sxm', '--fp8', 'auto', '--json'])).stdout) as {
      predicted: { iterationTimeS: number }; fp8: { used: string; gainOverNone: number };
    };
    expect(json.fp8.used).toBe('delayed');
    expect(json.fp8.gainOverNone).toBeCloseTo(Number(line![1]), 2);
    const analyzed = JSON.parse((await runCli(['analyze', '--plan', out, '--cluster', '1x8-h100-sxm', '--json'])).stdout) as { iterationTimeS: number };
    expect(analyzed.iterationTimeS).toBeCloseTo(json.predicted.iterationTimeS, 9);
  });

  it('a recipe on a GPU without fp8 tensor cores is refused naming the GPU; auto says why it did not search fp8', async () => {
    const bad = await runCli([...base, '--cluster', '1x8-a100-80gb', '--fp8', 'delayed']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/fp8.*a100-80gb has none/);
    const auto = await runCli([...base, '--cluster', '1x8-a100-80gb', '--fp8', 'auto']);
    expect(auto.code, auto.stderr).toBe(0);
    expect(auto.stdout).toContain('fp8: not searched (the GPU a100-80gb has no fp8 tensor cores)');
  });
});
