// Sends the workers' events to the coordinator in batches (ReportWorkerEvents). Events wait while
// the coordinator is unreachable and go out after the reconnection; past `limit` the oldest
// metrics and log lines are dropped first (exits and starts are what the coordinator must see).
//
// A batch is bounded by count and by bytes, so it always stays far below gRPC's 4 MiB default
// receive limit (grpc-js GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH = 4 * 1024 * 1024); log lines are
// cut to `maxLineBytes` before they are queued. A batch the coordinator refuses for good (too
// large, invalid) is split to find the event at fault, which is dropped with a note: it is never
// retried, so it cannot hold back the events behind it (exits of other workers, other jobs).
import { isRpcError, status, type WorkerEvent } from '@mist/rpc';

export interface EventReporterOptions {
  /** Seconds events may wait to be batched (exits and starts go at once). */
  batchS?: number;
  /** Events kept while the coordinator is unreachable. */
  limit?: number;
  /** Events per ReportWorkerEvents call. */
  maxBatchEvents?: number;
  /** Estimated encoded bytes per ReportWorkerEvents call. */
  maxBatchBytes?: number;
  /** Longest log line forwarded (UTF-8 bytes); longer lines are cut with `[... N bytes cut]`. */
  maxLineBytes?: number;
  /** Seconds between retries after a transient failure. */
  retryS?: number;
  /** Told about events dropped because the coordinator refused them for good. */
  onDropped?: (event: WorkerEvent, reason: string) => void;
}

export const DEFAULT_MAX_BATCH_BYTES = 1024 * 1024;
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024;

/** Status codes that say the same request will fail again: retrying cannot help. */
const PERMANENT: ReadonlySet<number> = new Set([status.RESOURCE_EXHAUSTED, status.INVALID_ARGUMENT, status.OUT_OF_RANGE, status.UNIMPLEMENTED]);

export function isPermanentRejection(err: unknown): boolean {
  return isRpcError(err) && PERMANENT.has(err.code);
}

/** Room kept for the marker: "[... " + up to 16 digits + " bytes cut]". */
const MARKER_BYTES = 32;

/**
 * `text` cut to at most `maxBytes` UTF-8 bytes in all, marker included, on a character boundary,
 * ending with `[... N bytes cut]`; `alreadyCut` bytes were cut before (line-splitter.ts).
 */
export function cutLine(text: string, maxBytes: number, alreadyCut = 0): string {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes <= maxBytes && alreadyCut === 0) return text;
  const buf = Buffer.from(text, 'utf8');
  let end = Math.min(bytes, Math.max(0, maxBytes - MARKER_BYTES));
  // Do not split a multi-byte character: back up to the start of the one that straddles the cut.
  while (end > 0 && end < bytes && (buf[end] & 0xc0) === 0x80) end--;
  return `${buf.subarray(0, end).toString('utf8')}[... ${bytes - end + alreadyCut} bytes cut]`;
}

/**
 * Upper bound of an event's protobuf size: its strings' UTF-8 bytes plus a fixed allowance for
 * tags, lengths and numbers (a WorkerEvent without strings encodes to well under 256 bytes).
 */
export function estimateEventBytes(e: WorkerEvent): number {
  let n = 256 + Buffer.byteLength(e.jobId ?? '', 'utf8');
  if (e.log) n += Buffer.byteLength(e.log.text ?? '', 'utf8');
  if (e.exited) n += Buffer.byteLength(e.exited.message ?? '', 'utf8') + Buffer.byteLength(e.exited.signal ?? '', 'utf8');
  if (e.checkpoint) n += Buffer.byteLength(e.checkpoint.dir ?? '', 'utf8');
  if (e.metrics) n += 64 * (e.metrics.memoryPeaks?.length ?? 0);
  return n;
}

export class EventReporter {
  private queue: WorkerEvent[] = [];
  private timer: NodeJS.Timeout | null = null;
  private sending: Promise<void> | null = null;
  /** The batch being sent, less what has been delivered (or dropped) so far: bisected halves go in order. */
  private inFlight: WorkerEvent[] = [];
  private readonly o: Required<Omit<EventReporterOptions, 'onDropped'>> & Pick<EventReporterOptions, 'onDropped'>;
  /** Events dropped because the coordinator refused them for good. */
  dropped = 0;

  constructor(private readonly send: (events: WorkerEvent[]) => Promise<void>, options: EventReporterOptions = {}) {
    this.o = {
      batchS: options.batchS ?? 0.1,
      limit: options.limit ?? 20_000,
      maxBatchEvents: options.maxBatchEvents ?? 500,
      maxBatchBytes: options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES,
      maxLineBytes: options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES,
      retryS: options.retryS ?? 0.5,
      onDropped: options.onDropped,
    };
  }

  push(event: WorkerEvent): void {
    if (event.log?.text !== undefined) event = { ...event, log: { ...event.log, text: cutLine(event.log.text, this.o.maxLineBytes) } };
    if (event.exited?.message) event = { ...event, exited: { ...event.exited, message: cutLine(event.exited.message, this.o.maxLineBytes) } };
    this.queue.push(event);
    if (this.queue.length > this.o.limit) {
      const i = this.queue.findIndex((e) => e.log !== undefined || e.metrics !== undefined);
      this.queue.splice(i >= 0 ? i : 0, 1);
    }
    const urgent = event.exited !== undefined || event.started !== undefined;
    this.schedule(urgent ? 0 : this.o.batchS);
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

  /** The next batch: at most maxBatchEvents events and maxBatchBytes estimated bytes (at least one event). */
  private takeBatch(): WorkerEvent[] {
    let bytes = 0;
    let n = 0;
    while (n < this.queue.length && n < this.o.maxBatchEvents) {
      const b = estimateEventBytes(this.queue[n]);
      if (n > 0 && bytes + b > this.o.maxBatchBytes) break;
      bytes += b;
      n++;
    }
    return this.queue.splice(0, n);
  }

  /** Sends `batch`; a permanent refusal of several events is bisected, of one event drops it. Throws only transient errors. */
  private async deliver(batch: WorkerEvent[]): Promise<void> {
    try {
      await this.send(batch);
      this.inFlight.splice(0, batch.length);
    } catch (err) {
      if (!isPermanentRejection(err)) throw err;
      if (batch.length === 1) {
        this.inFlight.splice(0, 1);
        this.dropped++;
        this.o.onDropped?.(batch[0], (err as Error).message);
        return;
      }
      const half = Math.ceil(batch.length / 2);
      await this.deliver(batch.slice(0, half));
      await this.deliver(batch.slice(half));
    }
  }

  /** Sends what is queued; on a transient failure keeps it for the next try (after `retryS`). */
  flush(): Promise<void> {
    if (this.sending) return this.sending;
    if (this.queue.length === 0) return Promise.resolve();
    const batch = this.takeBatch();
    this.inFlight = [...batch];
    this.sending = this.deliver(batch)
      .then(() => {
        this.sending = null;
        if (this.queue.length > 0) this.schedule(0);
      }, () => {
        // Transient (coordinator unreachable, not registered yet): what was not delivered goes first next time.
        this.queue.unshift(...this.inFlight);
        this.inFlight = [];
        this.sending = null;
        this.schedule(this.o.retryS);
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
