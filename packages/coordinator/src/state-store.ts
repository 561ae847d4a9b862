// The coordinator's persistent state: jobs, their plans and their status history, in SQLite
// (better-sqlite3) under the --state directory. Everything a restarted coordinator needs to list
// its jobs, to mark the ones that were running as interrupted and to resume them.
// Times are integer milliseconds since the Unix epoch in the database (SQLite's INTEGER).
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { canTransition, isTerminal, type JobState } from './job-state';

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
`;

function toRecord(r: JobRow): JobRecord {
  return {
    id: r.id, name: r.name, state: r.state, requestJson: r.request_json, planJson: r.plan_json,
    predictionJson: r.prediction_json, message: r.message, attempt: r.attempt, createdAt: r.created_at,
    updatedAt: r.updated_at, startedAt: r.started_at, endedAt: r.ended_at, step: r.step, loss: r.loss,
    lastCheckpointStep: r.last_checkpoint_step, workersJson: r.workers_json,
  };
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

  /** Opens (creating if needed) `<dir>/coordinator.sqlite`; `':memory:'` for a throw-away store. */
  constructor(dir: string) {
    if (dir === ':memory:') this.db = new Database(':memory:');
    else {
      fs.mkdirSync(dir, { recursive: true });
      this.db = new Database(path.join(dir, 'coordinator.sqlite'));
      this.db.pragma('journal_mode = WAL');
    }
    this.db.exec(SCHEMA);
  }

  close(): void {
    this.db.close();
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
  markUnfinishedInterrupted(now = Date.now()): JobRecord[] {
    const unfinished = this.listJobs().filter((j) => !isTerminal(j.state));
    for (const j of unfinished) {
      if (j.state === 'cancelling') this.transition(j.id, 'cancelled', 'coordinator restarted while the job was being cancelled', now);
      else this.transition(j.id, 'interrupted', `coordinator restarted while the job was ${j.state}`, now);
    }
    return unfinished.map((j) => this.getJob(j.id)!);
  }
}
