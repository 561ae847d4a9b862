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
  // pp values that a group with l layers and d devices can belong to under the uniform switches.
  const ppFits = (pp: number, l: number, d: number): boolean =>
    (!space.uniformPartition || l * pp === L) && (!space.uniformMesh || d * pp === D);
  meshes.forEach((mesh, meshIndex) => {
    const d = meshSize(mesh);
    if (d === D) out.push({ position: 'only', layers: L, meshIndex, mesh, inFlightMin: 1, inFlightMax: 1 });
    if (maxPp < 2 || d >= D) return;
    for (let l = 1; l < L; l++) {
      const range = (lo: number, hi: number, ok: (f: number) => boolean): [number, number] | null => {
        let a = -1;
        let b = -1;
        for (let f = lo; f <= hi; f++) {
          if (!ok(f)) continue;
          if (a < 0) a = f;
          b = f;
        }
        return a < 0 ? null : [a, b];
      };
      const last = range(1, 1, () => [...Array(maxPp - 1).keys()].some((k) => ppFits(k + 2, l, d)));
      if (last) out.push({ position: 'last', layers: l, meshIndex, mesh, inFlightMin: 1, inFlightMax: 1 });
      const firstMax = Math.min(maxPp, L - l + 1, D - d + 1);
      const first = range(2, firstMax, (f) => ppFits(f, l, d));
      if (first) out.push({ position: 'first', layers: l, meshIndex, mesh, inFlightMin: first[0], inFlightMax: first[1] });
      const middleMax = Math.min(maxPp - 1, L - l, D - d);
      // A middle stage at in-flight f sits in a pipeline of at least f + 1 stages.
      const middle = range(2, middleMax, (f) => [...Array(maxPp - f).keys()].some((k) => ppFits(f + 1 + k, l, d)));
      if (middle) out.push({ position: 'middle', layers: l, meshIndex, mesh, inFlightMin: middle[0], inFlightMax: middle[1] });
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
