// AdamW over a stage's flat parameters with global-norm gradient clipping. Matrices (and the
// token table) are decayed; norms, biases and the position table are not (the usual GPT recipe).
// Moments live in two flat arrays with the same layout as the parameters.
import { ADAMW_SETTINGS, DEFAULT_LEARNING_RATE } from '@mist/core';
import { type KernelOps, KernelBatch } from '@mist/native';
import type { ParamEntry } from '../model/params';

export interface AdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Clip the global gradient norm to this (0 or Infinity: no clipping). */
  maxGradNorm: number;
}

/** Core's defaults (training-defaults.ts), the same for single-process and distributed training. */
export const ADAMW_DEFAULTS: Readonly<AdamWOptions> = Object.freeze({ lr: DEFAULT_LEARNING_RATE, ...ADAMW_SETTINGS });

/** Contiguous runs of entries with the same decay flag, so AdamW runs once per run. */
function decayRuns(entries: readonly ParamEntry[]): Array<{ offset: number; size: number; decay: boolean }> {
  const runs: Array<{ offset: number; size: number; decay: boolean }> = [];
  for (const e of entries) {
    const last = runs[runs.length - 1];
    if (last && last.decay === e.weightDecay && last.offset + last.size === e.offset) last.size += e.size;
    else runs.push({ offset: e.offset, size: e.size, decay: e.weightDecay });
  }
  return runs;
}

export class AdamW {
  readonly m: Float32Array;
  readonly v: Float32Array;
  private stepCount = 0;
  private readonly runs: Array<{ offset: number; size: number; decay: boolean }>;

  constructor(private readonly params: Float32Array, private readonly grads: Float32Array, entries: readonly ParamEntry[], private readonly opts: AdamWOptions) {
    this.m = new Float32Array(params.length);
    this.v = new Float32Array(params.length);
    this.runs = decayRuns(entries);
  }

  get step(): number {
    return this.stepCount;
  }

  /** Global L2 norm of the gradients. */
  async gradNorm(): Promise<number> {
    const out = new Float32Array(1);
    const k = new KernelBatch();
    k.sumSquares(out, this.grads);
    await k.run();
    return Math.sqrt(out[0]);
  }

  /** Clips and applies one update at learning rate `lr`; returns the gradient norm before clipping. */
  async update(lr = this.opts.lr): Promise<number> {
    const norm = await this.gradNorm();
    if (!Number.isFinite(norm)) throw new Error(`gradient norm is ${norm}; the step is skipped and training should stop`);
    const clip = this.opts.maxGradNorm > 0 && Number.isFinite(this.opts.maxGradNorm) ? Math.min(1, this.opts.maxGradNorm / (norm + 1e-6)) : 1;
    this.stepCount++;
    const k: KernelOps & { run(): Promise<void> } = new KernelBatch();
    for (const r of this.runs) {
      const s = (a: Float32Array): Float32Array => a.subarray(r.offset, r.offset + r.size);
      k.adamw({
        param: s(this.params), grad: s(this.grads), m: s(this.m), v: s(this.v), step: this.stepCount, lr,
        beta1: this.opts.beta1, beta2: this.opts.beta2, eps: this.opts.eps, weightDecay: r.decay ? this.opts.weightDecay : 0, gradScale: clip,
      });
    }
    await k.run();
    return norm;
  }
}

/** Linear warm-up, then cosine decay to minRatio * lr at the last step (Loshchilov & Hutter 2017). */
export function learningRate(step: number, totalSteps: number, lr: number, warmup: number, minRatio = 0.1): number {
  if (warmup > 0 && step <= warmup) return (lr * step) / warmup;
  const span = Math.max(1, totalSteps - warmup);
  const t = Math.min(1, (step - warmup) / span);
  return lr * (minRatio + (1 - minRatio) * 0.5 * (1 + Math.cos(Math.PI * t)));
}
