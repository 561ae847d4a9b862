// Entry points: which backends this machine has, and communicator creation for either backend.
import { DeviceBuffer } from './device-memory';
import { listenCpu, nativeListener, parseAddress } from './cpu-listener';
import { cudaAddon } from '../cuda/addon-cuda';
import type { CudaTensor } from '../cuda/tensor';
import { collectivesAddon } from './native-addon';
import { NativeCommunicator } from './native-communicator';
import type {
  BackendInfo,
  Communicator,
  CommunicatorOptions,
  CpuCommunicatorOptions,
  NcclCommunicatorOptions,
} from './types';

export const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * E.g. `[{name:'cpu', available:true}, {name:'nccl', available:false, reason:'libnccl.so.2: ...'},
 * {name:'cuda', available:true, library:'libcuda.so.1', version:13000, devices:1, gpus:[{name:'NVIDIA H200', ...}]}]`.
 */
export function backends(): BackendInfo[] {
  return [...collectivesAddon().collectivesBackends(), cudaBackendInfo()];
}

function cudaBackendInfo(): BackendInfo {
  const probe = cudaAddon().cudaProbe();
  const info: BackendInfo = { name: 'cuda', available: probe.available };
  if (probe.reason !== undefined) info.reason = probe.reason;
  if (probe.library !== undefined) info.library = probe.library;
  if (probe.driverVersion !== undefined) info.version = probe.driverVersion;
  if (probe.devices.length > 0) {
    info.devices = probe.devices.length;
    info.gpus = probe.devices.map((d) => ({ name: d.name, memoryBytes: d.memoryBytes, computeCapability: d.computeCapability }));
  }
  return info;
}

/** A fresh NCCL unique id (128 bytes), made on one rank and sent to all (throws without NCCL). */
export function ncclGetUniqueId(): Uint8Array {
  return collectivesAddon().ncclGetUniqueId();
}

/** Connects this rank to the others; resolves once every connection (or the NCCL comm) is up. */
export function createCommunicator(options: CpuCommunicatorOptions): Promise<Communicator<Float32Array>>;
export function createCommunicator(options: NcclCommunicatorOptions): Promise<Communicator<DeviceBuffer | CudaTensor>>;
export function createCommunicator(options: CommunicatorOptions): Promise<Communicator>;
export async function createCommunicator(options: CommunicatorOptions): Promise<Communicator> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const addon = collectivesAddon();
  if (options.backend === 'cpu') {
    const peers = [...options.peers];
    if (peers.length !== options.worldSize) {
      throw new RangeError(`createCommunicator: peers has ${peers.length} entries but worldSize is ${options.worldSize}`);
    }
    const own = peers[options.rank];
    if (own === undefined) throw new RangeError(`createCommunicator: rank ${options.rank} is outside [0, ${options.worldSize})`);
    const listener = options.listener ?? (await listenCpu(parseAddress(own)));
    const handle = await addon.cpuCommCreate(nativeListener(listener), options.rank, options.worldSize, peers, timeoutMs);
    return new NativeCommunicator<Float32Array>(handle);
  }
  if (options.backend === 'nccl') {
    const handle = await addon.ncclCommCreate(options.uniqueId, options.rank, options.worldSize, options.device ?? 0, timeoutMs);
    return new NativeCommunicator<DeviceBuffer | CudaTensor>(handle);
  }
  throw new TypeError(`createCommunicator: unknown backend '${(options as { backend: unknown }).backend}'`);
}
