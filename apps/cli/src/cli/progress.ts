// A progress bar on stderr: redrawn in place on a terminal, one line per ~10% otherwise, so logs
// stay readable. stdout is never touched (it carries the result, or JSON).
import type { CliIo } from './command';

export class ProgressBar {
  private lastPrinted = -1;
  private startedAt = Date.now();

  constructor(
    private readonly io: CliIo,
    private readonly label: string,
    private readonly total: number,
  ) {}

  update(done: number, detail = ''): void {
    const frac = this.total > 0 ? Math.min(1, done / this.total) : 1;
    const elapsed = (Date.now() - this.startedAt) / 1000;
    if (this.io.isTTY) {
      const width = 24;
      const filled = Math.round(frac * width);
      const bar = '#'.repeat(filled) + '.'.repeat(width - filled);
      this.io.stderr(`\r${this.label} [${bar}] ${done}/${this.total} ${elapsed.toFixed(1)}s ${detail}\x1b[K`);
      return;
    }
    const decile = Math.floor(frac * 10);
    if (decile > this.lastPrinted) {
      this.lastPrinted = decile;
      this.io.stderr(`${this.label} ${done}/${this.total} (${Math.round(frac * 100)}%) ${elapsed.toFixed(1)}s ${detail}\n`);
    }
  }

  done(detail = ''): void {
    this.update(this.total, detail);
    if (this.io.isTTY) this.io.stderr('\n');
  }
}
