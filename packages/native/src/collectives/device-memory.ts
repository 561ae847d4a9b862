// GPU memory for the NCCL backend, allocated through the CUDA runtime the addon opens at run time.
import { collectivesAddon, type NativeDeviceBuffer } from './native-addon';

const handles = new WeakMap<DeviceBuffer, NativeDeviceBuffer>();

/** An opaque float32 buffer in CUDA device memory (freed by `deviceFree` or when collected). */
export class DeviceBuffer {
  /** Number of float32 elements. */
  readonly length: number;

  private constructor(
    handle: NativeDeviceBuffer,
    readonly bytes: number,
    readonly device: number,
  ) {
    this.length = Math.floor(bytes / 4);
    handles.set(this, handle);
  }

  /** @internal */
  static fromNative(handle: NativeDeviceBuffer, bytes: number, device: number): DeviceBuffer {
    return new DeviceBuffer(handle, bytes, device);
  }
}

/** The addon's handle of a device buffer (internal to @mist/native). */
export function nativeDeviceBuffer(buffer: DeviceBuffer): NativeDeviceBuffer {
  const handle = handles.get(buffer);
  if (!handle) throw new TypeError('expected a DeviceBuffer from deviceAlloc()');
  return handle;
}

/** Allocates `bytes` of device memory on CUDA device `device` (throws where CUDA is unavailable). */
export function deviceAlloc(bytes: number, device = 0): DeviceBuffer {
  return DeviceBuffer.fromNative(collectivesAddon().deviceAlloc(bytes, device), bytes, device);
}

export function deviceFree(buffer: DeviceBuffer): void {
  collectivesAddon().deviceFree(nativeDeviceBuffer(buffer));
}

/** Copies `src` into the start of `dst`, off the JavaScript thread. */
export async function copyToDevice(dst: DeviceBuffer, src: Float32Array): Promise<void> {
  await collectivesAddon().deviceCopyToDevice(nativeDeviceBuffer(dst), src);
}

/** Copies the first `dst.length` floats of `src` into `dst`, off the JavaScript thread. */
export async function copyToHost(dst: Float32Array, src: DeviceBuffer): Promise<void> {
  await collectivesAddon().deviceCopyToHost(dst, nativeDeviceBuffer(src));
}
