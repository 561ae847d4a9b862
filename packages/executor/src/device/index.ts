// Where the executor's tensors live and its kernels run (device.ts).
import { cpuDevice } from './cpu-device';
import { cudaDevice } from './cuda-device';
import type { Device } from './device';

export { cpuDevice } from './cpu-device';
export { cudaDevice } from './cuda-device';
export type { Device, DeviceBatch } from './device';

export const DEVICE_KINDS = ['cpu', 'cuda'] as const;
export type DeviceKind = (typeof DEVICE_KINDS)[number];

/** The device of a kind; 'cuda' throws naming why when this host cannot run it. */
export function deviceOf(kind: DeviceKind): Device<Float32Array, Int32Array> | ReturnType<typeof cudaDevice> {
  if (kind === 'cpu') return cpuDevice;
  if (kind === 'cuda') return cudaDevice();
  throw new Error(`device must be one of ${DEVICE_KINDS.join(', ')}, got '${String(kind)}'`);
}
