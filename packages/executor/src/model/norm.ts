// LayerNorm or RMSNorm, whichever the model uses, over rows of width `hidden`.
import type { KernelOps, TensorLike } from '@mist/native';
import type { ModelSpec } from '@mist/core';
import type { TensorClass } from '../device/device';
import { NORM_EPS } from './dims';
import type { ParamStore } from './params';

export interface NormSaved<F = Float32Array> {
  mean: F | null;
  rstd: F;
}

/** `alloc` makes the saved statistics (fp32; a module's scratch buffers). */
export function normForward<F extends TensorLike>(
  k: KernelOps<F, unknown>, model: ModelSpec, store: ParamStore<F>, prefix: string, y: F, x: F, rows: number,
  alloc: (n: number, cls: TensorClass) => F,
): NormSaved<F> {
  const h = model.hidden;
  const rstd = alloc(rows, 'fp32');
  if (model.norm === 'layernorm') {
    const mean = alloc(rows, 'fp32');
    k.layerNorm(y, mean, rstd, x, store.param(`${prefix}.gamma`), store.param(`${prefix}.beta`), rows, h, NORM_EPS);
    return { mean, rstd };
  }
  k.rmsNorm(y, rstd, x, store.param(`${prefix}.gamma`), rows, h, NORM_EPS);
  return { mean: null, rstd };
}

/** dx += norm'(x)^T dy (dx accumulates: it already holds the residual gradient). */
export function normBackwardAccumulate<F extends TensorLike>(
  k: KernelOps<F, unknown>, model: ModelSpec, store: ParamStore<F>, prefix: string, dx: F, dy: F, x: F, saved: NormSaved<F>, rows: number,
): void {
  const h = model.hidden;
  if (model.norm === 'layernorm') {
    if (!saved.mean) throw new Error('LayerNorm backward needs the saved mean');
    k.layerNormBackward(dx, store.grad(`${prefix}.gamma`), store.grad(`${prefix}.beta`), dy, x, store.param(`${prefix}.gamma`), saved.mean, saved.rstd, rows, h, true);
  } else {
    k.rmsNormBackward(dx, store.grad(`${prefix}.gamma`), dy, x, store.param(`${prefix}.gamma`), saved.rstd, rows, h, true);
  }
}
