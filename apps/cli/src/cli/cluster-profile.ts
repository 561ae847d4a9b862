// The hardware profile a command uses for a cluster when no --profile is given: the GPU's measured
// profile kept by `mist profile --device cuda --save` (the profiler's store), carried to the cluster's
// shape, where one is kept; else the calibrated datasheet profile (core's builtinHardwareProfile).
// An engine target (megatron, nemo, deepspeed, torchtitan) keeps the datasheet profile: its figures
// come from public measurements of those frameworks' kernels, the kept profile from this executor's.
import { builtinHardwareProfile, type ClusterSpec, type HardwareProfile, isEngineName, profileOnCluster } from '@mist/core';
import { storedProfile } from '@mist/profiler';
import type { OptionSpec } from './command';

type Dtype = NonNullable<Parameters<typeof builtinHardwareProfile>[1]>;

export const DATASHEET_OPTION: Record<string, OptionSpec> = {
  datasheet: {
    type: 'boolean',
    description: 'use the built-in calibrated datasheet profile even where a measured profile of the GPU is kept (mist profile --device cuda --save)',
  },
};

/** The profile for `cluster` (see above); `note` hears which measured profile was used. */
export function clusterProfile(
  cluster: ClusterSpec, dtype: Dtype, opts: { datasheet?: boolean; target?: string }, note: (text: string) => void,
): HardwareProfile {
  return gpuProfiles(cluster.gpu.name, dtype, opts, note)(cluster);
}

/**
 * The profiles for clusters of one GPU (see above), as clusterProfile gives them: the kept profile is
 * read, and `note` told of it, once for every cluster asked for (mist fit tries many sizes).
 */
export function gpuProfiles(
  gpu: string, dtype: Dtype, opts: { datasheet?: boolean; target?: string }, note: (text: string) => void,
): (cluster: ClusterSpec) => HardwareProfile {
  const engine = opts.target !== undefined && isEngineName(opts.target);
  const kept = opts.datasheet === true || engine ? null : storedProfile(gpu, dtype);
  if (!kept) return (cluster) => builtinHardwareProfile(cluster, dtype);
  note(`using the measured ${gpu} profile ${kept.file}${kept.profile.createdAt ? ` (${kept.profile.createdAt})` : ''}; --datasheet for the built-in one\n`);
  return (cluster) => profileOnCluster(kept.profile, cluster);
}

/**
 * A --profile for the cluster a command was given: carried to its shape when it is the profile's GPU
 * (said through `note`), else unchanged (the command decides whether another GPU is an error).
 */
export function profileForCluster(profile: HardwareProfile, given: ClusterSpec, profileFile: string, note: (text: string) => void): HardwareProfile {
  if (given.gpu.name !== profile.cluster.gpu.name) return profile;
  const carried = profileOnCluster(profile, given);
  if (carried !== profile) note(`--profile ${profileFile}: ${carried.unmeasured?.cluster ?? `carried to ${given.name}`}\n`);
  return carried;
}
