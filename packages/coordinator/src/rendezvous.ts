// Rendezvous: how the ranks of one job attempt find each other.
//  - CPU backend: every rank listens on a port of its agent's PortRange; the coordinator hands the
//    whole `host:port` list (index = rank) to every agent, so workers on different hosts connect
//    directly to each other.
//  - NCCL: rank 0 runs NCCL's bootstrap root at `root_address` (one port of its agent's range);
//    every rank passes it as NCCL_COMM_ID, so no NCCL is needed on the coordinator.
import type { Rendezvous } from '@mist/rpc';
import type { AgentRegistry } from './agent-registry';
import { type BackendChoice, EXECUTOR_BACKEND } from './job-spec';
import type { RankPlacement } from './placement';

export type ResolvedBackend = 'cpu' | 'nccl';

export interface PortLease {
  address: string;
  ports: number[];
}

export type RendezvousResult =
  | { ok: true; rendezvous: Rendezvous; leases: PortLease[] }
  | { ok: false; reason: string };

/**
 * The backend a job uses on the devices it was placed on. `auto` is the cpu backend (the executor's
 * CPU kernels, which run on any agent); `nccl`, asked for explicitly, runs the executor's cuda
 * backend, one GPU per worker (checked at submit against core's cuda table, job-spec.ts), and is
 * checked here against the devices and hosts it was placed on.
 */
export function resolveBackend(
  choice: BackendChoice, ranks: RankPlacement[], registry: AgentRegistry,
): { ok: true; backend: ResolvedBackend } | { ok: false; reason: string } {
  let allCuda = true;
  let ncclEverywhere = true;
  let firstCpu: RankPlacement | undefined;
  let noNccl: string | undefined;
  for (const r of ranks) {
    const agent = registry.get(r.agentId);
    const device = agent?.devices.find((d) => d.index === r.deviceIndex);
    if (device?.kind !== 'DEVICE_KIND_CUDA') {
      allCuda = false;
      firstCpu ??= r;
    }
    const nccl = agent?.backends.find((b) => b.backend === 'BACKEND_NCCL');
    if (!nccl?.available) {
      ncclEverywhere = false;
      noNccl ??= `${r.agentId}${nccl?.reason ? ` (${nccl.reason})` : ''}`;
    }
  }
  if (choice === 'cpu') return { ok: true, backend: 'cpu' };
  if (choice === 'nccl') {
    if (!allCuda) return { ok: false, reason: `backend nccl needs CUDA devices; rank ${firstCpu!.rank} is on a CPU device of agent ${firstCpu!.agentId}` };
    if (!ncclEverywhere) return { ok: false, reason: `backend nccl is not available on agent ${noNccl}` };
    return { ok: true, backend: 'nccl' };
  }
  return { ok: true, backend: EXECUTOR_BACKEND };
}

/** Allocates the ports and builds the rendezvous; releases what it took when it fails. */
export function buildRendezvous(backend: ResolvedBackend, ranks: RankPlacement[], registry: AgentRegistry): RendezvousResult {
  const leases: PortLease[] = [];
  const fail = (reason: string): RendezvousResult => {
    for (const l of leases) registry.releasePorts(l.address, l.ports);
    return { ok: false, reason };
  };
  const sorted = [...ranks].sort((a, b) => a.rank - b.rank);
  if (backend === 'nccl') {
    const root = registry.get(sorted[0].agentId);
    const ports = root ? registry.allocatePorts(root.id, 1) : null;
    if (!root || !ports) return fail(`agent ${sorted[0].agentId} has no free worker port for NCCL's bootstrap root`);
    leases.push({ address: root.address, ports });
    return { ok: true, rendezvous: { nccl: { rootAddress: `${root.address}:${ports[0]}` } }, leases };
  }
  const byAgent = new Map<string, RankPlacement[]>();
  for (const r of sorted) byAgent.set(r.agentId, [...(byAgent.get(r.agentId) ?? []), r]);
  const peers: string[] = new Array<string>(sorted.length);
  for (const [agentId, own] of byAgent) {
    const agent = registry.get(agentId);
    const ports = agent ? registry.allocatePorts(agentId, own.length) : null;
    if (!agent || !ports) {
      const range = agent ? ` (range ${agent.ports.first}..${agent.ports.first + agent.ports.count - 1})` : '';
      return fail(`agent ${agentId} has fewer than ${own.length} free worker ports${range}`);
    }
    leases.push({ address: agent.address, ports });
    own.forEach((r, i) => {
      peers[r.rank] = `${agent.address}:${ports[i]}`;
    });
  }
  return { ok: true, rendezvous: { cpu: { peers } }, leases };
}
