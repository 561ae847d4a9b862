// Enumeration of the discrete parts of the search space: gradient accumulation steps, device meshes,
// the stage groups the inter-stage step chooses from, and the parallel configurations of a stage.
import {
  type ClusterSpec, expertParallelProblems, type Mesh, meshSize, type ModelSpec, type Offload, type StageStrategy, tensorParallelProblems, type ZeroLevel,
} from '@mist/core';
import type { StagePosition } from '@mist/analyzer';
import type { SearchSpace } from './search-space';

export function divisors(n: number): number[] {
  const out: number[] = [];
  for (let d = 1; d <= n; d++) if (n % d === 0) out.push(d);
  return out;
}

export function isPowerOfTwo(n: number): boolean {
  return n >= 1 && (n & (n - 1)) === 0;
}

/** The mesh of each of pp equal stages on the cluster, or null when D / pp devices do not tile its nodes. */
export function equalStageMesh(devices: number, gpusPerNode: number, pp: number): Mesh | null {
  if (devices % pp !== 0) return null;
  const d = devices / pp;
  if (d < gpusPerNode) return gpusPerNode % d === 0 ? { nodes: 1, gpusPerNode: d } : null;
  return d % gpusPerNode === 0 ? { nodes: d / gpusPerNode, gpusPerNode } : null;
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

/**
 * A (position, layers, mesh) option of the inter-stage step, the pipeline depths it serves and the
 * in-flight counts it serves at them.
 */
export interface StageGroupSpec {
  position: StagePosition;
  layers: number;
  meshIndex: number;
  mesh: Mesh;
  /**
   * Pipeline depths (stage counts) the group may sit in. One depth when the stage model reads pp
   * (see pipeline-depth.ts): its frontiers are then that depth's only.
   */
  ppMin: number;
  ppMax: number;
  /**
   * In-flight micro-batch counts it serves at those depths, min(pp - i, G) for stage i
   * (analyzer inFlightMicroBatches): capped at G by `atGradAccum`, uncapped before.
   */
  inFlightMin: number;
  inFlightMax: number;
}

/**
 * The pp the search writes into a group's queries (the PP column): the group's one depth when it
 * serves one; otherwise the stage model does not read pp (pipeline-depth.ts) and any depth it
 * serves gives the same numbers.
 */
export function queryPp(spec: StageGroupSpec): number {
  return spec.ppMin;
}

/**
 * Stage groups worth evaluating: a stage with l layers and d devices sits in a pipeline of at most
 * min(L - l, D - d) + 1 stages (the others need a layer and a device each); a first stage at depth
 * pp has pp micro-batches in flight before G caps them, a middle stage k-th from the end (k in
 * [2, pp - 1], at most L - l and D - d: k - 1 stages after it, one before) has k, a last stage 1.
 * Uniform partitions / meshes pin layers and devices to L / pp and D / pp. With `perDepth` (the
 * stage model reads pp) every group is split into one group per depth it serves.
 */
export function stageGroupSpecs(space: SearchSpace, layers: number, cluster: ClusterSpec, meshes: Mesh[], perDepth = false): StageGroupSpec[] {
  const D = cluster.nodes * cluster.gpusPerNode;
  const L = layers;
  const maxPp = Math.min(space.maxStages, L, D);
  const out: StageGroupSpec[] = [];
  const push = (spec: StageGroupSpec): void => {
    if (!perDepth || spec.ppMin === spec.ppMax) {
      out.push(spec);
      return;
    }
    for (let pp = spec.ppMin; pp <= spec.ppMax; pp++) out.push(atDepth(spec, pp));
  };
  meshes.forEach((mesh, meshIndex) => {
    const d = meshSize(mesh);
    if (d === D) out.push({ position: 'only', layers: L, meshIndex, mesh, ppMin: 1, ppMax: 1, inFlightMin: 1, inFlightMax: 1 });
    if (maxPp < 2 || d >= D) return;
    for (let l = 1; l < L; l++) {
      // The pp values in [2, maxPp] a group with l layers and d devices can belong to: all of them,
      // or the single one the uniform switches pin (L / l, D / d), as the interval [pLo, pHi].
      let pLo = 2;
      let pHi = Math.min(maxPp, L - l + 1, D - d + 1);
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
      push({ position: 'last', layers: l, meshIndex, mesh, ppMin: pLo, ppMax: pHi, inFlightMin: 1, inFlightMax: 1 });
      push({ position: 'first', layers: l, meshIndex, mesh, ppMin: pLo, ppMax: pHi, inFlightMin: pLo, inFlightMax: pHi });
      // A middle stage needs a pipeline of at least 3 stages; k-th from the end, k <= pp - 1.
      if (pHi >= 3) {
        push({ position: 'middle', layers: l, meshIndex, mesh, ppMin: Math.max(3, pLo), ppMax: pHi, inFlightMin: 2, inFlightMax: pHi - 1 });
      }
    }
  });
  return out;
}

/** The part of a group at one pipeline depth pp (in its range). */
export function atDepth(spec: StageGroupSpec, pp: number): StageGroupSpec {
  if (pp < spec.ppMin || pp > spec.ppMax) throw new RangeError(`pp ${pp} is outside the group's depths ${spec.ppMin}..${spec.ppMax}`);
  const f = spec.position === 'first' ? [pp, pp] : spec.position === 'middle' ? [2, pp - 1] : [1, 1];
  return { ...spec, ppMin: pp, ppMax: pp, inFlightMin: f[0], inFlightMax: f[1] };
}

/**
 * A group at gradient-accumulation count G: 1F1B never has more than the iteration's G
 * micro-batches in flight (inFlightMicroBatches), so its in-flight counts are capped at G
 * (min is monotone: {min(f, G) : f in [a, b]} = [min(a, G), min(b, G)]).
 */
export function atGradAccum(spec: StageGroupSpec, G: number): StageGroupSpec {
  if (spec.inFlightMax <= G) return spec;
  return { ...spec, inFlightMin: Math.min(spec.inFlightMin, G), inFlightMax: G };
}

/**
 * One parallel configuration of a stage: everything but the checkpointed-layer count and
 * offloading. Selective recompute is part of it (a switch, not a grid axis): the intra-stage branch
 * and bound stays monotone in ckptLayers and the offload ratios for each value of it.
 */
export interface ParallelConfig {
  microBatchSize: number;
  dp: number;
  tp: number;
  /** Context-parallel degree (1: none). */
  cp: number;
  /** Expert-parallel degree (mixture of experts; absent: 1). */
  ep?: number;
  sequenceParallel: boolean;
  zero: ZeroLevel;
  /** Selective recompute of the attention core in the layers not fully checkpointed. */
  selectiveRecompute: boolean;
}

/**
 * The plan stage of a parallel configuration with its layers, mesh, checkpointed layers and offload;
 * cp, ep and selective recompute written only when used, so that plans without them read as before.
 */
export function stageStrategyOf(c: ParallelConfig, layers: [number, number], mesh: Mesh, ckptLayers: number, offload: Offload): StageStrategy {
  return {
    layers, mesh, microBatchSize: c.microBatchSize, dp: c.dp, tp: c.tp,
    ...(c.cp > 1 ? { cp: c.cp } : {}),
    ...((c.ep ?? 1) > 1 ? { ep: c.ep } : {}),
    sequenceParallel: c.sequenceParallel, ckptLayers,
    ...(c.selectiveRecompute ? { selectiveRecompute: true } : {}),
    zero: c.zero, offload,
  };
}

/**
 * The same stage with every optional field present, at its neutral value where off (cp 1, ep 1,
 * no selective or per-op recompute): one object shape for the searches that set a probe stage's
 * fields in place and estimate it many times; stageStrategyOf writes the canonical stage of a plan.
 */
export function probeStage(c: ParallelConfig, layers: [number, number], mesh: Mesh, ckptLayers: number, offload: Offload, opRecompute = false): StageStrategy {
  return {
    layers, mesh, microBatchSize: c.microBatchSize, dp: c.dp, tp: c.tp, cp: c.cp, ep: c.ep ?? 1, sequenceParallel: c.sequenceParallel,
    ckptLayers, selectiveRecompute: c.selectiveRecompute, opRecompute, zero: c.zero, offload,
  };
}

/** Why a tp degree is not allowed for a model (same rules as core's plan validation), or null. */
/** Why `tp` cannot split the model (core's rule), or null. */
export function tpProblem(model: ModelSpec, tp: number): string | null {
  const why = tensorParallelProblems(model, tp);
  return why.length > 0 ? `tp ${tp} ${why.join('; ')}` : null;
}

/**
 * dp x tp x cp splits of a mesh with b = samplesPerMicroBatch / dp a whole number (b * dp * G = globalBatch),
 * times sequence parallelism, the ZeRO levels and the selective-recompute choices (selectiveLevels;
 * default: off only).
 *
 * With `pruneCp` (default) a split (dp, cp > 1) is left out when (dp * cp, cp 1) is also a split:
 * the analyzer sees the same tokens per rank (b*s/cp = (b/cp)*s), the same attention work, the same
 * weights, ZeRO shards and gradient group (dp * cp ranks) in both, and the cp one adds only the K/V
 * ring's exposed transfers and receive buffers (ring-attention.ts, both >= 0), so it is never faster
 * nor smaller. Context parallelism is searched where it helps: where the micro-batch cannot be split
 * further over data parallelism. The brute-force tests run without the pruning and check this.
 */
export function parallelConfigs(space: SearchSpace, model: ModelSpec, seqLen: number, mesh: Mesh, samplesPerMicroBatch: number,
  selective: readonly boolean[] = [false], pruneCp = true): ParallelConfig[] {
  const out: ParallelConfig[] = [];
  const devices = meshSize(mesh);
  for (const tp of divisors(mesh.gpusPerNode)) {
    if (tp > space.maxTp || tpProblem(model, tp)) continue;
    for (const cp of cpChoices(space, seqLen, devices / tp)) {
      const dp = devices / (tp * cp);
      if (samplesPerMicroBatch % dp !== 0) continue;
      const b = samplesPerMicroBatch / dp;
      if (space.microBatchPow2 && !isPowerOfTwo(b)) continue;
      if (pruneCp && cp > 1 && b % cp === 0 && (!space.microBatchPow2 || isPowerOfTwo(b / cp))) continue;
      const sps = tp > 1 && space.sequenceParallel && seqLen % tp === 0 ? [false, true] : [false];
      // With one rank holding each weight shard (dp * cp = 1; ZeRO shards over dp * cp) ZeRO has
      // nothing to shard: every level is the same strategy, so only the lowest allowed level is kept.
      const zeros = dp * cp === 1 ? [Math.min(...space.zero) as ZeroLevel] : space.zero;
      for (const ep of epChoices(space, model, dp * cp)) {
        for (const sequenceParallel of sps) {
          for (const zero of zeros) {
            for (const selectiveRecompute of selective) {
              out.push({ microBatchSize: b, dp, tp, cp, ...(ep > 1 ? { ep } : {}), sequenceParallel, zero, selectiveRecompute });
            }
          }
        }
      }
    }
  }
  return out;
}

/**
 * Context-parallel degrees of a stage with `rest` = devices / tp ranks to split between dp and cp:
 * the divisors cp of rest up to space.maxCp (1 when absent) whose 2*cp load-balanced chunks split
 * the sequence (seqLen % (2 * cp) == 0, Megatron-LM's rule).
 */
export function cpChoices(space: Pick<SearchSpace, 'maxCp'>, seqLen: number, rest: number): number[] {
  const maxCp = space.maxCp ?? 1;
  return divisors(rest).filter((cp) => cp === 1 || (cp <= maxCp && seqLen % (2 * cp) === 0));
}

/**
 * Expert-parallel degrees of a stage with dp * cp data-parallel ranks: 1, and for a mixture-of-experts
 * model the ep up to space.maxEp (1 when absent) that core's rule allows (expertParallelProblems:
 * ep divides dp * cp and the experts). None of them is pruned: a larger ep holds fewer experts per
 * rank (less memory, smaller expert gradient sync) but pays a larger all-to-all.
 */
export function epChoices(space: Pick<SearchSpace, 'maxEp'>, model: ModelSpec, dpcp: number): number[] {
  if (!model.moe) return [1];
  const maxEp = space.maxEp ?? 1;
  return divisors(dpcp).filter((ep) => ep === 1 || (ep <= maxEp && expertParallelProblems(model, ep, dpcp).length === 0));
}

/**
 * Selective-recompute choices of a stage: off, and on when the space has it and the training spec
 * runs the unfused attention (with flash attention the kernel keeps no s x s tensor: selective
 * recompute would change nothing, so it is not searched).
 */
export function selectiveLevels(space: Pick<SearchSpace, 'selectiveRecompute'>, flashAttention: boolean): boolean[] {
  return space.selectiveRecompute && !flashAttention ? [false, true] : [false];
}

/** Checkpointed-layer counts of a stage with `layers` layers. */
export function ckptLevels(mode: SearchSpace['ckpt'], layers: number): number[] {
  if (mode === 'none') return [0];
  if (mode === 'all-or-none') return [0, layers];
  return Array.from({ length: layers + 1 }, (_, i) => i);
}
