// Dynamic loss scaling for fp16 training (Micikevicius et al. 2018, "Mixed Precision Training",
// Sec. 3.2): the loss gradient is multiplied by a scale S so that small gradients survive fp16's
// range, the optimizer divides it out; a step whose gradients overflowed (non-finite norm) is skipped
// and S halves; after `growthInterval` clean steps S doubles. Defaults are PyTorch's GradScaler
// (torch.cuda.amp: init_scale 2^16, growth_factor 2, backoff_factor 0.5, growth_interval 2000).
export interface LossScalerOptions {
  initialScale: number;
  growthFactor: number;
  backoffFactor: number;
  growthInterval: number;
}

export const LOSS_SCALER_DEFAULTS: Readonly<LossScalerOptions> = Object.freeze({
  initialScale: 2 ** 16, growthFactor: 2, backoffFactor: 0.5, growthInterval: 2000,
});

export class LossScaler {
  private current: number;
  private clean = 0;
  /** Steps skipped because their gradients overflowed. */
  skipped = 0;

  constructor(private readonly o: LossScalerOptions = LOSS_SCALER_DEFAULTS) {
    this.current = o.initialScale;
  }

  get scale(): number {
    return this.current;
  }

  /** After a step: `finite` false when its gradients overflowed (the optimizer skipped it). */
  update(finite: boolean): void {
    if (!finite) {
      this.current *= this.o.backoffFactor;
      this.clean = 0;
      this.skipped++;
      return;
    }
    if (++this.clean >= this.o.growthInterval) {
      this.current *= this.o.growthFactor;
      this.clean = 0;
    }
  }
}
