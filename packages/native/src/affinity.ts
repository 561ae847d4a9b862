// CPU affinity of the whole process (every thread), for CPU devices that are fixed sets of cores.
import * as os from 'node:os';
import { loadAddon } from './addon';

interface AffinityAddon {
  pinProcessToCores(cores: number[]): number;
}

/** Pins every thread of this process to `cores` (Linux); returns the threads pinned. Throws where unsupported. */
export function pinProcessToCores(cores: readonly number[]): number {
  return loadAddon<AffinityAddon>().pinProcessToCores([...cores]);
}

/**
 * The cores of CPU device `device` when each device has `threads` cores: [device x threads, ...),
 * wrapping around the host's cores when there are more devices than cores (they then share).
 */
export function deviceCores(device: number, threads: number, cores = os.cpus().length): number[] {
  if (!Number.isInteger(device) || device < 0) throw new RangeError(`device must be a non-negative integer, got ${device}`);
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`threads must be a positive integer, got ${threads}`);
  const n = Math.max(1, cores);
  const per = Math.min(threads, n);
  return Array.from({ length: per }, (_, i) => (device * per + i) % n);
}
