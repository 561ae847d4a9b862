// A hardware profile carried to another cluster of the same GPU. What one host measured per GPU
// (compute rates and tables, memory reserves, overlap slowdowns, host<->device copies, the executor's
// terms) holds on every host of that kind; the cluster's shape (nodes, GPUs per node, host memory) is
// the target's. The links stay the profile's: a one-GPU profile's intra- and inter-node links are the
// datasheet's already (profiler profile-cuda.ts fills them so), and a measured node's links are those
// of its kind. The GPU spec stays the profile's too (its measured memory and PCIe bandwidths).
import type { ClusterSpec } from './cluster';
import { type HardwareProfile, parseHardwareProfile } from './hardware-profile';
import { SpecError } from './validation';

/** Whether two clusters have the same shape (nodes and GPUs per node). */
function sameShape(a: ClusterSpec, b: ClusterSpec): boolean {
  return a.nodes === b.nodes && a.gpusPerNode === b.gpusPerNode;
}

/**
 * The profile for `cluster`, whose GPU must be the profile's (SpecError naming both otherwise). The
 * profile itself when the shapes agree; else a copy on the cluster's shape whose `unmeasured` says
 * where it was measured and what was carried over.
 */
export function profileOnCluster(profile: HardwareProfile, cluster: ClusterSpec): HardwareProfile {
  const from = profile.cluster;
  if (from.gpu.name !== cluster.gpu.name) {
    throw new SpecError('hardware profile', [{
      field: 'cluster.gpu.name', value: from.gpu.name,
      message: `the profile is of ${from.gpu.name} GPUs; the cluster ${cluster.name} has ${cluster.gpu.name} (allowed: a cluster of ${from.gpu.name})`,
    }]);
  }
  if (sameShape(from, cluster)) return profile;
  const note = `measured on ${from.name} (${from.nodes} x ${from.gpusPerNode}); carried to ${cluster.name}: the per-GPU figures as measured, ` +
    `the links as the profile has them${from.nodes === 1 && cluster.nodes > 1 ? ' (its inter-node link was not measured on one node)' : ''}`;
  return parseHardwareProfile({
    ...profile,
    cluster: { ...cluster, gpu: from.gpu },
    unmeasured: { ...(profile.unmeasured ?? {}), cluster: note },
  });
}
