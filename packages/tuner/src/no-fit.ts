// When nothing fits: the candidate that came closest, by how much it misses in device and in host
// memory, which of the two limits binds, and which knobs would help. Host memory binds when some
// candidate fits in device memory (by offloading) but every such candidate overflows the host; the
// closest is then the one with the smallest host shortfall. Otherwise the device binds and the
// closest is the candidate with the smallest device shortfall (which may overflow the host too).
import { type AnalyzerContext, type CompiledStageModel, readStageQuery, type StageMemory, type StageQuery } from '@mist/analyzer';
import { clusterDevices, engineCapabilities, formatBytes, OFFLOAD_KINDS, type OffloadKind } from '@mist/core';
import { closestWholePlan } from './closest-plan';
import type { Shortfall } from './intra-stage';
import type { SearchSpace } from './search-space';

export type BindingMemory = 'device' | 'host' | 'device and host';

export interface NoFitReport {
  /**
   * What the closest candidate lacks in the binding memory, bytes per GPU: the smallest device
   * shortfall over the candidates evaluated, or, when host memory binds, the smallest host shortfall
   * of the candidates that fit on the device.
   */
  shortfallBytes: number | null;
  /** The closest candidate's device peak beyond the device capacity, bytes per GPU (0 when within). */
  deviceShortfallBytes: number | null;
  /** The closest candidate's host memory beyond the host capacity, bytes per GPU (0 when within). */
  hostShortfallBytes: number | null;
  /** The binding limit: host when candidates fit on the device but not on the host; otherwise what the closest candidate overflows. */
  binding: BindingMemory | null;
  capacityBytes: number;
  /** Host memory per GPU available to offloaded tensors. */
  hostCapacityBytes: number;
  /** The candidate that came closest. */
  closest: StageQuery | null;
  memory: StageMemory | null;
  /** The closest candidate's host memory (offloaded states and activations), bytes per GPU. */
  hostMemoryBytes: number | null;
  hints: string[];
  message: string;
}

function bindingOf(s: Shortfall): BindingMemory {
  if (s.hostBytes <= 0) return 'device';
  return s.deviceBytes <= 0 ? 'host' : 'device and host';
}

/**
 * The "nothing fits" report from the searches' records: `deviceShortfall` the candidate with the
 * smallest device shortfall, `hostShortfall` the one with the smallest host shortfall among those
 * that fit on the device (null when none did; when set, host memory is the limit).
 */
export function diagnoseNoFit(
  ctx: AnalyzerContext, space: SearchSpace, compiled: CompiledStageModel, deviceShortfall: Shortfall | null,
  hostShortfall: Shortfall | null = null,
): NoFitReport {
  // A whole plan's shortfall (every stage must fit) rather than one stage candidate's, where the
  // space is the Mist search's (engine spaces keep their own records: engine-search.ts ClosestMiss).
  const whole = space.engine ? null : closestWholePlan(ctx, space, compiled);
  const shortfall = whole ? (whole.host ?? whole.device) : hostShortfall ?? deviceShortfall;
  const capacityBytes = compiled.capacityBytes;
  const hostCapacityBytes = compiled.hostCapacityBytes;
  const devices = clusterDevices(ctx.profile.cluster);
  if (!shortfall) {
    return {
      shortfallBytes: null, deviceShortfallBytes: null, hostShortfallBytes: null, binding: null, capacityBytes,
      hostCapacityBytes, closest: null, memory: null, hostMemoryBytes: null,
      hints: ['check that the model\'s heads and the global batch allow some dp x tp split of the cluster'],
      message: `no strategy of the ${space.name} space could be evaluated on ${devices} GPUs (no valid dp x tp split for this batch and model)`,
    };
  }
  const closest = readStageQuery(shortfall.row);
  const est = compiled.estimate(closest);
  const m = est.memory;
  const states = m.weights + m.grads + m.optim;
  const binding = bindingOf(shortfall);
  const hints: string[] = [];
  const dev = formatBytes(shortfall.deviceBytes);
  const host = formatBytes(shortfall.hostBytes);
  if (binding === 'device') hints.push(`more GPUs or GPUs with more memory (the closest candidate lacks ${dev} per GPU)`);
  else if (binding === 'host') hints.push(`more GPUs or nodes with more host memory (the closest candidate fits on the device by offloading but lacks ${host} of host memory per GPU)`);
  else hints.push(`more GPUs (the closest candidate lacks ${dev} of device memory and ${host} of host memory per GPU)`);
  const caps = space.engine ? engineCapabilities(space.engine) : null;
  const offloadable = (k: OffloadKind): number => (caps?.offload[k] === 'none' ? 0 : space.offload[k][space.offload[k].length - 1]);
  const maxOffload = Math.min(...OFFLOAD_KINDS.map(offloadable));
  // Offloading helps only when the host has room for what it moves.
  if (maxOffload < 1 && binding === 'device') {
    hints.push(caps ? `offloading to host memory, which ${caps.engine} cannot do in full (--space mist)` : 'allow offloading to host memory (--space mist, or a finer --offload-step)');
  }
  if (space.ckpt !== 'fine' && space.ckpt !== 'all-or-none') hints.push('allow activation checkpointing');
  const zeros = caps ? [...caps.zero, ...caps.zeroWithPipeline].filter((z) => space.zero.includes(z)) : space.zero;
  if (!zeros.includes(3)) hints.push('allow ZeRO-3 (shards the weights over data parallel ranks)');
  if (caps) hints.push(`the full Mist space (--space mist): per-stage strategies and what ${caps.engine} cannot express`);
  if (space.maxStages < Math.min(ctx.model.layers, devices)) hints.push('allow more pipeline stages');
  if (binding === 'device' && m.activations + m.transient > states) {
    hints.push(`a shorter sequence or a smaller global batch: activations and working buffers (${formatBytes(m.activations + m.transient)}) outweigh the model states (${formatBytes(states)})`);
  }
  if (binding !== 'device' && est.hostActivationBytes > est.hostMemoryBytes - est.hostActivationBytes) {
    hints.push(`a shorter sequence or a smaller global batch: offloaded activations (${formatBytes(est.hostActivationBytes)}) outweigh the offloaded model states (${formatBytes(est.hostMemoryBytes - est.hostActivationBytes)})`);
  }
  const limits = `${formatBytes(capacityBytes)} of device memory and ${formatBytes(hostCapacityBytes)} of host memory per GPU`;
  let message: string;
  if (binding === 'device') {
    message = `nothing in the ${space.name} space fits in ${formatBytes(capacityBytes)} per GPU; the closest candidate needs ${dev} more per GPU`;
  } else if (binding === 'host') {
    message = `nothing in the ${space.name} space fits in ${limits}: host memory is the limit; the closest candidate fits on the device by offloading but needs ${host} more host memory per GPU`;
  } else {
    message = `nothing in the ${space.name} space fits in ${limits}; the closest candidate needs ${dev} more device memory and ${host} more host memory per GPU`;
  }
  return {
    shortfallBytes: binding === 'host' ? shortfall.hostBytes : shortfall.deviceBytes,
    deviceShortfallBytes: shortfall.deviceBytes,
    hostShortfallBytes: shortfall.hostBytes,
    binding,
    capacityBytes,
    hostCapacityBytes,
    closest,
    memory: m,
    hostMemoryBytes: est.hostMemoryBytes,
    hints,
    message,
  };
}
