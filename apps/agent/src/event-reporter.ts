// Sends the workers' events to the coordinator in batches (ReportWorkerEvents). Events wait while
// the coordinator is unreachable and go out after the reconnection; past `limit` the oldest
// metrics and log lines are dropped first (exits and starts are what the coordinator must see).
import type { WorkerEvent } from '@mist/rpc';

export class EventReporter {
  private queue: WorkerEvent[] = [];
  private timer: NodeJS.Timeout | null = null;
  private sending: Promise<void> | null = null;

  constructor(
    private readonly send: (events: WorkerEvent[]) => Promise<void>,
    /** Seconds events may wait to be batched (exits and starts go at once). */
    private readonly batchS = 0.1,
    private readonly limit = 20_000,
  ) {}

  push(event: WorkerEvent): void {
    this.queue.push(event);
    if (this.queue.length > this.limit) {
      const i = this.queue.findIndex((e) => e.log !== undefined || e.metrics !== undefined);
      this.queue.splice(i >= 0 ? i : 0, 1);
    }
    const urgent = event.exited !== undefined || event.started !== undefined;
    this.schedule(urgent ? 0 : this.batchS);
  }

  private schedule(delayS: number): void {
    if (this.timer) {
      if (delayS > 0) return;
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, delayS * 1000);
  }

  /** Sends what is queued; on failure keeps it for the next try (after `retryS`). */
  flush(retryS = 0.5): Promise<void> {
    if (this.sending) return this.sending;
    if (this.queue.length === 0) return Promise.resolve();
    const batch = this.queue.splice(0, 500);
    this.sending = this.send(batch)
      .then(() => {
        this.sending = null;
        if (this.queue.length > 0) this.schedule(0);
      }, () => {
        this.queue.unshift(...batch);
        this.sending = null;
        this.schedule(retryS);
      });
    return this.sending;
  }

  get pending(): number {
    return this.queue.length;
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
