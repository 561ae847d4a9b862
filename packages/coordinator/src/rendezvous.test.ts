import type { RegisterRequest__Output } from '@mist/rpc';
import { describe, expect, it } from 'vitest';
import { AgentRegistry } from './agent-registry';
import type { RankPlacement } from './placement';
import { resolveBackend } from './rendezvous';

function cudaAgent(registry: AgentRegistry, host: string, ncclAvailable: boolean): string {
  const req: RegisterRequest__Output = {
    agentId: '', hostName: host, address: '127.0.0.1', cpuCores: 8, hostMemoryBytes: 64e9, version: '0.1.0', sessionToken: '',
    devices: [0, 1].map((index) => ({ index, kind: 'DEVICE_KIND_CUDA', name: 'NVIDIA A100-SXM4-80GB', gpu: 'a100-80gb', memoryBytes: 80e9 })),
    backends: [{ backend: 'BACKEND_CPU', available: true, reason: '' }, { backend: 'BACKEND_NCCL', available: ncclAvailable, reason: ncclAvailable ? '' : 'libnccl.so.2: cannot open' }],
    workerPorts: { first: 40000, count: 16 },
  } as RegisterRequest__Output;
  return registry.register(req).id;
}

describe('the backend a placed job uses', () => {
  const registry = new AgentRegistry(30, { onLost: () => undefined, onConnected: () => undefined });
  const withNccl = cudaAgent(registry, 'gpu-a', true);
  const withoutNccl = cudaAgent(registry, 'gpu-b', false);
  const ranks = (agentId: string): RankPlacement[] => [0, 1].map((rank) => ({ rank, agentId, deviceIndex: rank } as RankPlacement));

  it('is the cpu backend for auto, even on CUDA devices with NCCL: the executor computes on the CPU only', () => {
    expect(resolveBackend('auto', ranks(withNccl), registry)).toEqual({ ok: true, backend: 'cpu' });
    expect(resolveBackend('cpu', ranks(withNccl), registry)).toEqual({ ok: true, backend: 'cpu' });
  });

  it('checks an explicit nccl against the hosts, naming the agent without it', () => {
    expect(resolveBackend('nccl', ranks(withNccl), registry)).toEqual({ ok: true, backend: 'nccl' });
    const refused = resolveBackend('nccl', ranks(withoutNccl), registry);
    expect(refused.ok).toBe(false);
    if (!refused.ok) expect(refused.reason).toMatch(/backend nccl is not available on agent .*libnccl\.so\.2/);
  });
});
