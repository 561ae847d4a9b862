import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { GB, GiB, parseClusterShorthand, parseClusterSpec } from '@mist/core';
import { runCli } from '../test/run-cli';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-cluster-'));
const small = path.resolve(__dirname, '../../../../examples/plans/gpt3-1.3b-1x2-l4.json');

describe('mist cluster', () => {
  it('writes a ClusterSpec with the given host memory and network, that tune and analyze read', async () => {
    const out = path.join(dir, 'cluster.json');
    const res = await runCli(['cluster', '--nodes', '4', '--gpus-per-node', '8', '--gpu', 'a100-80gb', '--host-memory', '1TiB',
      '--inter-node', '400Gbps', '--out', out]);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/host memory per node\s+1024\.00 GiB \(128\.00 GiB per GPU\)/);
    expect(res.stdout).toMatch(/network per node\s+50\.00 GB\/s \(400\.0 Gb\/s\)/);
    const spec = parseClusterSpec(JSON.parse(fs.readFileSync(out, 'utf8')));
    const base = parseClusterShorthand('4x8-a100-80gb');
    expect(spec).toEqual({
      ...base, name: '4x8-a100-80gb-custom', hostMemoryPerNode: 1024 * GiB, interNode: { ...base.interNode, bandwidth: 50 * GB / 8 },
    });
    const analyzed = await runCli(['analyze', small, '--cluster', out, '--json']);
    expect(analyzed.code).toBe(0);
    expect(JSON.parse(analyzed.stdout).cluster).toBe('4x8-a100-80gb-custom');
    const tuned = await runCli(['tune', '--model', 'gpt3-1.3b', '--cluster', out, '--global-batch', '32', '--seq', '2048', '--max-stages', '1', '--json']);
    expect(tuned.code).toBe(0);
  });

  it('--from a shorthand keeps its name when nothing changes; --json prints the spec', async () => {
    const same = await runCli(['cluster', '--from', '1x8-L4', '--json']);
    expect(JSON.parse(same.stdout)).toEqual(parseClusterShorthand('1x8-l4'));
    const more = await runCli(['cluster', '--from', '1x8-l4', '--host-memory', '768GB', '--intra-node', '25GB/s', '--json']);
    expect(JSON.parse(more.stdout)).toMatchObject({ name: '1x8-l4-custom', hostMemoryPerNode: 768e9, intraNode: { bandwidth: 25e9 } });
  });

  it('names a bad unit, a missing shape and an unknown GPU (exit 2)', async () => {
    const unit = await runCli(['cluster', '--nodes', '1', '--gpus-per-node', '8', '--gpu', 'l4', '--inter-node', '400G']);
    expect(unit.code).toBe(2);
    expect(unit.stderr).toMatch(/--inter-node: got "400G"; expected a bandwidth such as 400Gbps/);
    const shape = await runCli(['cluster', '--gpu', 'l4']);
    expect(shape.code).toBe(2);
    expect(shape.stderr).toMatch(/--nodes is required/);
    const gpu = await runCli(['cluster', '--nodes', '1', '--gpus-per-node', '8', '--gpu', 'a100']);
    expect(gpu.stderr).toMatch(/ambiguous: it could be a100-40gb or a100-80gb/);
  });
});
