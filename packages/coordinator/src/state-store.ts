// The coordinator's persistent state: jobs, their plans and their status history, in SQLite
// (better-sqlite3) under the --state directory. Everything a restarted coordinator needs to list
// its jobs, to mark the ones that were running as interrupted and to resume them.
// Times are integer milliseconds since the Unix epoch in the database (SQLite's INTEGER).
// One coordinator per directory: the database is opened in SQLite's EXCLUSIVE locking mode, so the
// operating system's file lock (released when the process dies, however it dies) keeps a second
// coordinator out; `coordinator.lock` only tells it who holds the directory.
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { canTransition, isTerminal, type JobState } from './job-state';

export const DB_FILE = 'coordinator.sqlite';
export const LOCK_FILE = 'coordinator.lock';

/** The state directory cannot be used: held by another coordinator, or its database is missing or empty. */
export class StateDirError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StateDirError';
  }
}

export interface StateStoreOptions {
  /** Create a new, empty database even though the directory holds other files (a deleted or emptied database otherwise refuses to start). */
  init?: boolean;
}

/** What a coordinator writes into `coordinator.lock` once it holds the directory. */
export interface LockInfo {
  pid: number;
  address: string;
  startedAt: string;
}

/** A job as the list shows it: no request, plan or workers (GetJob has those). */
export interface JobSummaryRecord {
  id: string;
  name: string;
  state: JobState;
  message: string;
  attempt: number;
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
  step: number;
  loss: number | null;
  lastCheckpointStep: number | null;
  ranks: number;
}

export interface JobPageQuery {
  /** Only jobs in these states; empty: all. */
  states: JobState[];
  pageSize: number;
  /** From a previous page's `nextPageToken`; '' for the first page. */
  pageToken: string;
}

/** The position after the last job of a page (newest first: created_at DESC, id DESC). */
function encodeToken(createdAt: number, id: string): string {
  return Buffer.from(`${createdAt}:${id}`, 'utf8').toString('base64url');
}

function decodeToken(token: string): { createdAt: number; id: string } {
  const text = Buffer.from(token, 'base64url').toString('utf8');
  const i = text.indexOf(':');
  const createdAt = Number(text.slice(0, i));
  if (i <= 0 || !Number.isSafeInteger(createdAt) || token.length > 200) throw new StateDirError('page_token: not a token this coordinator handed out');
  return { createdAt, id: text.slice(i + 1) };
}

export interface JobRecord {
  id: string;
  name: string;
  state: JobState;
  /** The submitted request (JobSpec) as JSON. */
  requestJson: string;
  /** The plan being run (tuned or given), as JSON; null until known. */
  planJson: string | null;
  /** The cost model's prediction for the plan, as JSON; null when unknown. */
  predictionJson: string | null;
  message: string;
  /** Attempts so far: 0 for the first run, +1 per resume or restart. */
  attempt: number;
  createdAt: number;
  updatedAt: number;
  /** When the current attempt's workers all ran / when the job reached a terminal state; null before. */
  startedAt: number | null;
  endedAt: number | null;
  /** Latest step and loss the workers reported (saved at state changes and checkpoints). */
  step: number;
  loss: number | null;
  /** Step of the newest complete checkpoint reported by the workers (resume point), or null. */
  lastCheckpointStep: number | null;
  /** Where the ranks of the current attempt run (WorkerInfo-like JSON), null before placement. */
  workersJson: string | null;
}

export interface JobEvent {
  jobId: string;
  at: number;
  state: JobState;
  message: string;
  attempt: number;
}

interface JobRow {
  id: string;
  name: string;
  state: JobState;
  request_json: string;
  plan_json: string | null;
  prediction_json: string | null;
  message: string;
  attempt: number;
  created_at: number;
  updated_at: number;
  started_at: number | null;
  ended_at: number | null;
  step: number;
  loss: number | null;
  last_checkpoint_step: number | null;
  workers_json: string | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  state TEXT NOT NULL,
  request_json TEXT NOT NULL,
  plan_json TEXT,
  prediction_json TEXT,
  message TEXT NOT NULL DEFAULT '',
  attempt INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  started_at INTEGER,
  ended_at INTEGER,
  step INTEGER NOT NULL DEFAULT 0,
  loss REAL,
  last_checkpoint_step INTEGER,
  workers_json TEXT
);
CREATE TABLE IF NOT EXISTS job_events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL REFERENCES jobs(id),
  at INTEGER NOT NULL,
  state TEXT NOT NULL,
  message TEXT NOT NULL,
  attempt INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS job_events_by_job ON job_events(job_id, seq);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs(created_at, id);
CREATE INDEX IF NOT EXISTS jobs_by_state_created ON jobs(state, created_at, id);
`;

const SUMMARY_COLUMNS = `id, name, state, message, attempt, created_at, started_at, ended_at, step, loss, last_checkpoint_step,
  COALESCE(json_array_length(workers_json), 0) AS ranks`;

/** A message in a list stays short: the full text is in GetJob. */
const LIST_MESSAGE_CHARS = 200;

function toRecord(r: JobRow): JobRecord {
  return {
    id: r.id, name: r.name, state: r.state, requestJson: r.request_json, planJson: r.plan_json,
    predictionJson: r.prediction_json, message: r.message, attempt: r.attempt, createdAt: r.created_at,
    updatedAt: r.updated_at, startedAt: r.started_at, endedAt: r.ended_at, step: r.step, loss: r.loss,
    lastCheckpointStep: r.last_checkpoint_step, workersJson: r.workers_json,
  };
}

const TERMINAL_LIST: JobState[] = ['succeeded', 'failed', 'cancelled', 'interrupted'];

function describeHolder(dir: string): string {
  try {
    const info = JSON.parse(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8')) as LockInfo;
    return `pid ${info.pid}, listening on ${info.address}, since ${info.startedAt}`;
  } catch {
    return `no ${LOCK_FILE} yet: it is starting`;
  }
}

/** Worker ports held on one agent address. */
export interface PortLeaseRecord {
  address: string;
  ports: number[];
}

/** Fields a transition may update together with the state, in the same transaction. */
export interface TransitionUpdate {
  attempt?: number;
  planJson?: string;
  predictionJson?: string | null;
  startedAt?: number | null;
  step?: number;
  loss?: number | null;
  workersJson?: string | null;
}

export class StateStore {
  private readonly db: Database.Database;
  /** The database file and its inode when opened (null in memory): to notice it being deleted under us. */
  private readonly file: { path: string; ino: number } | null = null;
  private readonly dir: string | null = null;

  /**
   * Opens (creating if needed) `<dir>/coordinator.sqlite` and locks the directory; `':memory:'` for a
   * throw-away store. Throws a StateDirError when another coordinator holds the directory, or when
   * the directory holds other files but no (or an empty) database, unless `init`.
   */
  constructor(dir: string, o: StateStoreOptions = {}) {
    if (dir === ':memory:') {
      this.db = new Database(':memory:');
      this.db.exec(SCHEMA);
      this.migrate();
      return;
    }
    fs.mkdirSync(dir, { recursive: true });
    const dbPath = path.join(dir, DB_FILE);
    const size = fs.existsSync(dbPath) ? fs.statSync(dbPath).size : -1;
    const others = fs.readdirSync(dir).filter((f) => !f.startsWith(DB_FILE));
    if (size <= 0 && others.length > 0 && !o.init) {
      throw new StateDirError(`${dbPath} is ${size < 0 ? 'missing' : 'empty (0 bytes)'} but ${dir} holds a coordinator's files (${others.slice(0, 5).join(', ')}): ` +
        'the job database was lost. Restore it, or start with --init to begin again with no jobs');
    }
    // timeout 0: a held lock fails at once instead of waiting 5 s.
    this.db = new Database(dbPath, { timeout: 0 });
    try {
      // EXCLUSIVE before WAL: the lock is taken at the first access and kept until close (no shared memory).
      this.db.pragma('locking_mode = EXCLUSIVE');
      this.db.pragma('journal_mode = WAL');
      this.db.exec('BEGIN IMMEDIATE; COMMIT');
    } catch (err) {
      this.db.close();
      if ((err as { code?: string }).code !== 'SQLITE_BUSY') throw err;
      throw new StateDirError(`${dir} is in use by another coordinator (${describeHolder(dir)}); stop it or give this one another --state`);
    }
    this.db.exec(SCHEMA);
    this.migrate();
    this.dir = dir;
    this.file = { path: dbPath, ino: fs.statSync(dbPath).ino };
  }

  /** Writes who holds the directory (the lock itself is SQLite's). */
  writeLockInfo(address: string): void {
    if (!this.dir) return;
    const info: LockInfo = { pid: process.pid, address, startedAt: new Date().toISOString() };
    fs.writeFileSync(path.join(this.dir, LOCK_FILE), `${JSON.stringify(info)}\n`);
  }

  /** Null while the database file is where it was opened; else what happened to it. */
  databaseProblem(): string | null {
    if (!this.file) return null;
    try {
      const st = fs.statSync(this.file.path);
      return st.ino === this.file.ino ? null : `${this.file.path} was replaced by another file`;
    } catch {
      return `${this.file.path} was deleted`;
    }
  }

  close(): void {
    this.db.close();
    if (this.dir) fs.rmSync(path.join(this.dir, LOCK_FILE), { force: true });
  }

  /** A page of job summaries, newest first. */
  listPage(q: JobPageQuery): { jobs: JobSummaryRecord[]; nextPageToken: string } {
    const where: string[] = [];
    const args: Array<string | number> = [];
    if (q.states.length > 0) {
      where.push(`state IN (${q.states.map(() => '?').join(', ')})`);
      args.push(...q.states);
    }
    if (q.pageToken) {
      const after = decodeToken(q.pageToken);
      where.push('(created_at < ? OR (created_at = ? AND id < ?))');
      args.push(after.createdAt, after.createdAt, after.id);
    }
    const sql = `SELECT ${SUMMARY_COLUMNS} FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY created_at DESC, id DESC LIMIT ?`;
    const rows = this.db.prepare(sql).all(...args, q.pageSize + 1) as Array<JobRow & { ranks: number }>;
    const more = rows.length > q.pageSize;
    const page = rows.slice(0, q.pageSize).map((r): JobSummaryRecord => ({
      id: r.id, name: r.name, state: r.state,
      message: r.message.length > LIST_MESSAGE_CHARS ? `${r.message.slice(0, LIST_MESSAGE_CHARS - 3)}...` : r.message,
      attempt: r.attempt, createdAt: r.created_at, startedAt: r.started_at, endedAt: r.ended_at, step: r.step, loss: r.loss,
      lastCheckpointStep: r.last_checkpoint_step, ranks: r.ranks,
    }));
    const last = page[page.length - 1];
    return { jobs: page, nextPageToken: more && last ? encodeToken(last.createdAt, last.id) : '' };
  }

  countJobs(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM jobs').get() as { n: number }).n;
  }

  /** How many jobs are in each state (states with none are absent). */
  countByState(): Partial<Record<JobState, number>> {
    const rows = this.db.prepare('SELECT state, COUNT(*) AS n FROM jobs GROUP BY state').all() as Array<{ state: JobState; n: number }>;
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  }

  /** Ids of jobs not in a terminal state (what a restarted coordinator must look at). */
  unfinishedJobs(): JobRecord[] {
    const terminal = [...TERMINAL_LIST];
    return (this.db.prepare(`SELECT * FROM jobs WHERE state NOT IN (${terminal.map(() => '?').join(', ')}) ORDER BY created_at, id`)
      .all(...terminal) as JobRow[]).map(toRecord);
  }

  /** Columns added after the first release, added to a database created before them. */
  private migrate(): void {
    const columns = new Set((this.db.prepare('PRAGMA table_info(jobs)').all() as Array<{ name: string }>).map((c) => c.name));
    // The worker ports of the current attempt, reserved again when a restarted coordinator adopts its workers.
    if (!columns.has('port_leases_json')) this.db.exec('ALTER TABLE jobs ADD COLUMN port_leases_json TEXT');
  }

  /** Records the worker ports the job's current attempt holds (`address` is the agent's). */
  setPortLeases(id: string, leases: PortLeaseRecord[]): void {
    this.db.prepare('UPDATE jobs SET port_leases_json = ? WHERE id = ?').run(JSON.stringify(leases), id);
  }

  /** The worker ports recorded for the job's current attempt (none when not recorded). */
  portLeases(id: string): PortLeaseRecord[] {
    const row = this.db.prepare('SELECT port_leases_json AS j FROM jobs WHERE id = ?').get(id) as { j: string | null } | undefined;
    if (!row?.j) return [];
    const parsed = JSON.parse(row.j) as unknown;
    if (!Array.isArray(parsed)) throw new Error(`job ${id}: port_leases_json is not a list`);
    return parsed.map((l: unknown, i) => {
      const { address, ports } = (l ?? {}) as { address?: unknown; ports?: unknown };
      if (typeof address !== 'string' || !Array.isArray(ports) || !ports.every((p) => Number.isInteger(p) && p > 0 && p < 65536)) {
        throw new Error(`job ${id}: port_leases_json[${i}] is not { address, ports }`);
      }
      return { address, ports: ports as number[] };
    });
  }

  /** Deletes a job and its history. */
  deleteJob(id: string): void {
    const tx = this.db.transaction(() => {
      this.db.prepare('DELETE FROM job_events WHERE job_id = ?').run(id);
      this.db.prepare('DELETE FROM jobs WHERE id = ?').run(id);
    });
    tx();
  }

  /**
   * Retention: the ids of finished jobs beyond the newest `maxJobs` jobs, or that ended more than
   * `maxAgeMs` ago (0: no limit). Unfinished jobs are never chosen.
   */
  expiredJobs(maxJobs: number, maxAgeMs: number, now = Date.now()): string[] {
    const terminal = [...TERMINAL_LIST];
    const inList = terminal.map(() => '?').join(', ');
    const out = new Set<string>();
    if (maxJobs > 0) {
      const rows = this.db.prepare(`SELECT id FROM jobs WHERE state IN (${inList}) AND (created_at, id) < (
          SELECT created_at, id FROM jobs ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET ?) ORDER BY created_at, id`)
        .all(...terminal, maxJobs - 1) as Array<{ id: string }>;
      for (const r of rows) out.add(r.id);
    }
    if (maxAgeMs > 0) {
      const rows = this.db.prepare(`SELECT id FROM jobs WHERE state IN (${inList}) AND ended_at IS NOT NULL AND ended_at < ?`)
        .all(...terminal, now - maxAgeMs) as Array<{ id: string }>;
      for (const r of rows) out.add(r.id);
    }
    return [...out];
  }

  createJob(job: { id: string; name: string; requestJson: string; planJson?: string | null }, now = Date.now()): JobRecord {
    const tx = this.db.transaction(() => {
      this.db
        .prepare('INSERT INTO jobs (id, name, state, request_json, plan_json, message, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(job.id, job.name, 'queued', job.requestJson, job.planJson ?? null, 'submitted', now, now);
      this.db.prepare('INSERT INTO job_events (job_id, at, state, message, attempt) VALUES (?, ?, ?, ?, 0)').run(job.id, now, 'queued', 'submitted');
    });
    tx();
    return this.getJob(job.id)!;
  }

  getJob(id: string): JobRecord | undefined {
    const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
    return row ? toRecord(row) : undefined;
  }

  listJobs(): JobRecord[] {
    return (this.db.prepare('SELECT * FROM jobs ORDER BY created_at, id').all() as JobRow[]).map(toRecord);
  }

  events(jobId: string): JobEvent[] {
    const rows = this.db.prepare('SELECT job_id, at, state, message, attempt FROM job_events WHERE job_id = ? ORDER BY seq').all(jobId) as Array<{
      job_id: string; at: number; state: JobState; message: string; attempt: number;
    }>;
    return rows.map((r) => ({ jobId: r.job_id, at: r.at, state: r.state, message: r.message, attempt: r.attempt }));
  }

  /** Moves a job to `state` (with the given fields); throws on an illegal transition (e.g. out of a terminal state). */
  transition(id: string, state: JobState, message: string, now = Date.now(), update: TransitionUpdate = {}): JobRecord {
    const job = this.getJob(id);
    if (!job) throw new Error(`no job ${id}`);
    if (!canTransition(job.state, state)) throw new Error(`job ${id} cannot go from ${job.state} to ${state}`);
    const attempt = update.attempt ?? job.attempt;
    const tx = this.db.transaction(() => {
      this.db.prepare(`UPDATE jobs SET state = ?, message = ?, updated_at = ?, attempt = ?, plan_json = ?, prediction_json = ?,
          started_at = ?, ended_at = ?, step = ?, loss = ?, workers_json = ? WHERE id = ?`).run(
        state, message, now, attempt,
        update.planJson ?? job.planJson,
        update.predictionJson !== undefined ? update.predictionJson : job.predictionJson,
        update.startedAt !== undefined ? update.startedAt : job.startedAt,
        isTerminal(state) ? now : null,
        update.step ?? job.step,
        update.loss !== undefined ? update.loss : job.loss,
        update.workersJson !== undefined ? update.workersJson : job.workersJson,
        id,
      );
      this.db.prepare('INSERT INTO job_events (job_id, at, state, message, attempt) VALUES (?, ?, ?, ?, ?)').run(id, now, state, message, attempt);
    });
    tx();
    return this.getJob(id)!;
  }

  setPlan(id: string, planJson: string, predictionJson: string | null = null): void {
    this.db.prepare('UPDATE jobs SET plan_json = ?, prediction_json = ?, updated_at = ? WHERE id = ?').run(planJson, predictionJson, Date.now(), id);
  }

  /** A new message for the job's current state (e.g. why a queued job waits). */
  setMessage(id: string, message: string): void {
    this.db.prepare('UPDATE jobs SET message = ?, updated_at = ? WHERE id = ?').run(message, Date.now(), id);
  }

  setCheckpoint(id: string, step: number): void {
    this.db.prepare('UPDATE jobs SET last_checkpoint_step = ?, updated_at = ? WHERE id = ?').run(step, Date.now(), id);
  }

  setProgress(id: string, step: number, loss: number | null): void {
    this.db.prepare('UPDATE jobs SET step = ?, loss = ?, updated_at = ? WHERE id = ?').run(step, loss, Date.now(), id);
  }

  /**
   * At start-up: every job that was not finished is marked interrupted (a job that was being
   * cancelled is cancelled: the agents stop its workers when they reconnect). Returns those jobs.
   */
  markUnfinishedInterrupted(now = Date.now(), keep: readonly JobState[] = []): JobRecord[] {
    // A queued job has no workers anywhere: it stays in the queue. Jobs in `keep` (running ones,
    // whose workers the agents keep through the outage) are left for the job manager to recover.
    const unfinished = this.unfinishedJobs().filter((j) => j.state !== 'queued' && !keep.includes(j.state));
    for (const j of unfinished) {
      if (j.state === 'cancelling') this.transition(j.id, 'cancelled', 'coordinator restarted while the job was being cancelled', now);
      else this.transition(j.id, 'interrupted', `coordinator restarted while the job was ${j.state}`, now);
    }
    return unfinished.map((j) => this.getJob(j.id)!);
  }
}
