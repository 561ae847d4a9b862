// AdamW hyperparameters of the distributed runtime: core's defaults (training-defaults.ts, GPT-3
// style: beta2 0.95, weight decay 0.1, clipping at global norm 1), the same object single-process
// training (train/optimizer.ts) uses, so both train the same model.
import { ADAMW_SETTINGS, type AdamWSettings } from '@mist/core';

export type AdamWHyper = AdamWSettings;

export const DEFAULT_ADAMW: Readonly<AdamWHyper> = ADAMW_SETTINGS;

/** The clipping factor min(1, maxNorm / (norm + 1e-6)) that the AdamW kernel takes as gradScale (as train/optimizer.ts). */
export function clipScale(globalNorm: number, maxGradNorm: number): number {
  if (!(maxGradNorm > 0) || !Number.isFinite(maxGradNorm)) return 1;
  return Math.min(1, maxGradNorm / (globalNorm + 1e-6));
}
