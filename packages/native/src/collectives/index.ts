// Collectives with one API over two backends: NCCL (opened with dlopen) and CPU/TCP rings.
export { backends, createCommunicator, ncclGetUniqueId, DEFAULT_TIMEOUT_MS } from './create-communicator';
export { listenCpu } from './cpu-listener';
export { DeviceBuffer, deviceAlloc, deviceFree, copyToDevice, copyToHost } from './device-memory';
export type {
  Backend,
  BackendInfo,
  CommBuffer,
  Communicator,
  CommunicatorOptions,
  CpuCommunicatorOptions,
  CpuListener,
  GroupBuilder,
  GroupOp,
  ListenCpuOptions,
  NcclCommunicatorOptions,
  ReduceOp,
  TrafficStats,
} from './types';
