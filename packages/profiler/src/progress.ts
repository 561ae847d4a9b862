// Progress of a profile run: every measured point is one step of a total known in advance.

export interface ProfileProgress {
  done: number;
  total: number;
  /** What was just measured, e.g. `matmul 256x1024x1024`. */
  step: string;
}

export type ProgressFn = (p: ProfileProgress) => void;

export class ProgressCounter {
  private done = 0;

  constructor(readonly total: number, private readonly onProgress?: ProgressFn) {}

  tick(step: string): void {
    this.done = Math.min(this.total, this.done + 1);
    this.onProgress?.({ done: this.done, total: this.total, step });
  }
}
