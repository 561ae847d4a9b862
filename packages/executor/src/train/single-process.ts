// Single-process training of a whole model on one device (the CPU kernels, or one GPU): one Stage
// holding every layer, the embedding and the head; AdamW with global-norm clipping; gradient
// accumulation when the global batch is split into micro-batches. Deterministic for a given seed
// on the CPU (the kernels' results do not depend on the thread count).
import { type ModelSpec, getModel } from '@mist/core';
import type { TensorLike } from '@mist/native';
import { cpuDevice } from '../device/cpu-device';
import { cudaDevice } from '../device/cuda-device';
import type { ComputeDtype, Device } from '../device/device';
import { Stage } from '../model/stage';
import { type DataSource, makeSampler } from './data';
import { LossScaler } from './loss-scaler';
import { ADAMW_DEFAULTS, AdamW, learningRate } from './optimizer';

export interface TrainOptions {
  /** Catalog name (e.g. 'gpt-tiny') or a ModelSpec. */
  model: string | ModelSpec;
  steps: number;
  seed: number;
  /** Peak learning rate. */
  lr: number;
  /** Sequences per optimizer step. */
  globalBatch: number;
  /** Tokens per sequence (at most the model's maxSeq with learned positions). */
  seq: number;
  /** Sequences per forward/backward; must divide globalBatch (default: globalBatch). */
  microBatch?: number;
  data: DataSource;
  warmupSteps: number;
  weightDecay: number;
  maxGradNorm: number;
  /** Layers that recompute activations in backward (activation checkpointing). */
  ckptLayers: number;
  /** Where to train: the CPU kernels (default) or the first visible GPU. */
  device?: 'cpu' | 'cuda';
  /**
   * Storage of activations, parameters' compute copies and gradients (default fp32): bf16 or fp16 on
   * the GPU, with fp32 master weights and moments in the optimizer, and dynamic loss scaling for fp16.
   * The CPU kernels compute in fp32 only.
   */
  computeDtype?: ComputeDtype;
}

export const TRAIN_DEFAULTS: Omit<TrainOptions, 'model'> = {
  steps: 200,
  seed: 1234,
  lr: ADAMW_DEFAULTS.lr,
  globalBatch: 16,
  seq: 64,
  data: 'corpus',
  warmupSteps: 10,
  weightDecay: ADAMW_DEFAULTS.weightDecay,
  maxGradNorm: ADAMW_DEFAULTS.maxGradNorm,
  ckptLayers: 0,
};

export interface StepReport {
  step: number;
  /** Mean next-token loss of this step's global batch, nats. */
  loss: number;
  /** Tokens of this step divided by its wall time. */
  tokensPerS: number;
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Seconds this step took. */
  seconds: number;
  /** fp16: the loss scale this step used, and whether its gradients overflowed (the update was skipped). */
  lossScale?: number;
  skipped?: boolean;
}

export interface TrainResult {
  model: string;
  data: DataSource;
  steps: StepReport[];
  /** ln(vocab): the loss of a uniform guess. */
  uniformLoss: number;
  /** Entropy rate of the synthetic source (the best reachable loss), null for the corpus. */
  dataEntropy: number | null;
  /** Mean tokens/s over all steps (total tokens / total step time). */
  tokensPerS: number;
  /** The trained parameters (flat, the stage's layout; copied to the host from a GPU). */
  params: Float32Array;
  /** The device it trained on, and the storage of its activations and gradients. */
  device: 'cpu' | 'cuda';
  computeDtype: ComputeDtype;
  /**
   * GPU: the caching allocator's peak bytes over the run: live tensors beyond those live when it
   * started (peakAllocated), and segments held (peakReserved); null on the CPU.
   */
  memory: { peakAllocated: number; peakReserved: number } | null;
}

export type StepCallback = (report: StepReport) => void | Promise<void>;

function checkOptions(o: TrainOptions, model: ModelSpec): number {
  const int = (v: number, name: string, min = 1): void => {
    if (!Number.isInteger(v) || v < min) throw new Error(`${name} must be an integer >= ${min}, got ${v}`);
  };
  int(o.steps, 'steps');
  int(o.globalBatch, 'globalBatch');
  int(o.seq, 'seq');
  int(o.warmupSteps, 'warmupSteps', 0);
  int(o.ckptLayers, 'ckptLayers', 0);
  if (!(o.lr > 0)) throw new Error(`lr must be positive, got ${o.lr}`);
  if (model.positional === 'learned' && o.seq > model.maxSeq) throw new Error(`seq ${o.seq} exceeds ${model.name}'s ${model.maxSeq} positions`);
  const micro = o.microBatch ?? o.globalBatch;
  int(micro, 'microBatch');
  if (o.globalBatch % micro !== 0) throw new Error(`microBatch ${micro} must divide globalBatch ${o.globalBatch}`);
  return micro;
}

/**
 * Trains `opts.model` for `opts.steps` optimizer steps and calls `onStep` after each one (awaited,
 * so a caller can print or stop in between). Missing options take TRAIN_DEFAULTS.
 */
export async function trainSingleProcess(options: Partial<TrainOptions> & Pick<TrainOptions, 'model'>, onStep?: StepCallback): Promise<TrainResult> {
  const opts: TrainOptions = { ...TRAIN_DEFAULTS, ...options };
  const model = typeof opts.model === 'string' ? getModel(opts.model) : opts.model;
  const micro = checkOptions(opts, model);
  const kind = opts.device ?? 'cpu';
  const dtype = opts.computeDtype ?? 'fp32';
  if (kind === 'cuda') return train(cudaDevice(dtype), opts, model, micro, onStep);
  if (kind !== 'cpu') throw new Error(`device must be cpu or cuda, got '${String(kind)}'`);
  if (dtype !== 'fp32') throw new Error(`computeDtype ${dtype} needs the GPU (device cuda): the CPU kernels compute in fp32`);
  return train(cpuDevice, opts, model, micro, onStep);
}

async function train<F extends TensorLike, I>(
  device: Device<F, I>, opts: TrainOptions, model: ModelSpec, micro: number, onStep?: StepCallback,
): Promise<TrainResult> {
  const accum = opts.globalBatch / micro;
  device.resetPeaks();
  const liveAtStart = device.memory()?.allocated ?? 0;
  const stage = new Stage<F, I>({ model, seed: opts.seed, ckptLayers: Math.min(opts.ckptLayers, model.layers), device });
  // Mixed precision: fp32 master weights from the same initial values the compute copy was rounded from.
  const master = device.computeDtype === 'fp32' ? undefined : device.upload(concatUnits(stage.units.map((u) => stage.initialValues(u))), 'fp32');
  const optimizer = new AdamW<F>(stage.params, stage.grads, stage.paramEntries, {
    ...ADAMW_DEFAULTS, lr: opts.lr, weightDecay: opts.weightDecay, maxGradNorm: opts.maxGradNorm,
  }, device, master);
  const scaler = device.computeDtype === 'fp16' ? new LossScaler() : null;
  const sampler = makeSampler(opts.data, model.vocab, opts.seed);
  const tokensPerStep = opts.globalBatch * opts.seq;
  const reports: StepReport[] = [];
  let totalSeconds = 0;
  for (let step = 1; step <= opts.steps; step++) {
    const t0 = process.hrtime.bigint();
    stage.zeroGrads();
    let lossSum = 0, lossTokens = 0;
    for (let a = 0; a < accum; a++) {
      const b = sampler.next(micro, opts.seq);
      // gradScale makes the accumulated gradient that of the mean over the whole global batch.
      const f = await stage.forward(b, { train: true, gradScale: (scaler ? scaler.scale : 1) / tokensPerStep, dropout: { step, firstSample: a * micro } });
      lossSum += f.lossSum;
      lossTokens += f.lossTokens;
      await stage.backward(f.context as NonNullable<typeof f.context>);
    }
    const lr = learningRate(step, opts.steps, opts.lr, opts.warmupSteps);
    let gradNorm: number;
    let skipped = false;
    const lossScale = scaler ? scaler.scale : 1;
    if (scaler) {
      const norm = await optimizer.tryUpdate(lr, 1 / lossScale);
      skipped = norm === null;
      scaler.update(!skipped);
      gradNorm = norm ?? Number.NaN;
    } else {
      gradNorm = await optimizer.update(lr);
    }
    device.synchronize();
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    totalSeconds += seconds;
    const report: StepReport = {
      step, loss: lossSum / lossTokens, tokensPerS: tokensPerStep / seconds, lr, gradNorm, seconds,
      ...(scaler ? { lossScale, skipped } : {}),
    };
    reports.push(report);
    if (onStep) await onStep(report);
  }
  return {
    model: model.name,
    data: opts.data,
    steps: reports,
    uniformLoss: Math.log(model.vocab),
    dataEntropy: sampler.entropy,
    tokensPerS: (tokensPerStep * opts.steps) / totalSeconds,
    params: device.read(optimizer.master),
    device: device.kind,
    computeDtype: device.computeDtype,
    memory: memoryOf(device, liveAtStart),
  };
}

function memoryOf<F extends TensorLike, I>(device: Device<F, I>, liveAtStart: number): TrainResult['memory'] {
  const m = device.memory();
  return m ? { peakAllocated: m.peakAllocated - liveAtStart, peakReserved: m.peakReserved } : null;
}

/** The stage's units' initial values as one flat host vector (the parameters' layout). */
function concatUnits(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
