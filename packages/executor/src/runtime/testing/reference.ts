// Test helper: the single-process run (`mist train`'s trainSingleProcess) whose losses and final
// weights every distributed run must reproduce, with its weights by tensor name.
import type { ModelSpec } from '@mist/core';
import { Stage } from '../../model';
import { learningRate, trainSingleProcess, type DataSource } from '../../train';

export interface ReferenceOptions {
  model: ModelSpec;
  seed: number;
  lr: number;
  steps: number;
  globalBatch: number;
  seq: number;
  data: DataSource;
  warmupSteps: number;
}

export interface ReferenceResult {
  losses: number[];
  weights: Map<string, Float32Array>;
}

export async function referenceTrain(o: ReferenceOptions): Promise<ReferenceResult> {
  const r = await trainSingleProcess({ ...o, model: o.model });
  const layout = new Stage({ model: o.model, seed: o.seed });
  const weights = new Map<string, Float32Array>();
  for (const e of layout.paramEntries) weights.set(e.name, r.params.slice(e.offset, e.offset + e.size));
  return { losses: r.steps.map((s) => s.loss), weights };
}

/** The same schedule for the distributed runs. */
export function scheduleOf(o: ReferenceOptions): (step: number) => number {
  return (step) => learningRate(step, o.steps, o.lr, o.warmupSteps);
}

/**
 * ||a - b|| / ||b|| over a tensor, how the equivalence tests compare weights. Not the largest element
 * difference: Adam divides each gradient by its own running RMS, so an element whose true gradient is
 * ~0 turns rounding noise into a step of ~lr; even the reference itself, split into 4 micro-batches
 * instead of 1, moves single elements by 3e-4 of the tensor's largest value after 5 steps.
 */
export function relL2(a: Float32Array, b: Float32Array): number {
  let d = 0, n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i] - b[i]) ** 2;
    n += b[i] ** 2;
  }
  return Math.sqrt(d / Math.max(n, 1e-30));
}
