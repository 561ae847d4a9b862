// Messages between the profiler and its collective worker processes (IPC of child_process.fork).
import type { CollectiveKind } from '@mist/core';
import type { MatmulShape } from './grids';

export type WorkerRequest =
  | { cmd: 'listen' }
  | { cmd: 'connect'; rank: number; worldSize: number; peers: string[]; threads: number }
  | { cmd: 'collective'; kind: CollectiveKind; bytes: number; warmup: number; repeats: number }
  | { cmd: 'computeAlone'; shape: MatmulShape; count: number; warmup: number; repeats: number }
  | { cmd: 'computeBeside'; shape: MatmulShape; count: number; repeats: number; commBytes: number; commCount: number }
  /**
   * Messages to a waiting receiver, ranks 0 and 1 taking turns: the sender computes for `busyMs`
   * while the receiver blocks in recv, then sends `bytes`; the receiver then runs `after.batches`
   * kernel batches of `after.count` matmuls, as a pipeline stage computes on what it received.
   * Replies a WakeRound per round.
   */
  | { cmd: 'p2pAfterWait'; bytes: number; busyMs: number; rounds: number; after: { shape: MatmulShape; count: number; batches: number } };

export interface ConnectResult {
  /** Resident memory of the worker once the native addon is loaded (before any communicator). */
  baseRssBytes: number;
  /** Resident memory the communicator added (connections and their buffers), after one small all-reduce. */
  commRssBytes: number;
}

export interface BesideResult {
  /** Seconds per compute sample that ran entirely while the collectives were running. */
  samples: number[];
}

/** One round of p2pAfterWait on one rank; times are process.hrtime in ns as strings (one clock for all processes). */
export interface WakeRound {
  /** The sender: when it sent. */
  sent?: string;
  /** The receiver: when the message arrived, and when its compute after it was done. */
  arrived?: string;
  done?: string;
  /** Every rank: the same compute run back to back, without a wait before it, seconds. */
  hotSeconds?: number;
}

export type WorkerReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };

export type WorkerMessage = WorkerReply | { ready: true };
