// When nothing fits: the candidate that came closest, by how much it misses, and which knobs would help.
import { type AnalyzerContext, type CompiledStageModel, IN, type StageMemory, type StagePosition, type StageQuery } from '@mist/analyzer';
import { clusterDevices, formatBytes, type ZeroLevel } from '@mist/core';
import type { Shortfall } from './intra-stage';
import type { SearchSpace } from './search-space';

export interface NoFitReport {
  /** Smallest (peak memory - capacity) over every candidate evaluated, bytes per GPU. */
  shortfallBytes: number | null;
  capacityBytes: number;
  /** The candidate that came closest. */
  closest: StageQuery | null;
  memory: StageMemory | null;
  hints: string[];
  message: string;
}

const POSITIONS: StagePosition[] = ['first', 'middle', 'last', 'only'];

function queryOfRow(row: Float64Array): StageQuery {
  return {
    layers: row[IN.LAYERS],
    position: POSITIONS[row[IN.POSITION]],
    inFlight: row[IN.IN_FLIGHT],
    pp: row[IN.PP],
    mesh: { nodes: row[IN.MESH_NODES], gpusPerNode: row[IN.MESH_GPUS_PER_NODE] },
    microBatchSize: row[IN.MICRO_BATCH],
    gradAccumSteps: row[IN.GRAD_ACCUM],
    dp: row[IN.DP],
    tp: row[IN.TP],
    sequenceParallel: row[IN.SP] === 1,
    ckptLayers: row[IN.CKPT],
    zero: row[IN.ZERO] as ZeroLevel,
    offload: { weights: row[IN.OFF_WEIGHTS], grads: row[IN.OFF_GRADS], optim: row[IN.OFF_OPTIM], activations: row[IN.OFF_ACT] },
  };
}

export function diagnoseNoFit(ctx: AnalyzerContext, space: SearchSpace, compiled: CompiledStageModel, shortfall: Shortfall | null): NoFitReport {
  const capacityBytes = compiled.capacityBytes;
  const devices = clusterDevices(ctx.profile.cluster);
  if (!shortfall) {
    return {
      shortfallBytes: null, capacityBytes, closest: null, memory: null,
      hints: ['check that the model\'s heads and the global batch allow some dp x tp split of the cluster'],
      message: `no strategy of the ${space.name} space could be evaluated on ${devices} GPUs (no valid dp x tp split for this batch and model)`,
    };
  }
  const closest = queryOfRow(shortfall.row);
  const est = compiled.estimate(closest);
  const m = est.memory;
  const states = m.weights + m.grads + m.optim;
  const hints: string[] = [];
  const perGpu = formatBytes(shortfall.bytes);
  hints.push(`more GPUs or GPUs with more memory (the closest candidate lacks ${perGpu} per GPU)`);
  const maxOffload = Math.min(...Object.values(space.offload).map((levels: number[]) => levels[levels.length - 1]));
  if (maxOffload < 1) hints.push('allow offloading to host memory (--space mist, or a finer --offload-step)');
  if (space.ckpt !== 'fine' && space.ckpt !== 'all-or-none') hints.push('allow activation checkpointing');
  if (!space.zero.includes(3)) hints.push('allow ZeRO-3 (shards the weights over data parallel ranks)');
  if (space.maxStages < Math.min(ctx.model.layers, devices)) hints.push('allow more pipeline stages');
  if (m.activations + m.transient > states) {
    hints.push(`a shorter sequence or a smaller global batch: activations and working buffers (${formatBytes(m.activations + m.transient)}) outweigh the model states (${formatBytes(states)})`);
  }
  return {
    shortfallBytes: shortfall.bytes,
    capacityBytes,
    closest,
    memory: m,
    hints,
    message: `nothing in the ${space.name} space fits in ${formatBytes(capacityBytes)} per GPU; the closest candidate needs ${formatBytes(shortfall.bytes)} more per GPU`,
  };
}
