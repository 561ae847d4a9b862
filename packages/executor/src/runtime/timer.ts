// Splits a rank's step time into compute and waiting on communication: every awaited collective
// goes through wait(), everything else between start() and stop() counts as compute. Phases
// (forward, backward, the end-of-step gradient sync and optimizer) are wall-clock spans measured
// with phase(); they include the waits inside them.
export type StepPhase = 'forward' | 'backward' | 'optimizer';

export class StepTimer {
  private t0 = 0;
  private waitNs = 0n;
  private readonly phaseNs: Record<StepPhase, bigint> = { forward: 0n, backward: 0n, optimizer: 0n };

  start(): void {
    this.t0 = performance.now();
    this.waitNs = 0n;
    this.phaseNs.forward = this.phaseNs.backward = this.phaseNs.optimizer = 0n;
  }

  async wait<T>(p: Promise<T>): Promise<T> {
    const s = process.hrtime.bigint();
    try {
      return await p;
    } finally {
      this.waitNs += process.hrtime.bigint() - s;
    }
  }

  async phase<T>(name: StepPhase, run: () => Promise<T>): Promise<T> {
    const s = process.hrtime.bigint();
    try {
      return await run();
    } finally {
      this.phaseNs[name] += process.hrtime.bigint() - s;
    }
  }

  /** Seconds since start(): total, waiting, the rest (compute), and each phase's span. */
  stop(): { stepTimeS: number; waitS: number; computeS: number; phases: Record<StepPhase, number> } {
    const stepTimeS = (performance.now() - this.t0) / 1000;
    const waitS = Number(this.waitNs) / 1e9;
    const p = this.phaseNs;
    const phases = { forward: Number(p.forward) / 1e9, backward: Number(p.backward) / 1e9, optimizer: Number(p.optimizer) / 1e9 };
    return { stepTimeS, waitS, computeS: Math.max(0, stepTimeS - waitS), phases };
  }
}
