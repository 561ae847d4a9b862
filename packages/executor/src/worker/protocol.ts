// The messages between an executor worker process and the process that started it (the agent, or
// a test/CLI launcher), over Node's child-process IPC channel. One worker = one rank = one device.
import type { ModelSpec, Plan, TrainingSpec } from '@mist/core';

export interface RunOptions {
  steps: number;
  seed: number;
  lr: number;
  /** `corpus` = the shipped byte-level text corpus; `synthetic` = a deterministic synthetic stream;
   * a token file (flat little-endian uint16/uint32 ids, train/token-file.ts) on the worker's host. */
  data: 'corpus' | 'synthetic' | { file: string; dtype: 'uint16' | 'uint32' };
  /** Directory of sharded checkpoints (omit to never save). */
  checkpointDir?: string;
  /** Save every N steps (0 = only at the end) when checkpointDir is set. */
  checkpointEvery?: number;
  /** Resume from the newest checkpoint in checkpointDir that this job wrote and that verifies (checkpoint/load.ts resumeCheckpoint). */
  resume?: boolean;
  /** With resume: accept a checkpoint the job saved under another plan (re-sharded on load); by default the plan fingerprint must match. */
  resumeAnyPlan?: boolean;
  /** Go on when a step's loss or gradient norm is not finite (default: the run fails at that step). Non-finite states are never checkpointed. */
  allowNonFiniteLoss?: boolean;
  /** Keep only the job's newest K checkpoints (0 or unset: keep all). */
  keepCheckpoints?: number;
  /** Report metrics every N steps (default 1). */
  metricsEvery?: number;
  /** Learning-rate schedule as single-process training's (train/optimizer.ts learningRate): linear
   * warm-up over warmupSteps (default 0), then cosine decay to 0.1 lr at scheduleSteps (default steps). */
  warmupSteps?: number;
  scheduleSteps?: number;
  /** Count the kernel time of every step (native kernel trace) and report it in the metrics. */
  traceKernels?: boolean;
  /** AdamW hyperparameters (defaults: runtime/hyper.ts DEFAULT_ADAMW). */
  adamw?: { beta1?: number; beta2?: number; eps?: number; weightDecay?: number; maxGradNorm?: number };
}

export type WorkerRendezvous =
  | { kind: 'cpu'; peers: string[] }
  | { kind: 'nccl'; uniqueId?: number[]; rootAddress?: string };

export interface WorkerAssignment {
  jobId: string;
  attempt: number;
  rank: number;
  worldSize: number;
  plan: Plan;
  model: ModelSpec;
  training: TrainingSpec;
  run: RunOptions;
  backend: 'cpu' | 'nccl';
  rendezvous: WorkerRendezvous;
  /** Device ordinal on this host (CUDA device for NCCL; a label for CPU devices). */
  deviceIndex: number;
  /** Collective timeout (default 30 s). */
  timeoutMs?: number;
}

export type ParentToWorker =
  | { type: 'start'; assignment: WorkerAssignment }
  | { type: 'stop'; reason: string }
  /** Answer to the 'ready' addresses when the assignment's cpu rendezvous had no peers (local launch). */
  | { type: 'peers'; peers: string[] };

export interface StepMetrics {
  step: number;
  /** Loss of the step (reported by last-stage ranks; null on other stages). */
  loss: number | null;
  stepTimeS: number;
  tokensPerS: number;
  /** Seconds spent computing vs. waiting on communication during the step. */
  computeS: number;
  waitS: number;
  /** Wall-clock seconds of the step's phases: all forward passes, all backward passes (with
   * recompute), and the end: gradient sync, global norm and optimizer step. */
  phases?: { forward: number; backward: number; optimizer: number };
  /** With RunOptions.traceKernels: seconds the step's kernels ran and how many ran (the rest of
   * the compute time is the executor's host overhead). */
  kernels?: { seconds: number; calls: number };
  /** Peak bytes of each memory pool measured by the executor's allocator. */
  peakBytes: Record<string, number>;
  /** Bytes copied to and from the host pools (offload) during the step. */
  offloadBytes?: { toHost: number; toDevice: number };
  /** Global L2 norm of the gradient before clipping. */
  gradNorm?: number;
  /** fp16: the loss scale of the step, and whether its gradients overflowed (the update was skipped; gradNorm is then not finite). */
  lossScale?: number;
  skipped?: boolean;
}

export type WorkerToParent =
  /** `address`: this rank's CPU listener, when the parent gathers the peers (empty cpu peers list). */
  | { type: 'ready'; rank: number; pid: number; address?: string }
  | { type: 'metrics'; rank: number; metrics: StepMetrics }
  | { type: 'log'; rank: number; level: 'info' | 'warn' | 'error'; text: string }
  | { type: 'checkpoint'; rank: number; step: number; dir: string }
  /** The rank verified and loaded this checkpoint; training continues at step + 1 (every rank agrees on it). */
  | { type: 'resumed'; rank: number; step: number; dir: string }
  | { type: 'done'; rank: number; steps: number; finalLoss: number | null }
  | { type: 'failed'; rank: number; error: string };
