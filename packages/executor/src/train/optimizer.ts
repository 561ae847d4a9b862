// AdamW over a stage's flat parameters with global-norm gradient clipping. Matrices (and the
// token table) are decayed; norms, biases and the position table are not (the usual GPT recipe).
// Moments live in two flat tensors with the same layout as the parameters, on the parameters' device.
import { ADAMW_SETTINGS, DEFAULT_LEARNING_RATE } from '@mist/core';
import type { TensorLike } from '@mist/native';
import { cpuDevice } from '../device/cpu-device';
import type { Device } from '../device/device';
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

/**
 * With mixed precision `params` and `grads` are the compute-dtype tensors the model uses and
 * `master` the fp32 master weights AdamW updates (it then writes the rounded copy into `params`);
 * with fp32 compute the parameters are their own master.
 */
export class AdamW<F extends TensorLike = Float32Array> {
  readonly m: F;
  readonly v: F;
  readonly master: F;
  private stepCount = 0;
  private readonly runs: Array<{ offset: number; size: number; decay: boolean }>;

  constructor(
    private readonly params: F, private readonly grads: F, entries: readonly ParamEntry[], private readonly opts: AdamWOptions,
    private readonly device: Device<F, unknown> = cpuDevice as unknown as Device<F, unknown>, master?: F,
  ) {
    if (!master && device.computeDtype !== 'fp32') throw new Error(`AdamW with ${device.computeDtype} compute needs fp32 master weights`);
    this.master = master ?? params;
    this.m = device.zeros(params.length, 'fp32');
    this.v = device.zeros(params.length, 'fp32');
    this.runs = decayRuns(entries);
  }

  get step(): number {
    return this.stepCount;
  }

  /** Global L2 norm of the gradients (as stored: loss-scaled when a loss scale is in use). */
  async gradNorm(): Promise<number> {
    const out = this.device.zeros(1, 'fp32');
    const k = this.device.batch();
    k.sumSquares(out, this.grads);
    await k.run();
    return Math.sqrt(this.device.read(out)[0]);
  }

  /** Clips and applies one update at learning rate `lr`; returns the gradient norm before clipping. */
  async update(lr = this.opts.lr): Promise<number> {
    const norm = await this.tryUpdate(lr);
    if (norm === null) throw new Error('the gradient norm is not finite; the step is skipped and training should stop');
    return norm;
  }

  /**
   * One update from gradients stored multiplied by 1 / unscale (dynamic loss scaling): returns the
   * true gradient norm, or null, having changed nothing, when it is not finite (an fp16 overflow).
   */
  async tryUpdate(lr = this.opts.lr, unscale = 1): Promise<number | null> {
    const norm = (await this.gradNorm()) * unscale;
    if (!Number.isFinite(norm)) return null;
    const clip = unscale * (this.opts.maxGradNorm > 0 && Number.isFinite(this.opts.maxGradNorm) ? Math.min(1, this.opts.maxGradNorm / (norm + 1e-6)) : 1);
    this.stepCount++;
    const k = this.device.batch();
    for (const r of this.runs) {
      const s = (a: F): F => this.device.view(a, r.offset, r.offset + r.size);
      k.adamw({
        param: s(this.master), grad: s(this.grads), m: s(this.m), v: s(this.v), step: this.stepCount, lr,
        beta1: this.opts.beta1, beta2: this.opts.beta2, eps: this.opts.eps, weightDecay: r.decay ? this.opts.weightDecay : 0, gradScale: clip,
        ...(this.master !== this.params ? { copy: s(this.params) } : {}),
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
