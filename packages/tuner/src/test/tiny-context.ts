// Small tuning instances with a tight memory budget (so that checkpointing, ZeRO, offloading and
// pipelining matter), for the optimality tests.
import type { AnalyzerContext } from '@mist/analyzer';
import { builtinHardwareProfile, getModel, GiB, type HardwareProfile, MiB, parseClusterShorthand, parseHardwareProfile, parseTrainingSpec } from '@mist/core';

/**
 * gpt-tiny on `cluster` with `usableBytes` of usable device memory per GPU (the CUDA context
 * reserve is raised so that usableDeviceMemory(profile) is usableBytes).
 */
export function tinyContext(cluster: string, usableBytes: number, globalBatch = 8, seqLen = 64): AnalyzerContext {
  const spec = parseClusterShorthand(cluster);
  const base = builtinHardwareProfile(spec);
  const frag = base.memory.fragmentation;
  const reserve = spec.gpu.memoryBytes - base.memory.ncclBufferBytes - usableBytes / (1 - frag);
  const profile: HardwareProfile = parseHardwareProfile({ ...base, memory: { ...base.memory, cudaContextBytes: reserve } });
  return { model: getModel('gpt-tiny'), training: parseTrainingSpec({ globalBatch, seqLen }), profile };
}

export { GiB, MiB };
