// AdamW hyperparameters of the distributed runtime: single-process training's defaults
// (train/optimizer.ts, GPT-3 style: beta2 0.95, weight decay 0.1, clipping at global norm 1), so
// both train the same model.
import { ADAMW_DEFAULTS } from '../train';

export interface AdamWHyper {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Clip the gradient by its global L2 norm (Pascanu et al. 2013); 0 = no clipping. */
  maxGradNorm: number;
}

const { beta1, beta2, eps, weightDecay, maxGradNorm } = ADAMW_DEFAULTS;
export const DEFAULT_ADAMW: Readonly<AdamWHyper> = Object.freeze({ beta1, beta2, eps, weightDecay, maxGradNorm });

/** The clipping factor min(1, maxNorm / (norm + 1e-6)) that the AdamW kernel takes as gradScale (as train/optimizer.ts). */
export function clipScale(globalNorm: number, maxGradNorm: number): number {
  if (!(maxGradNorm > 0) || !Number.isFinite(maxGradNorm)) return 1;
  return Math.min(1, maxGradNorm / (globalNorm + 1e-6));
}
