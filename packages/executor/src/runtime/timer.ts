// Splits a rank's step time into compute and waiting on communication: every awaited collective
// goes through wait(), everything else between start() and stop() counts as compute.
export class StepTimer {
  private t0 = 0;
  private waitNs = 0n;

  start(): void {
    this.t0 = performance.now();
    this.waitNs = 0n;
  }

  async wait<T>(p: Promise<T>): Promise<T> {
    const s = process.hrtime.bigint();
    try {
      return await p;
    } finally {
      this.waitNs += process.hrtime.bigint() - s;
    }
  }

  /** Seconds since start(): total, waiting, and the rest (compute). */
  stop(): { stepTimeS: number; waitS: number; computeS: number } {
    const stepTimeS = (performance.now() - this.t0) / 1000;
    const waitS = Number(this.waitNs) / 1e9;
    return { stepTimeS, waitS, computeS: Math.max(0, stepTimeS - waitS) };
  }
}
