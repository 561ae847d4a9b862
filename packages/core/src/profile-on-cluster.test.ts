// A profile carried to another cluster of its GPU (profileOnCluster): the per-GPU figures and the links
// stay, the shape is the cluster's, the GPU must be the same.
import { describe, expect, it } from 'vitest';
import { builtinHardwareProfile, parseClusterShorthand, parseHardwareProfile, profileOnCluster, SpecError } from './index';

// A "measured" profile of one H100 node: the datasheet one with its own figures changed, as profile-cuda.ts writes one.
const one = builtinHardwareProfile(parseClusterShorthand('1x8-h100-sxm'), 'bf16');
const measured = parseHardwareProfile({
  ...one, source: 'measured', machineKind: 'NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)',
  compute: { ...one.compute, matmulEfficiency: 0.61, kernelLaunch: 7e-6 },
  memory: { ...one.memory, cudaContextBytes: 600 * 2 ** 20 },
  unmeasured: { 'links.interNode': 'one node' },
});

describe('profileOnCluster', () => {
  it('keeps the measured per-GPU figures and links on a cluster of 16 nodes', () => {
    const big = parseClusterShorthand('16x8-h100-sxm');
    const p = profileOnCluster(measured, big);
    expect(p.cluster).toMatchObject({ name: big.name, nodes: 16, gpusPerNode: 8, gpu: measured.cluster.gpu });
    expect(p.compute).toEqual(measured.compute);
    expect(p.memory).toEqual(measured.memory);
    expect(p.links).toEqual(measured.links);
    expect(p.unmeasured?.['links.interNode']).toBe('one node');
    expect(p.unmeasured?.cluster).toMatch(/measured on 1x8-h100-sxm \(1 x 8\); carried to 16x8-h100-sxm: .*inter-node link was not measured/);
  });

  it('is the profile itself on its own shape, and refuses another GPU naming both', () => {
    expect(profileOnCluster(measured, parseClusterShorthand('1x8-h100-sxm'))).toBe(measured);
    expect(() => profileOnCluster(measured, parseClusterShorthand('2x8-a100-80gb'))).toThrow(SpecError);
    expect(() => profileOnCluster(measured, parseClusterShorthand('2x8-a100-80gb'))).toThrow(/profile is of h100-sxm GPUs; the cluster 2x8-a100-80gb has a100-80gb/);
  });
});
