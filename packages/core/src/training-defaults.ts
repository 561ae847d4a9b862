// Training hyperparameters used when a job, a worker assignment or `mist train` leaves them out:
// defined once here and imported by the executor (single-process and distributed AdamW), the agent
// (a JobAssignment with no learning rate) and the coordinator.

/**
 * Peak AdamW learning rate. The executor's default since single-process training was written
 * (packages/executor/src/train/single-process.ts) for the tiny catalog models it trains on the CPU.
 */
export const DEFAULT_LEARNING_RATE = 3e-3;

export interface AdamWSettings {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Clip the gradient by its global L2 norm (Pascanu et al. 2013); 0 = no clipping. */
  maxGradNorm: number;
}

/**
 * GPT-3 style AdamW (Brown et al. 2020, appendix B.1: beta1 0.9, beta2 0.95, eps 1e-8, weight decay 0.1,
 * gradient clipping at global norm 1.0).
 */
export const ADAMW_SETTINGS: Readonly<AdamWSettings> = Object.freeze({ beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, maxGradNorm: 1 });
