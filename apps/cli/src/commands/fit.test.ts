import { analyzePlan } from '@mist/analyzer';
import { getModel, parseClusterShorthand } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { runCli } from '../test/run-cli';
import { clusterSizes } from './fit';

describe('mist fit', () => {
  it('tries sizes in one node, then whole nodes', () => {
    expect(clusterSizes(8, 32)).toEqual([
      { nodes: 1, gpusPerNode: 1 }, { nodes: 1, gpusPerNode: 2 }, { nodes: 1, gpusPerNode: 4 },
      { nodes: 1, gpusPerNode: 8 }, { nodes: 2, gpusPerNode: 8 }, { nodes: 4, gpusPerNode: 8 },
    ]);
    expect(clusterSizes(8, 3)).toEqual([{ nodes: 1, gpusPerNode: 1 }, { nodes: 1, gpusPerNode: 2 }]);
  });

  it('--json: the smallest cluster whose best plan fits, sizes below it do not, and the analyzer agrees', async () => {
    const res = await runCli(['fit', '--model', 'gpt3-13b', '--gpu', 'L4', '--global-batch', '32', '--time-limit', '5', '--json']);
    expect(res.code).toBe(0);
    const j = JSON.parse(res.stdout);
    const last = j.tried[j.tried.length - 1];
    expect(j.smallestCluster).toEqual(last);
    expect(last.fits).toBe(true);
    expect(last.gpus).toBeGreaterThan(1);
    for (const t of j.tried.slice(0, -1)) {
      expect(t.fits).toBe(false);
      expect(t.shortfallBytes).toBeGreaterThan(0);
    }
    // The stated margin is the analyzer's: usable capacity less the plan's largest stage peak.
    const { analysis } = analyzePlan({ model: getModel('gpt3-13b'), plan: j.plan, cluster: parseClusterShorthand(last.cluster) });
    expect(analysis.allFit).toBe(true);
    expect(analysis.devices).toBe(last.gpus);
    const margin = Math.min(...analysis.stages.map((s) => s.capacityBytes - s.peakMemoryBytes));
    expect(last.marginBytes).toBeCloseTo(margin, 0);
    expect(j.memory.usableBytes).toBeLessThan(j.memory.datasheetBytes);
    expect(analysis.stages[0].capacityBytes).toBeCloseTo(j.memory.usableBytes, 0);
  });

  it('says which cluster fits and states the margin and the reserves in text', async () => {
    const res = await runCli(['fit', '--model', 'gpt3-1.3b', '--gpu', 'l4', '--global-batch', '16', '--seq', '1024', '--time-limit', '5']);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/Usable memory per GPU: .* CUDA context .* NCCL buffers/);
    expect(res.stdout).toMatch(/Smallest cluster: 1x\d+-l4 .*smallest stage margin/);
  });

  it('exits 1 when nothing fits up to --max-gpus, and 2 for a bad GPU or flag', async () => {
    const none = await runCli(['fit', '--model', 'gpt3-175b', '--gpu', 'l4', '--max-gpus', '2', '--time-limit', '2']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no plan of gpt3-175b fits on up to 2 l4 GPUs/);
    const gpu = await runCli(['fit', '--model', 'gpt3-1.3b', '--gpu', 'b300']);
    expect(gpu.code).toBe(2);
    expect(gpu.stderr).toMatch(/gpu/);
    const flag = await runCli(['fit', '--model', 'gpt3-1.3b', '--gpu', 'l4', '--time-limit', '0']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/--time-limit/);
  });

  it('--dtype bf16 --target megatron: the engine\'s plans as it runs them (fp32 main gradients) need at least the Mist space\'s cluster; an unknown target is named', async () => {
    const args = ['fit', '--model', 'llama2-7b', '--gpu', 'a100-40gb', '--global-batch', '64', '--max-gpus', '16', '--time-limit', '10', '--json'];
    const mist = JSON.parse((await runCli(args)).stdout);
    const res = await runCli([...args, '--dtype', 'bf16', '--target', 'megatron']);
    expect(res.code).toBe(0);
    const megatron = JSON.parse(res.stdout);
    expect(megatron.target).toBe('megatron');
    expect(megatron.gradAccumDtype).toBe('fp32');
    expect(megatron.smallestCluster.gpus).toBeGreaterThanOrEqual(mist.smallestCluster.gpus);
    for (const st of megatron.plan.stages) expect(st.offload).toEqual({ weights: 0, grads: 0, optim: 0, activations: 0 });
    const bad = await runCli(['fit', '--model', 'llama2-7b', '--gpu', 'a100-40gb', '--target', 'alpa']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--target: got "alpa"; expected one of megatron, nemo, deepspeed, torchtitan, cpu, cuda/);
  }, 60_000);
});
