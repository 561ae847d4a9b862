// The functions the collectives part of the C++ addon adds to its exports (backend_binding.cc,
// comm_binding.cc, device_memory.cc). Internal: the public API wraps these in typed classes.
import { loadAddon } from '../addon';
import type { NativeCudaTensor } from '../cuda/addon-cuda';
import type { BackendInfo, ReduceOp, TrafficStats } from './types';

/** Opaque, type-tagged handles owned by the addon. */
export type NativeComm = { readonly __brand: 'mist.NativeComm' };
export type NativeListener = { readonly __brand: 'mist.NativeListener' };
export type NativeDeviceBuffer = { readonly __brand: 'mist.NativeDeviceBuffer' };

/** A buffer as the addon takes it: Float32Array (cpu), or a device allocation or CUDA tensor handle (nccl). */
export type NativeBuffer = Float32Array | NativeDeviceBuffer | NativeCudaTensor;

export type NativeOp =
  | { kind: 'send'; input: NativeBuffer; peer: number }
  | { kind: 'recv'; output: NativeBuffer; peer: number }
  | { kind: 'allReduce'; input: NativeBuffer; op: ReduceOp }
  | { kind: 'allGather'; input: NativeBuffer; output: NativeBuffer }
  | { kind: 'reduceScatter'; input: NativeBuffer; output: NativeBuffer; op: ReduceOp }
  | { kind: 'broadcast'; input: NativeBuffer; peer: number };

export interface CollectivesAddon {
  collectivesBackends(): BackendInfo[];
  cpuListen(host: string, port: number): { listener: NativeListener; port: number };
  cpuListenerClose(listener: NativeListener): void;
  cpuCommCreate(listener: NativeListener, rank: number, worldSize: number, peers: string[], timeoutMs: number): Promise<NativeComm>;
  ncclGetUniqueId(): Uint8Array;
  ncclCommCreate(uniqueId: Uint8Array, rank: number, worldSize: number, device: number, timeoutMs: number): Promise<NativeComm>;
  commRun(comm: NativeComm, ops: NativeOp[]): Promise<void>;
  commBarrier(comm: NativeComm): Promise<void>;
  commSplit(comm: NativeComm, color: number, key: number): Promise<NativeComm | null>;
  commDestroy(comm: NativeComm): Promise<void>;
  commInfo(comm: NativeComm): { backend: 'cpu' | 'nccl'; rank: number; worldSize: number };
  commTraffic(comm: NativeComm): TrafficStats | null;
  deviceAlloc(bytes: number, device: number): NativeDeviceBuffer;
  deviceFree(buffer: NativeDeviceBuffer): void;
  deviceCopyToDevice(dst: NativeDeviceBuffer, src: Float32Array): Promise<void>;
  deviceCopyToHost(dst: Float32Array, src: NativeDeviceBuffer): Promise<void>;
}

export function collectivesAddon(): CollectivesAddon {
  return loadAddon<CollectivesAddon>();
}
