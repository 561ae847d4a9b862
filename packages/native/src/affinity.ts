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
 * The cores of CPU device `device` when each device has `threads` cores, counted from the last core
 * down (device 0 gets the highest cores: the operating system's interrupts and housekeeping favour
 * core 0, which measured slower on a 2-core virtual machine), wrapping around when there are more
 * devices than cores (they then share).
 */
export function deviceCores(device: number, threads: number, cores = os.cpus().length): number[] {
  if (!Number.isInteger(device) || device < 0) throw new RangeError(`device must be a non-negative integer, got ${device}`);
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`threads must be a positive integer, got ${threads}`);
  const n = Math.max(1, cores);
  const per = Math.min(threads, n);
  return Array.from({ length: per }, (_, i) => n - 1 - ((device * per + i) % n));
}
