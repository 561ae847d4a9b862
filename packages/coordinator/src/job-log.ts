// The workers' events of each job (log lines, metrics, starts, exits, checkpoints), kept for
// `mist logs` and WatchJob's replay. With a state directory they live in `<state>/logs/<job>.log`
// (one JSON line per event: `{"s": seq, "t": received, "e": JobEvent}`), rotated to `<job>.log.1`
// when the file reaches half the cap, so a job's logs never take more than the cap; what rotation
// throws away is counted in `<job>.log.meta` and replay starts with a LogGap saying so. Without a
// state directory (`:memory:`) the newest events are kept in memory, also counted when dropped.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { JobEvent } from '@mist/rpc';

export interface LoggedEvent {
  /** Sequence number of the event in its job (from 1). */
  seq: number;
  /** When the coordinator received it (seconds since the Unix epoch): the replay merges on it. */
  at: number;
  event: JobEvent;
}

export interface LogSnapshot {
  /** Events dropped (rotation or the memory cap) before `events`. */
  dropped: number;
  events: LoggedEvent[];
}

interface Meta {
  /** Events thrown away by rotations so far. */
  dropped: number;
  /** Events in `<job>.log.1`. */
  previousEvents: number;
}

interface OpenLog {
  fd: number;
  bytes: number;
  events: number;
  seq: number;
  meta: Meta;
}

/** Events kept per job in memory when there is no state directory. */
const MEMORY_EVENTS = 5000;

export class JobLogs {
  private readonly open = new Map<string, OpenLog>();
  private readonly memory = new Map<string, { seq: number; dropped: number; events: LoggedEvent[] }>();

  /** `dir` null: memory only. `maxBytes`: cap of one job's files together. */
  constructor(
    private readonly dir: string | null,
    readonly maxBytes: number,
  ) {
    if (dir) fs.mkdirSync(dir, { recursive: true });
  }

  /** True when the events are kept in files. */
  get persistent(): boolean {
    return this.dir !== null;
  }

  private file(jobId: string, suffix = ''): string {
    return path.join(this.dir!, `${jobId}.log${suffix}`);
  }

  private readMeta(jobId: string): Meta {
    try {
      return JSON.parse(fs.readFileSync(this.file(jobId, '.meta'), 'utf8')) as Meta;
    } catch {
      return { dropped: 0, previousEvents: 0 };
    }
  }

  private opened(jobId: string): OpenLog {
    let log = this.open.get(jobId);
    if (log) return log;
    const name = this.file(jobId);
    let events = 0;
    let seq = 0;
    if (fs.existsSync(name)) {
      // Reopened after a restart: continue the sequence after the last complete line.
      const lines = fs.readFileSync(name, 'utf8').split('\n').filter((l) => l.startsWith('{') && l.endsWith('}'));
      events = lines.length;
      if (lines.length > 0) seq = (JSON.parse(lines[lines.length - 1]) as { s: number }).s;
    }
    const meta = this.readMeta(jobId);
    if (seq === 0 && meta.previousEvents > 0) seq = meta.dropped + meta.previousEvents;
    const fd = fs.openSync(name, 'a');
    log = { fd, bytes: fs.fstatSync(fd).size, events, seq, meta };
    this.open.set(jobId, log);
    return log;
  }

  /** Records one worker event of the job. */
  append(jobId: string, event: JobEvent, at = Date.now() / 1000): void {
    if (!this.dir) {
      let m = this.memory.get(jobId);
      if (!m) this.memory.set(jobId, (m = { seq: 0, dropped: 0, events: [] }));
      m.events.push({ seq: ++m.seq, at, event });
      if (m.events.length > MEMORY_EVENTS * 1.2) {
        const cut = m.events.length - MEMORY_EVENTS;
        m.events.splice(0, cut);
        m.dropped += cut;
      }
      return;
    }
    const log = this.opened(jobId);
    const line = `${JSON.stringify({ s: ++log.seq, t: at, e: event })}\n`;
    const bytes = Buffer.byteLength(line);
    if (log.bytes > 0 && log.bytes + bytes > this.maxBytes / 2) this.rotate(jobId, log);
    fs.writeSync(log.fd, line);
    log.bytes += bytes;
    log.events++;
  }

  private rotate(jobId: string, log: OpenLog): void {
    fs.closeSync(log.fd);
    log.meta = { dropped: log.meta.dropped + log.meta.previousEvents, previousEvents: log.events };
    fs.renameSync(this.file(jobId), this.file(jobId, '.1'));
    fs.writeFileSync(this.file(jobId, '.meta'), JSON.stringify(log.meta));
    log.fd = fs.openSync(this.file(jobId), 'a');
    log.bytes = 0;
    log.events = 0;
  }

  /** The sequence number of the job's newest event (0: none). */
  lastSeq(jobId: string): number {
    if (!this.dir) return this.memory.get(jobId)?.seq ?? 0;
    const log = this.open.get(jobId);
    if (log) return log.seq;
    return fs.existsSync(this.file(jobId)) || fs.existsSync(this.file(jobId, '.1')) ? this.opened(jobId).seq : 0;
  }

  /** The job's events so far, oldest first, up to sequence `upTo` (read without blocking the event loop). */
  async snapshot(jobId: string, upTo = Number.MAX_SAFE_INTEGER): Promise<LogSnapshot> {
    if (!this.dir) {
      const m = this.memory.get(jobId);
      return { dropped: m?.dropped ?? 0, events: (m?.events ?? []).filter((e) => e.seq <= upTo) };
    }
    const read = async (suffix: string): Promise<string> => fs.promises.readFile(this.file(jobId, suffix), 'utf8').catch(() => '');
    // Older file first; a rotation between the two reads can only repeat events (dropped by seq below).
    const [older, newer] = [await read('.1'), await read('')];
    const events: LoggedEvent[] = [];
    let last = 0;
    for (const line of `${older}\n${newer}`.split('\n')) {
      if (!line.startsWith('{') || !line.endsWith('}')) continue; // a line cut by a crash
      const r = JSON.parse(line) as { s: number; t: number; e: JobEvent };
      if (r.s <= last || r.s > upTo) continue;
      last = r.s;
      events.push({ seq: r.s, at: r.t, event: r.e });
    }
    const dropped = events.length > 0 ? events[0].seq - 1 : this.readMeta(jobId).dropped;
    return { dropped, events };
  }

  /** Closes the job's file (it finished); later appends reopen it. */
  closeJob(jobId: string): void {
    const log = this.open.get(jobId);
    if (log) fs.closeSync(log.fd);
    this.open.delete(jobId);
  }

  /** Deletes everything kept of the job. */
  remove(jobId: string): void {
    this.closeJob(jobId);
    this.memory.delete(jobId);
    if (!this.dir) return;
    for (const suffix of ['', '.1', '.meta']) fs.rmSync(this.file(jobId, suffix), { force: true });
  }

  close(): void {
    for (const id of [...this.open.keys()]) this.closeJob(id);
  }
}
