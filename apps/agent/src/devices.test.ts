import { describe, expect, it } from 'vitest';
import { agentOptionsFromArgs } from './cli-options';
import { backendStatus, chooseDevices, cpuDevices, detectCudaDevices, gpuCatalogName, parseNvidiaSmi } from './devices';
import { pinnedGpuEnv } from './worker-supervisor';

describe('agent devices and options', () => {
  it('maps nvidia-smi output to CUDA devices with catalog names', () => {
    const devices = parseNvidiaSmi('0, NVIDIA H100 80GB HBM3, 81559\n1, NVIDIA A100-SXM4-40GB, 40960\n2, Tesla T4, 15360\n');
    expect(devices.map((d) => [d.index, d.kind, d.gpu, d.memoryBytes])).toEqual([
      [0, 'DEVICE_KIND_CUDA', 'h100-sxm', 81559 * 1024 * 1024], [1, 'DEVICE_KIND_CUDA', 'a100-40gb', 40960 * 1024 * 1024], [2, 'DEVICE_KIND_CUDA', '', 15360 * 1024 * 1024],
    ]);
    expect(['NVIDIA H200', 'NVIDIA A100 80GB PCIe', 'NVIDIA L4', 'NVIDIA A10G', 'Tesla V100-SXM2-32GB'].map(gpuCatalogName))
      .toEqual(['h200', 'a100-80gb-pcie', 'l4', 'a10g', 'v100-32gb']);
    expect(['NVIDIA A100-SXM4-80GB', 'NVIDIA A100-PCIE-40GB', 'NVIDIA H100 PCIe', 'NVIDIA H800', 'NVIDIA B200', 'Tesla V100-SXM2-16GB']
      .map(gpuCatalogName)).toEqual(['a100-80gb', 'a100-40gb-pcie', 'h100-pcie', 'h800', 'b200', 'v100-16gb']);
  });

  it('offers CPU devices when asked, chosen GPUs otherwise, and says why when there are none', () => {
    expect(cpuDevices(3).map((d) => [d.index, d.kind])).toEqual([[0, 'DEVICE_KIND_CPU'], [1, 'DEVICE_KIND_CPU'], [2, 'DEVICE_KIND_CPU']]);
    const two = () => parseNvidiaSmi('0, NVIDIA L4, 23034\n1, NVIDIA L4, 23034');
    expect(chooseDevices({ devices: [1] }, two).map((d) => d.index)).toEqual([1]);
    expect(() => chooseDevices({ devices: [5] }, two)).toThrow(/GPU 5 does not exist; this host has 0, 1/);
    expect(() => chooseDevices({}, () => [])).toThrow(/pass --cpu-devices N/);
  });

  it('takes the GPUs from the CUDA driver, and from nvidia-smi only when the driver cannot be asked', () => {
    const driver = [{ ordinal: 0, name: 'NVIDIA H200', memoryBytes: 150_754_820_096 }, { ordinal: 1, name: 'NVIDIA H200', memoryBytes: 150_754_820_096 }];
    const smi = () => parseNvidiaSmi('0, NVIDIA L4, 23034');
    expect(detectCudaDevices(() => driver, smi)).toEqual([
      { index: 0, kind: 'DEVICE_KIND_CUDA', name: 'NVIDIA H200', gpu: 'h200', memoryBytes: 150_754_820_096 },
      { index: 1, kind: 'DEVICE_KIND_CUDA', name: 'NVIDIA H200', gpu: 'h200', memoryBytes: 150_754_820_096 },
    ]);
    expect(detectCudaDevices(() => undefined, smi).map((d) => d.gpu)).toEqual(['l4']);
    expect(detectCudaDevices(() => [], () => [])).toEqual([]);
    // This machine: whatever the addon's driver probe says, detection never throws.
    expect(Array.isArray(detectCudaDevices())).toBe(true);
  });

  it('reports NCCL only where there are GPUs and the native addon offers it', () => {
    expect(backendStatus(cpuDevices(1)).map((b) => [b.backend, b.available])).toEqual([['BACKEND_CPU', true], ['BACKEND_NCCL', false]]);
    const gpus = parseNvidiaSmi('0, NVIDIA L4, 23034');
    expect(backendStatus(gpus, () => [{ name: 'nccl', available: true, version: 22105 }])[1]).toMatchObject({ available: true, reason: 'NCCL 22105' });
    expect(backendStatus(gpus, () => [{ name: 'nccl', available: false, reason: 'libnccl.so.2: cannot open' }])[1])
      .toMatchObject({ available: false, reason: 'libnccl.so.2: cannot open' });
  });

  it('reads its command line, with the token from the environment', () => {
    const o = agentOptionsFromArgs({ coordinator: '10.0.0.1:7070', 'cpu-devices': '2', 'worker-ports': '30000:64' }, { MIST_TOKEN: 'env-token' });
    expect(o).toMatchObject({ coordinator: '10.0.0.1:7070', token: 'env-token', cpuDevices: 2, portRange: { first: 30000, count: 64 } });
    expect(() => agentOptionsFromArgs({}, {})).toThrow(/a token is required/);
    expect(() => agentOptionsFromArgs({ 'worker-ports': '70000:10' }, { MIST_TOKEN: 't' })).toThrow(/--worker-ports: got "70000:10"/);
    expect(() => agentOptionsFromArgs({ 'cpu-devices': '2', devices: '0' }, { MIST_TOKEN: 't' })).toThrow(/exclude each other/);
  });
});

describe('a GPU worker pinned to its device', () => {
  it('sees only its GPU, as device 0, also inside the agent\'s own visible set', () => {
    expect(pinnedGpuEnv(3, undefined)).toEqual({ CUDA_VISIBLE_DEVICES: '3', MIST_CUDA_DEVICE: '0' });
    expect(pinnedGpuEnv(1, '4,6, 7')).toEqual({ CUDA_VISIBLE_DEVICES: '6', MIST_CUDA_DEVICE: '0' });
    expect(() => pinnedGpuEnv(3, '4,6')).toThrow(/GPU 3 is not among the agent's CUDA_VISIBLE_DEVICES=4,6/);
  });
});
