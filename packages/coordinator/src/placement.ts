// Placement: maps every stage's device mesh of a plan onto the agents' free devices.
// Ranks follow core's rank layout (rank-layout.ts: stage by stage, tp-consecutive inside a stage), so a
// TP group is tp consecutive ranks. Rules (ARCHITECTURE.md, Runtime):
//  - a stage mesh of `nodes x gpusPerNode` takes `gpusPerNode` devices on each of `nodes` hosts;
//  - a TP group stays inside one host (tp divides gpusPerNode, checked by the plan's validation);
//  - neighbouring stages and DP replicas go on the same host where they fit (fewer hops for the
//    pipeline's activations), so we try the hosts of the previous stage first.
import { type Plan, planDevices, planRanks } from '@mist/core';

export interface PlacementDevice {
  /** Index of the device on its host (CUDA ordinal, or the CPU device number). */
  index: number;
  kind: string;
  memoryBytes: number;
}

export interface PlacementAgent {
  id: string;
  host: string;
  devices: PlacementDevice[];
  /** Device indices already taken by other jobs. */
  busy?: number[];
}

export interface RankPlacement {
  rank: number;
  stage: number;
  dpIndex: number;
  /** Index in the stage's context-parallel group (0 when cp is 1): core's rank layout. */
  cpIndex: number;
  tpIndex: number;
  agentId: string;
  host: string;
  deviceIndex: number;
}

export type PlacementResult = { ok: true; ranks: RankPlacement[] } | { ok: false; reason: string };

export function placePlan(plan: Plan, agents: PlacementAgent[]): PlacementResult {
  const free = new Map<string, number[]>();
  for (const a of agents) {
    const busy = new Set(a.busy ?? []);
    free.set(a.id, a.devices.map((d) => d.index).filter((i) => !busy.has(i)).sort((x, y) => x - y));
  }
  const totalFree = [...free.values()].reduce((n, f) => n + f.length, 0);
  const needed = planDevices(plan);
  if (needed > totalFree) {
    return { ok: false, reason: `the plan needs ${needed} devices; the ${agents.length} agent(s) have ${totalFree} free` };
  }
  const ranks: RankPlacement[] = [];
  let previousHosts: string[] = [];
  // Ranks in core's layout (rank-layout.ts), the one the executor's topology reads.
  const layout = planRanks(plan);
  for (const [stageIndex, stage] of plan.stages.entries()) {
    const { nodes, gpusPerNode } = stage.mesh;
    // Prefer the previous stage's agents, then the agents with the most free devices (stable by id).
    const candidates = agents
      .filter((a) => (free.get(a.id) ?? []).length >= gpusPerNode)
      .sort((a, b) => {
        const pa = previousHosts.includes(a.id) ? 0 : 1;
        const pb = previousHosts.includes(b.id) ? 0 : 1;
        if (pa !== pb) return pa - pb;
        const fa = free.get(a.id)!.length;
        const fb = free.get(b.id)!.length;
        return fa !== fb ? fb - fa : a.id.localeCompare(b.id);
      });
    if (candidates.length < nodes) {
      const best = Math.max(0, ...agents.map((a) => (free.get(a.id) ?? []).length));
      return {
        ok: false,
        reason: `stage ${stageIndex} needs ${nodes} host(s) with ${gpusPerNode} free device(s) each (TP groups stay inside a host); ` +
          `${candidates.length} host(s) qualify, the most free devices on one host is ${best}`,
      };
    }
    const chosen = candidates.slice(0, nodes);
    // Device slots of the stage in mesh order: host by host, gpusPerNode devices each.
    const slots: Array<{ agent: PlacementAgent; device: number }> = [];
    for (const agent of chosen) {
      const devices = free.get(agent.id)!;
      for (const device of devices.splice(0, gpusPerNode)) slots.push({ agent, device });
    }
    const stageRanks = layout.filter((r) => r.stage === stageIndex);
    slots.forEach((slot, i) => {
      const { rank, stage: s, dpIndex, cpIndex, tpIndex } = stageRanks[i];
      ranks.push({ rank, stage: s, dpIndex, cpIndex, tpIndex, agentId: slot.agent.id, host: slot.agent.host, deviceIndex: slot.device });
    });
    previousHosts = chosen.map((a) => a.id);
  }
  return { ok: true, ranks };
}
