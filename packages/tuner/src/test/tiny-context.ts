// Small tuning instances with a tight memory budget (so that checkpointing, ZeRO, offloading and
// pipelining matter), for the optimality tests.
import type { AnalyzerContext } from '@mist/analyzer';
import { builtinHardwareProfile, getModel, GiB, type HardwareProfile, MiB, parseClusterShorthand, parseHardwareProfile, parseTrainingSpec } from '@mist/core';

/**
 * gpt-tiny on `cluster` with `usableBytes` of usable device memory per GPU (the CUDA context
 * reserve is raised so that usableDeviceMemory(profile) is usableBytes) and, when `hostBytes` is
 * given, that much host memory per GPU for offloaded tensors (no host reserve, so that
 * usableHostMemoryPerGpu(profile) is hostBytes); otherwise the cluster's catalog host memory.
 */
export function tinyContext(cluster: string, usableBytes: number, globalBatch = 8, seqLen = 64, hostBytes?: number): AnalyzerContext {
  const spec = parseClusterShorthand(cluster);
  const base = builtinHardwareProfile(spec);
  const frag = base.memory.fragmentation;
  const reserve = spec.gpu.memoryBytes - base.memory.ncclBufferBytes - usableBytes / (1 - frag);
  const host = hostBytes === undefined ? {} : { hostReserveFraction: 0 };
  const clusterSpec = hostBytes === undefined ? spec : { ...spec, hostMemoryPerNode: hostBytes * spec.gpusPerNode };
  const profile: HardwareProfile = parseHardwareProfile({
    ...base, cluster: clusterSpec, memory: { ...base.memory, cudaContextBytes: reserve, ...host },
  });
  return { model: getModel('gpt-tiny'), training: parseTrainingSpec({ globalBatch, seqLen }), profile };
}

export { GiB, MiB };

/**
 * `ctx` with a measured-style profile: the executor's host cost per module pass and the slowdowns
 * with every device of a node busy, as `mist profile` writes them for a CPU host (the profile's
 * `backend` section of kind cpu). Test figures of the order of a CPU host's (0.1-0.3 ms per pass),
 * not a measurement; what matters is that the stage model then reads the pipeline depth pp
 * (analyzer stage-model.ts busyShare), so that frontiers depend on pp.
 */
export function withAllBusy(ctx: AnalyzerContext): AnalyzerContext {
  const p = ctx.profile;
  const profile = parseHardwareProfile({
    ...p, backend: { kind: 'cpu', modulePassOverhead: 1e-4, allBusy: { kernelSlowdown: 1.5, modulePassOverhead: 2e-4, pipelineModulePassOverhead: 3e-4 } },
  });
  return { ...ctx, profile };
}
