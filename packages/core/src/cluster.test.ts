import { describe, expect, it } from 'vitest';
import { builtinHardwareProfile, clusterDevices, GB, getGpu, gpuCatalog, parseClusterShorthand, parseHardwareProfile,
  usableDeviceMemory } from './index';

describe('GPU catalog', () => {
  it('has the datasheet kinds', () => {
    expect(gpuCatalog().map((g) => g.name)).toEqual(['l4', 'a10g', 'v100-16gb', 'v100-32gb', 'a100-40gb', 'a100-80gb',
      'a100-40gb-pcie', 'a100-80gb-pcie', 'h100-sxm', 'h100-pcie', 'h800', 'h200', 'b200']);
    expect(getGpu('a100-80gb').peakFlops.bf16).toBe(312e12);
    expect(getGpu('l4').nvlinkBandwidth).toBeNull();
    // PCIe cards have no NVLink between a node's GPUs; the H800 is an H100 with 400 GB/s NVLink (200 each way).
    expect(getGpu('a100-80gb-pcie').nvlinkBandwidth).toBeNull();
    expect(getGpu('h800').nvlinkBandwidth).toBe(200 * GB);
    expect(getGpu('h800').peakFlops.bf16).toBe(getGpu('h100-sxm').peakFlops.bf16);
    expect(getGpu('h100-pcie').peakFlops.bf16).toBeLessThan(getGpu('h100-sxm').peakFlops.bf16);
  });
  it('builds clusters of every catalog GPU with its typical network and host memory', () => {
    for (const g of gpuCatalog()) {
      const c = parseClusterShorthand(`2x8-${g.name}`);
      expect(c.interNode.bandwidth, g.name).toBeGreaterThan(0);
      expect(c.hostMemoryPerNode, g.name).toBeGreaterThan(0);
    }
  });
  it('rejects an unknown GPU with the allowed names', () => {
    expect(() => getGpu('b300')).toThrow(/gpu: got "b300"; did you mean "b200"\? allowed: l4, a10g/);
    expect(() => getGpu('tpu-v5')).toThrow(/gpu: got "tpu-v5"; allowed: l4, a10g/);
  });
});

describe('cluster shorthand', () => {
  it('parses NODESxGPUS-GPU', () => {
    const c = parseClusterShorthand('2x8-a100-40gb');
    expect([c.nodes, c.gpusPerNode, c.gpu.name, clusterDevices(c)]).toEqual([2, 8, 'a100-40gb', 16]);
    expect(c.intraNode.bandwidth).toBe(300 * GB);
    expect(c.interNode.bandwidth).toBe(200 * GB / 8);
  });
  it('uses PCIe between GPUs without NVLink', () => {
    expect(parseClusterShorthand('1x4-l4').intraNode.bandwidth).toBeCloseTo(0.8 * 32 * GB);
  });
  it('explains a malformed shorthand', () => {
    expect(() => parseClusterShorthand('8-l4')).toThrow(/expected NODESxGPUS-GPU/);
    expect(() => parseClusterShorthand('1x8-l5')).toThrow(/allowed: l4/);
  });
});

describe('hardware profile', () => {
  it('builds a datasheet profile that says so and keeps reserves below capacity', () => {
    const p = builtinHardwareProfile(parseClusterShorthand('1x8-l4'));
    expect(p.source).toBe('datasheet:l4');
    const usable = usableDeviceMemory(p);
    expect(usable).toBeLessThan(p.cluster.gpu.memoryBytes);
    expect(usable).toBeGreaterThan(0.8 * p.cluster.gpu.memoryBytes);
    expect(parseHardwareProfile(JSON.parse(JSON.stringify(p)))).toEqual(p);
  });
  it('names a bad overlap factor', () => {
    const p = builtinHardwareProfile(parseClusterShorthand('1x8-l4'));
    expect(() => parseHardwareProfile({ ...p, overlap: { commSlowdown: 0.5, offloadSlowdown: 1 } })).toThrow(
      /overlap.commSlowdown: got 0.5; must be >= 1/,
    );
  });
});
