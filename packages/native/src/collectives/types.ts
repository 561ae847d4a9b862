// Public types of the collectives API, shared by the CPU/TCP and the NCCL backend.
import type { CudaTensor } from '../cuda/tensor';
import type { DeviceBuffer } from './device-memory';

export type Backend = 'cpu' | 'nccl';
export type ReduceOp = 'sum' | 'avg' | 'max';

/** What `backends()` reports for one backend: the two collectives backends and the CUDA compute backend. */
export interface BackendInfo {
  name: Backend | 'cuda';
  available: boolean;
  /** Why the backend cannot be used (e.g. the dlopen error text), when `available` is false. */
  reason?: string;
  /** NCCL: the library that was opened, its version code (e.g. 22105) and the CUDA device count. */
  library?: string;
  version?: number;
  devices?: number;
  /** cuda: every GPU the driver sees, with its name, memory and compute capability. */
  gpus?: Array<{ name: string; memoryBytes: number; computeCapability: number }>;
}

/**
 * The data of a collective: host memory for `cpu`; device memory for `nccl`, either a DeviceBuffer
 * (float32) or a tensor of the CUDA compute backend (f32, bf16 or f16: NCCL moves that type).
 */
export type CommBuffer = Float32Array | DeviceBuffer | CudaTensor;

export interface CpuCommunicatorOptions {
  backend: 'cpu';
  rank: number;
  worldSize: number;
  /** `host:port` of every rank, indexed by rank (from each rank's `listenCpu().address`). */
  peers: readonly string[];
  /** This rank's listener from `listenCpu()`; without it the rank listens on `peers[rank]`. */
  listener?: CpuListener;
  /** A call fails when no data moved for this long (also bounds connection setup). Default 30 000. */
  timeoutMs?: number;
}

export interface NcclCommunicatorOptions {
  backend: 'nccl';
  rank: number;
  worldSize: number;
  /** The 128 bytes from `ncclGetUniqueId()` on one rank, passed to every rank. */
  uniqueId: Uint8Array;
  /** CUDA device index for this rank. Default 0. */
  device?: number;
  /** A call fails and the NCCL communicator is aborted after this long. Default 30 000. */
  timeoutMs?: number;
}

export type CommunicatorOptions = CpuCommunicatorOptions | NcclCommunicatorOptions;

/** A bound TCP listener of the CPU backend, created before the peers' addresses are known. */
export interface CpuListener {
  /** `host:port` to hand to the other ranks (via a coordinator). */
  readonly address: string;
  readonly host: string;
  readonly port: number;
  /** Closes the listener if no communicator took it. */
  close(): void;
}

export interface ListenCpuOptions {
  /** Interface to bind. Default '127.0.0.1'; use '0.0.0.0' (or a host's address) across hosts. */
  host?: string;
  /** Default 0: a free port. */
  port?: number;
  /** Host name or address the other ranks connect to. Default: `host`, or for a wildcard host
   * the first non-internal IPv4 address of this machine. */
  advertiseHost?: string;
}

/** One operation of `comm.group()`. */
export type GroupOp<B extends CommBuffer = CommBuffer> =
  | { kind: 'send'; buffer: B; peer: number }
  | { kind: 'recv'; buffer: B; peer: number }
  | { kind: 'allReduce'; buffer: B; op?: ReduceOp }
  | { kind: 'allGather'; input: B; output: B }
  | { kind: 'reduceScatter'; input: B; output: B; op?: ReduceOp }
  | { kind: 'broadcast'; buffer: B; root: number };

/** Collects the operations of a group; they run when the builder callback returns. */
export interface GroupBuilder<B extends CommBuffer = CommBuffer> {
  send(buffer: B, peer: number): void;
  recv(buffer: B, peer: number): void;
  allReduce(buffer: B, op?: ReduceOp): void;
  allGather(input: B, output: B): void;
  reduceScatter(input: B, output: B, op?: ReduceOp): void;
  broadcast(buffer: B, root: number): void;
}

export interface TrafficStats {
  bytesSent: number;
  bytesReceived: number;
}

/**
 * A group of ranks that run collectives together. Every call runs off the JavaScript thread, in
 * the order issued, and returns a Promise. Collectives must be issued in the same order on every
 * rank. After a failure (a dead peer, a timeout) every pending and later call rejects.
 */
export interface Communicator<B extends CommBuffer = CommBuffer> {
  readonly backend: Backend;
  readonly rank: number;
  readonly worldSize: number;
  /** In place: every rank ends with the element-wise sum / average / maximum. */
  allReduce(buffer: B, op?: ReduceOp): Promise<void>;
  /** `output` (worldSize x input.length) receives every rank's input, in rank order. */
  allGather(input: B, output: B): Promise<void>;
  /** `input` (worldSize x output.length) is reduced; rank r receives the r-th block. */
  reduceScatter(input: B, output: B, op?: ReduceOp): Promise<void>;
  /** In place: every rank receives `root`'s buffer. */
  broadcast(buffer: B, root: number): Promise<void>;
  send(buffer: B, peer: number): Promise<void>;
  recv(buffer: B, peer: number): Promise<void>;
  /**
   * Runs operations together, so matching send/recv pairs between ranks cannot deadlock whatever
   * their order (NCCL: one ncclGroupStart/End). Takes a list or a callback that adds them.
   */
  group(ops: readonly GroupOp<B>[] | ((group: GroupBuilder<B>) => void | Promise<void>)): Promise<void>;
  barrier(): Promise<void>;
  /**
   * Collective: ranks passing the same color form a new communicator, ranked by key (ties by
   * rank). A negative color takes part but gets null.
   */
  split(color: number, key: number): Promise<Communicator<B> | null>;
  /** Closes the communicator; a call still running or queued is rejected. */
  destroy(): Promise<void>;
  /** Bytes this rank put on / took off the wire (cpu); null for nccl, which does not count them. */
  trafficStats(): TrafficStats | null;
}
