// Host memory available to offloaded tensors. A node's host memory (ClusterSpec.hostMemoryPerNode)
// is shared by its GPUs; each GPU's rank offloads into its own share. Part of it is never available:
// the OS, the training framework (Python, CUDA host allocations, pinned-memory pools) and the data
// loader hold it.
import type { HardwareProfile } from '@mist/core';

/**
 * Default fraction of the node's host memory kept for the OS and the framework when the profile
 * sets no `memory.hostReserveFraction`: 10%, a round figure for the framework processes and page
 * cache one such node runs beside the offloaded tensors.
 */
export const DEFAULT_HOST_RESERVE_FRACTION = 0.1;

/** Host bytes one GPU's rank may fill with offloaded tensors: hostMemoryPerNode / gpusPerNode * (1 - reserve). */
export function usableHostMemoryPerGpu(p: HardwareProfile): number {
  const reserve = p.memory.hostReserveFraction ?? DEFAULT_HOST_RESERVE_FRACTION;
  return (p.cluster.hostMemoryPerNode / p.cluster.gpusPerNode) * (1 - reserve);
}
