// Enumeration of the discrete parts of the search space: gradient accumulation steps, device meshes,
// the stage groups the inter-stage step chooses from, and the parallel configurations of a stage.
import { type ClusterSpec, type Mesh, meshSize, type ModelSpec, type ZeroLevel } from '@mist/core';
import type { StagePosition } from './inter-stage-instance';
import type { SearchSpace } from './search-space';

export function divisors(n: number): number[] {
  const out: number[] = [];
  for (let d = 1; d <= n; d++) if (n % d === 0) out.push(d);
  return out;
}

export function isPowerOfTwo(n: number): boolean {
  return n >= 1 && (n & (n - 1)) === 0;
}

/** G such that G divides the global batch (b * dp * G = globalBatch). */
export function gradAccumChoices(globalBatch: number): number[] {
  return divisors(globalBatch);
}

/**
 * Stage meshes: part of one node, 1 x m with m a power of two dividing gpusPerNode (so that any mix
 * of them with whole-node meshes packs the nodes exactly: each size divides every larger one), and
 * whole nodes, n x gpusPerNode.
 */
export function meshChoices(cluster: ClusterSpec): Mesh[] {
  const meshes: Mesh[] = [];
  for (let m = 1; m < cluster.gpusPerNode; m *= 2) {
    if (cluster.gpusPerNode % m === 0) meshes.push({ nodes: 1, gpusPerNode: m });
  }
  for (let n = 1; n <= cluster.nodes; n++) meshes.push({ nodes: n, gpusPerNode: cluster.gpusPerNode });
  return meshes;
}

/** A (position, layers, mesh) option of the inter-stage step and the in-flight counts it serves. */
export interface StageGroupSpec {
  position: StagePosition;
  layers: number;
  meshIndex: number;
  mesh: Mesh;
  inFlightMin: number;
  inFlightMax: number;
}

/**
 * Stage groups worth evaluating: a first stage with in-flight f = pp leaves pp - 1 stages (each at
 * least one layer and one device), a middle stage at in-flight f has f - 1 stages after it and one
 * before, a last stage has in-flight 1. Uniform partitions / meshes pin layers and devices to
 * L / pp and D / pp.
 */
export function stageGroupSpecs(space: SearchSpace, layers: number, cluster: ClusterSpec, meshes: Mesh[]): StageGroupSpec[] {
  const D = cluster.nodes * cluster.gpusPerNode;
  const L = layers;
  const maxPp = Math.min(space.maxStages, L, D);
  const out: StageGroupSpec[] = [];
  meshes.forEach((mesh, meshIndex) => {
    const d = meshSize(mesh);
    if (d === D) out.push({ position: 'only', layers: L, meshIndex, mesh, inFlightMin: 1, inFlightMax: 1 });
    if (maxPp < 2 || d >= D) return;
    for (let l = 1; l < L; l++) {
      // The pp values in [2, maxPp] a group with l layers and d devices can belong to: all of them,
      // or the single one the uniform switches pin (L / l, D / d), as the interval [pLo, pHi].
      let pLo = 2;
      let pHi = maxPp;
      if (space.uniformPartition) {
        if (L % l !== 0) continue;
        pLo = Math.max(pLo, L / l);
        pHi = Math.min(pHi, L / l);
      }
      if (space.uniformMesh) {
        if (D % d !== 0) continue;
        pLo = Math.max(pLo, D / d);
        pHi = Math.min(pHi, D / d);
      }
      if (pLo > pHi) continue;
      out.push({ position: 'last', layers: l, meshIndex, mesh, inFlightMin: 1, inFlightMax: 1 });
      // A first stage at in-flight f is in a pipeline of pp = f stages, each at least one layer and one device.
      const firstLo = pLo;
      const firstHi = Math.min(pHi, L - l + 1, D - d + 1);
      if (firstLo <= firstHi) out.push({ position: 'first', layers: l, meshIndex, mesh, inFlightMin: firstLo, inFlightMax: firstHi });
      // A middle stage at in-flight f sits in a pipeline of at least f + 1 stages (f <= pHi - 1), with
      // f - 1 stages after it and one before.
      const middleHi = Math.min(maxPp - 1, L - l, D - d, pHi - 1);
      if (middleHi >= 2) out.push({ position: 'middle', layers: l, meshIndex, mesh, inFlightMin: 2, inFlightMax: middleHi });
    }
  });
  return out;
}

/** One parallel configuration of a stage: everything but checkpointing and offloading. */
export interface ParallelConfig {
  microBatchSize: number;
  dp: number;
  tp: number;
  sequenceParallel: boolean;
  zero: ZeroLevel;
}

/** Why a tp degree is not allowed for a model (same rules as core's plan validation), or null. */
export function tpProblem(model: ModelSpec, tp: number): string | null {
  if (model.heads % tp !== 0) return `tp ${tp} does not divide ${model.heads} heads`;
  if (model.kvHeads % tp !== 0 && tp % model.kvHeads !== 0) return `tp ${tp} and ${model.kvHeads} kv heads`;
  if (model.ffnHidden % tp !== 0) return `tp ${tp} does not divide ffnHidden ${model.ffnHidden}`;
  return null;
}

/**
 * dp x tp splits of a mesh with b = samplesPerMicroBatch / dp a whole number (b * dp * G = globalBatch),
 * times sequence parallelism and the ZeRO levels.
 */
export function parallelConfigs(space: SearchSpace, model: ModelSpec, seqLen: number, mesh: Mesh, samplesPerMicroBatch: number): ParallelConfig[] {
  const out: ParallelConfig[] = [];
  const devices = meshSize(mesh);
  for (const tp of divisors(mesh.gpusPerNode)) {
    if (tp > space.maxTp || tpProblem(model, tp)) continue;
    const dp = devices / tp;
    if (samplesPerMicroBatch % dp !== 0) continue;
    const b = samplesPerMicroBatch / dp;
    if (space.microBatchPow2 && !isPowerOfTwo(b)) continue;
    const sps = tp > 1 && space.sequenceParallel && seqLen % tp === 0 ? [false, true] : [false];
    // With one data-parallel rank ZeRO has nothing to shard: every level is the same strategy, so
    // only the lowest allowed level is kept.
    const zeros = dp === 1 ? [Math.min(...space.zero) as ZeroLevel] : space.zero;
    for (const sequenceParallel of sps) {
      for (const zero of zeros) out.push({ microBatchSize: b, dp, tp, sequenceParallel, zero });
    }
  }
  return out;
}

/** Checkpointed-layer counts of a stage with `layers` layers. */
export function ckptLevels(mode: SearchSpace['ckpt'], layers: number): number[] {
  if (mode === 'none') return [0];
  if (mode === 'all-or-none') return [0, layers];
  return Array.from({ length: layers + 1 }, (_, i) => i);
}
