// `mist tune` reports the newer dimensions its best plan uses (context parallelism, interleaved 1F1B,
// selective recompute) and each one's gain: the best plan of the same space without it.
import { describe, expect, it } from 'vitest';
import { runCli } from '../test/run-cli';

// llama2-13b on two L4 nodes (PCIe, no NVLink), batch 16 x 2048: the best plan interleaves 4 ranks
// (few micro-batches, so the pipeline's fill and drain matter).
const base = ['tune', '--model', 'llama2-13b', '--cluster', '2x8-l4', '--global-batch', '16', '--seq', '2048', '--no-cache'];

interface TuneJson {
  predicted: { iterationTimeS: number };
  dimensions: { dimension: string; detail: string; withoutS: number | null; gain: number | null }[];
}

describe('mist tune: the newer dimensions of the best plan and their gains', () => {
  it('names interleaving, with the gain over the best plan of the space without it', async () => {
    const res = await runCli([...base, '--json']);
    expect(res.code, res.stderr).toBe(0);
    const json = JSON.parse(res.stdout) as TuneJson;
    const inter = json.dimensions.find((d) => d.dimension === 'interleaved');
    expect(inter, res.stdout).toBeDefined();
    expect(inter!.gain!).toBeGreaterThan(1);
    const without = JSON.parse((await runCli([...base, '--max-virtual-stages', '1', '--json'])).stdout) as TuneJson;
    expect(inter!.withoutS!).toBeCloseTo(without.predicted.iterationTimeS, 9);
    expect(inter!.gain!).toBeCloseTo(without.predicted.iterationTimeS / json.predicted.iterationTimeS, 9);
    expect(without.dimensions.find((d) => d.dimension === 'interleaved')).toBeUndefined();
  }, 120_000);

  it('prints one line per dimension; --no-gains names them without re-tuning', async () => {
    const text = await runCli(base);
    expect(text.stdout).toMatch(/uses interleaved 1F1B \(\d+ model chunks on each of \d+ ranks\): \d+\.\d{3}x faster than the best plan without it/);
    const quick = await runCli([...base, '--no-gains', '--json']);
    const json = JSON.parse(quick.stdout) as TuneJson;
    expect(json.dimensions.find((d) => d.dimension === 'interleaved')).toMatchObject({ gain: null, withoutS: null });
  }, 120_000);
});
