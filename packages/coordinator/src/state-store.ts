// The coordinator's persistent state: jobs, their plans and their status history, in SQLite
// (better-sqlite3) under the --state directory. Everything a restarted coordinator needs to list
// its jobs and to mark the ones that were running as interrupted.
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { canTransition, isTerminal, type JobState } from './job-state';

export interface JobRecord {
  id: string;
  name: string;
  state: JobState;
  /** The submitted request (model, training spec, agents, options) as JSON. */
  requestJson: string;
  /** The plan being run (tuned or given), as JSON; null until known. */
  planJson: string | null;
  message: string;
  createdAt: number;
  updatedAt: number;
  /** Step of the newest complete checkpoint reported by the workers (resume point), or null. */
  lastCheckpointStep: number | null;
}

export interface JobEvent {
  jobId: string;
  at: number;
  state: JobState;
  message: string;
}

interface JobRow {
  id: string;
  name: string;
  state: JobState;
  request_json: string;
  plan_json: string | null;
  message: string;
  created_at: number;
  updated_at: number;
  last_checkpoint_step: number | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  state TEXT NOT NULL,
  request_json TEXT NOT NULL,
  plan_json TEXT,
  message TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  last_checkpoint_step INTEGER
);
CREATE TABLE IF NOT EXISTS job_events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL REFERENCES jobs(id),
  at INTEGER NOT NULL,
  state TEXT NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_events_by_job ON job_events(job_id, seq);
`;

function toRecord(r: JobRow): JobRecord {
  return {
    id: r.id, name: r.name, state: r.state, requestJson: r.request_json, planJson: r.plan_json, message: r.message,
    createdAt: r.created_at, updatedAt: r.updated_at, lastCheckpointStep: r.last_checkpoint_step,
  };
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
      this.db.prepare('INSERT INTO job_events (job_id, at, state, message) VALUES (?, ?, ?, ?)').run(job.id, now, 'queued', 'submitted');
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
    const rows = this.db.prepare('SELECT job_id, at, state, message FROM job_events WHERE job_id = ? ORDER BY seq').all(jobId) as Array<{
      job_id: string; at: number; state: JobState; message: string;
    }>;
    return rows.map((r) => ({ jobId: r.job_id, at: r.at, state: r.state, message: r.message }));
  }

  /** Moves a job to `state`; throws on an illegal transition (e.g. out of a terminal state). */
  transition(id: string, state: JobState, message: string, now = Date.now()): JobRecord {
    const job = this.getJob(id);
    if (!job) throw new Error(`no job ${id}`);
    if (!canTransition(job.state, state)) throw new Error(`job ${id} cannot go from ${job.state} to ${state}`);
    const tx = this.db.transaction(() => {
      this.db.prepare('UPDATE jobs SET state = ?, message = ?, updated_at = ? WHERE id = ?').run(state, message, now, id);
      this.db.prepare('INSERT INTO job_events (job_id, at, state, message) VALUES (?, ?, ?, ?)').run(id, now, state, message);
    });
    tx();
    return this.getJob(id)!;
  }

  setPlan(id: string, planJson: string): void {
    this.db.prepare('UPDATE jobs SET plan_json = ?, updated_at = ? WHERE id = ?').run(planJson, Date.now(), id);
  }

  setCheckpoint(id: string, step: number): void {
    this.db.prepare('UPDATE jobs SET last_checkpoint_step = ?, updated_at = ? WHERE id = ?').run(step, Date.now(), id);
  }

  /** At start-up: every job that was not finished is marked interrupted. Returns those jobs. */
  markUnfinishedInterrupted(now = Date.now()): JobRecord[] {
    const unfinished = this.listJobs().filter((j) => !isTerminal(j.state));
    for (const j of unfinished) this.transition(j.id, 'interrupted', `coordinator restarted while the job was ${j.state}`, now);
    return unfinished.map((j) => this.getJob(j.id)!);
  }
}
