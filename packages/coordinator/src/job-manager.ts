// The jobs of one coordinator: submission (validate, tune or take the plan, place, hand out the
// rendezvous, assign ranks to agents), the workers' events (start, metrics, logs, checkpoints,
// exits), failure (a lost agent or a failed worker fails the job and stops every other worker of
// it), cancellation, resume of an interrupted job, and the persistent record of all of it.
import * as crypto from 'node:crypto';
import { parsePlan, type Plan } from '@mist/core';
import {
  type AgentCommand, type Job, type JobAssignment, type JobEvent, type JobSpec, type ListJobsRequest__Output, type ListJobsResponse,
  status, type SubmitJobRequest__Output, type WorkerEvent__Output, type WorkerInfo, type WorkerState__Output,
} from '@mist/rpc';
import type { AgentRecord, AgentRegistry } from './agent-registry';
import { checkJobId, checkReason, RequestError } from './job-limits';
import type { JobLogs } from './job-log';
import { isResumable, isTerminal, type JobState } from './job-state';
import { type ValidatedJob, validateJobSpec } from './job-spec';
import { JobView, type JobWatcher, protoJobState, statesOfProto, summaryJob } from './job-view';
import { placePlan, type PlacementAgent, type RankPlacement } from './placement';
import { buildRendezvous, type PortLease, resolveBackend, type ResolvedBackend } from './rendezvous';
import type { JobRecord, StateStore, TransitionUpdate } from './state-store';
import { clusterMismatch, type RemoteTuner, type TunedPlan, TuningAborted, tuneJob, tuningTarget } from './tuning';

export { RequestError } from './job-limits';

/** Jobs per ListJobs page when the request says 0, and the most it may ask for. */
const DEFAULT_PAGE_SIZE = 50;
const MAX_PAGE_SIZE = 1000;
/** Views of finished jobs kept in memory (others are read from the database when asked for). */
const CACHED_FINISHED_VIEWS = 1000;
/** Tuning progress events per second at most. */
const PROGRESS_EVERY_MS = 500;

interface RankRuntime {
  rank: number;
  stage: number;
  agentId: string;
  hostName: string;
  deviceIndex: number;
  state: WorkerState__Output;
  exitCode: number;
  checkpointStep: number;
  /** performance.now() of the first heartbeat of its agent that no longer listed this running worker. */
  missingSince?: number;
}

interface ActiveJob {
  view: JobView;
  attempt: number;
  /** `live` while it runs or is being cancelled; `draining` after a failure, until its workers are gone. */
  phase: 'tuning' | 'live' | 'draining';
  job: ValidatedJob;
  ranks: RankRuntime[];
  leases: PortLease[];
  assignments: Map<string, JobAssignment>;
  timer: NodeJS.Timeout | null;
  /** Stops the tuning (phase `tuning`). */
  abort?: AbortController;
}

interface Prepared {
  placement: RankPlacement[];
  backend: ResolvedBackend;
  rendezvous: JobAssignment['rendezvous'];
  leases: PortLease[];
}

export interface JobManagerOptions {
  store: StateStore;
  registry: AgentRegistry;
  /** Seconds workers get between SIGTERM and SIGKILL when stopped. */
  stopGraceS: number;
  remoteTuner?: RemoteTuner;
  /** Where the workers' events of every job are kept. */
  logs: JobLogs;
  /** Seconds a tuning may take when the job does not say (0: no limit). */
  tuneTimeLimitS: number;
  log?: (line: string) => void;
}

const DONE_STATES: ReadonlySet<WorkerState__Output> = new Set(['WORKER_STATE_EXITED', 'WORKER_STATE_LOST']);

export class JobManager {
  private readonly views = new Map<string, JobView>();
  private readonly active = new Map<string, ActiveJob>();
  /** Jobs found running at start-up, waiting for their agents to come back and list their workers. */
  private readonly recovering = new Set<string>();
  /** When a stop was last sent for (agent, job, attempt), to not repeat it on every heartbeat. */
  private readonly stopSentAt = new Map<string, number>();
  /** Queued jobs waiting for devices, in submission order. */
  private readonly queue: string[] = [];
  private readonly queuedJobs = new Map<string, ValidatedJob>();
  private pumping = false;
  private closed = false;
  /** Set when the database went away under us: nothing new is accepted. */
  private databaseProblem: string | null = null;

  constructor(private readonly o: JobManagerOptions) {
    // Only unfinished jobs are held in memory; finished ones are read when asked for.
    for (const r of o.store.unfinishedJobs()) {
      const view = this.loadView(r);
      if (r.state === 'queued') {
        try {
          this.queuedJobs.set(r.id, validateJobSpec(view.spec as Parameters<typeof validateJobSpec>[0]));
          this.queue.push(r.id);
        } catch (err) {
          this.transition(view, 'failed', `cannot be queued again after a restart: ${(err as Error).message}`);
        }
      }
    }
  }

  private loadView(r: JobRecord): JobView {
    const view = new JobView(r, JSON.parse(r.requestJson) as JobSpec);
    for (const e of this.o.store.events(r.id)) {
      view.history.push({ jobId: r.id, time: e.at / 1000, event: 'state', state: { state: protoJobState(e.state), message: e.message, attempt: e.attempt, planJson: '' } });
    }
    this.views.set(r.id, view);
    this.evictViews();
    return view;
  }

  /** Forgets the oldest finished views beyond the cache size (no watcher, not active). */
  private evictViews(): void {
    let excess = this.views.size - CACHED_FINISHED_VIEWS;
    if (excess <= 0) return;
    for (const [id, v] of this.views) {
      if (excess <= 0) break;
      if (isTerminal(v.record.state) && v.watchers.size === 0 && !this.active.has(id)) {
        this.views.delete(id);
        excess--;
      }
    }
  }

  /** The database file went away: refuse new work, say why. */
  setDatabaseProblem(problem: string): void {
    this.databaseProblem = problem;
  }

  private log(line: string): void {
    this.o.log?.(line);
  }

  // ---- queries ----------------------------------------------------------------------------------

  getJob(id: string): Job {
    return this.view(id).toJob();
  }

  /** A page of job summaries, newest first. */
  listJobs(req: ListJobsRequest__Output): ListJobsResponse {
    const pageSize = req.pageSize || DEFAULT_PAGE_SIZE;
    if (pageSize > MAX_PAGE_SIZE) throw new RequestError(status.INVALID_ARGUMENT, `page_size: ${pageSize}; at most ${MAX_PAGE_SIZE}`);
    let page;
    try {
      page = this.o.store.listPage({ states: [...new Set(req.states.flatMap((s) => statesOfProto(s)))], pageSize, pageToken: req.pageToken });
    } catch (err) {
      throw new RequestError(status.INVALID_ARGUMENT, (err as Error).message);
    }
    return { jobs: page.jobs.map((r) => summaryJob(r, this.active.has(r.id) ? this.views.get(r.id) : undefined)), nextPageToken: page.nextPageToken };
  }

  private view(id: string): JobView {
    checkJobId(id);
    const v = this.views.get(id);
    if (v) return v;
    const r = this.o.store.getJob(id);
    if (!r) throw new RequestError(status.NOT_FOUND, `no job "${id}"`);
    return this.loadView(r);
  }

  /** Deletes a finished job: record, history and logs (`mist rm`). */
  deleteJob(id: string): void {
    const view = this.view(id);
    if (!isTerminal(view.record.state) || this.active.has(id)) {
      throw new RequestError(status.FAILED_PRECONDITION, `job ${id} is ${view.record.state}; only a finished job can be removed (cancel it first)`);
    }
    this.forget(id);
    this.log(`job ${id} removed`);
  }

  private forget(id: string): void {
    const view = this.views.get(id);
    if (view) for (const w of view.watchers) w.end();
    this.views.delete(id);
    this.o.store.deleteJob(id);
    this.o.logs.remove(id);
  }

  /** Retention: removes finished jobs beyond the newest `maxJobs` or older than `maxAgeS` (0: no limit). Returns how many. */
  applyRetention(maxJobs: number, maxAgeS: number): number {
    const ids = this.o.store.expiredJobs(maxJobs, maxAgeS * 1000).filter((id) => !this.active.has(id));
    for (const id of ids) this.forget(id);
    if (ids.length > 0) this.log(`retention: removed ${ids.length} finished job(s)`);
    return ids.length;
  }

  /**
   * Streams the job's events to `watcher` (only those recorded so far with `replayOnly`); returns
   * the unsubscribe function. The replay (state changes merged with the worker events of the job's
   * log files) is read without blocking; live events arriving meanwhile wait behind it.
   */
  watch(id: string, replay: boolean, watcher: JobWatcher, replayOnly = false): () => void {
    const view = this.view(id);
    const follow = !replayOnly && !isTerminal(view.record.state);
    if (!replay && !replayOnly) {
      if (!follow) {
        watcher.write(view.stateEvent(view.record.message));
        watcher.end();
        return () => undefined;
      }
      view.watchers.add(watcher);
      return () => view.watchers.delete(watcher);
    }
    const states = [...view.history];
    const upTo = this.o.logs.lastSeq(id);
    const held: JobEvent[] = [];
    let replaying = true;
    let ended = false;
    const proxy: JobWatcher = {
      includeLogs: watcher.includeLogs,
      write: (e) => (replaying ? held.push(e) : watcher.write(e)),
      end: () => {
        ended = true;
        if (!replaying) watcher.end();
      },
    };
    if (follow) view.watchers.add(proxy);
    void this.o.logs.snapshot(id, upTo).then((snap) => {
      if (snap.dropped > 0) {
        watcher.write({ jobId: id, time: states[0]?.time ?? 0, event: 'logGap', logGap: {
          droppedEvents: snap.dropped,
          reason: this.o.logs.persistent ? `the job's log files are capped at ${this.o.logs.maxBytes} bytes (--log-max-bytes); the oldest events were dropped`
            : 'only the newest events are kept in memory',
        } });
      }
      let i = 0;
      for (const w of snap.events) {
        while (i < states.length && Number(states[i].time ?? 0) <= w.at) watcher.write(states[i++]);
        if (w.event.worker?.event === 'log' && !watcher.includeLogs) continue;
        watcher.write(w.event);
      }
      while (i < states.length) watcher.write(states[i++]);
    }).catch((err: unknown) => {
      this.log(`job ${id}: replay of its logs failed: ${(err as Error).message}`);
    }).finally(() => {
      replaying = false;
      for (const e of held) watcher.write(e);
      if (ended || !follow) watcher.end();
    });
    return () => view.watchers.delete(proxy);
  }

  /** Jobs with workers (or assignments) on this agent now. */
  jobsOnAgent(agentId: string): string[] {
    return [...this.active.values()].filter((a) => a.ranks.some((r) => r.agentId === agentId)).map((a) => a.view.id);
  }

  // ---- submission -------------------------------------------------------------------------------

  async submit(req: SubmitJobRequest__Output): Promise<Job> {
    if (this.databaseProblem) throw new RequestError(status.UNAVAILABLE, `the coordinator's job database is gone (${this.databaseProblem}); restart it`);
    if (req.resumeJobId) return this.resume(req.resumeJobId);
    const job = validateJobSpec(req.spec);
    const agents = this.chooseAgents(job.agents);
    const id = `job-${crypto.randomBytes(4).toString('hex')}`;
    const spec = req.spec as JobSpec;
    if (job.plan) {
      // Everything that can refuse the job happens before it is recorded: nothing starts.
      this.checkFitsIdle(job.plan, job, agents);
      let prepared: Prepared | null = null;
      let busy = `${this.queue.length} job(s) queued ahead`;
      if (this.queue.length === 0 || job.noQueue) {
        try {
          prepared = this.prepare(job.plan, job, agents);
        } catch (err) {
          if (job.noQueue) throw err;
          busy = (err as Error).message;
        }
      }
      const view = this.create(id, job, spec, JSON.stringify(job.plan));
      if (!prepared) {
        this.enqueue(view, job, busy);
        return view.toJob();
      }
      this.transition(view, 'placing', `placing ${prepared.placement.length} ranks`, {}, JSON.stringify(job.plan));
      this.dispatch(view, job, job.plan, prepared, 0, false);
      return view.toJob();
    }
    // A plan for a cluster larger than the agents could never run: refused before any tuning.
    const mismatch = job.cluster ? clusterMismatch(job.cluster, agents) : null;
    if (mismatch) throw new RequestError(status.FAILED_PRECONDITION, `cannot run this job here: ${mismatch}`);
    const view = this.create(id, job, spec, null);
    this.startTuning(view, job);
    return view.toJob();
  }

  /** Throws when the plan cannot run on these agents even with all their devices free. */
  private checkFitsIdle(plan: Plan, job: ValidatedJob, agents: AgentRecord[]): void {
    const placed = placePlan(plan, agents.map((a) => ({
      id: a.id, host: a.hostName, devices: a.devices.map((d) => ({ index: d.index, kind: d.kind, memoryBytes: d.memoryBytes })),
    })));
    if (!placed.ok) throw new RequestError(status.FAILED_PRECONDITION, `cannot place the plan: ${placed.reason} (even with every device free)`);
    const backend = resolveBackend(job.backend, placed.ranks, this.o.registry);
    if (!backend.ok) throw new RequestError(status.FAILED_PRECONDITION, backend.reason);
  }

  /** Puts a recorded job in the queue, in submission order. */
  private enqueue(view: JobView, job: ValidatedJob, why: string): void {
    let at = this.queue.length;
    while (at > 0 && (this.views.get(this.queue[at - 1])?.record.createdAt ?? 0) > view.record.createdAt) at--;
    this.queue.splice(at, 0, view.id);
    this.queuedJobs.set(view.id, job);
    const message = `queued: waiting for devices (${why})`;
    if (view.record.state === 'queued') {
      this.o.store.setMessage(view.id, message);
      view.record = this.o.store.getJob(view.id)!;
      view.emit(view.stateEvent(message));
      this.log(`job ${view.id}: ${message}`);
    } else this.transition(view, 'queued', message);
  }

  /** Starts the queued jobs whose devices are free, in submission order (the first that does not fit blocks the rest). */
  private pumpQueue(): void {
    if (this.pumping || this.closed) return;
    this.pumping = true;
    try {
      while (this.queue.length > 0) {
        const id = this.queue[0];
        const view = this.views.get(id);
        const job = this.queuedJobs.get(id);
        if (!view || !job || view.record.state !== 'queued') {
          this.queue.shift();
          this.queuedJobs.delete(id);
          continue;
        }
        if (!view.record.planJson) {
          // Recorded but never tuned (the coordinator stopped in between): tune it now.
          this.queue.shift();
          this.queuedJobs.delete(id);
          this.startTuning(view, job);
          continue;
        }
        let plan: Plan;
        let prepared: Prepared;
        try {
          plan = parsePlan(JSON.parse(view.record.planJson), { model: job.model });
          prepared = this.prepare(plan, job, this.chooseAgents(job.agents));
        } catch {
          break;
        }
        this.queue.shift();
        this.queuedJobs.delete(id);
        this.transition(view, 'placing', `devices free: placing ${prepared.placement.length} ranks`, {}, view.record.planJson);
        this.dispatch(view, job, plan, prepared, view.record.attempt, false);
      }
    } finally {
      this.pumping = false;
    }
  }

  private startTuning(view: JobView, job: ValidatedJob): void {
    this.transition(view, 'tuning', 'tuning a plan for the agents\' devices');
    const activeJob: ActiveJob = {
      view, attempt: view.record.attempt, phase: 'tuning', job, ranks: [], leases: [], assignments: new Map(), timer: null, abort: new AbortController(),
    };
    this.active.set(view.id, activeJob);
    void this.runTuning(activeJob);
  }

  private create(id: string, job: ValidatedJob, spec: JobSpec, planJson: string | null): JobView {
    const record = this.o.store.createJob({ id, name: job.name, requestJson: JSON.stringify(spec), planJson });
    const view = new JobView(record, spec);
    this.views.set(id, view);
    view.emit(view.stateEvent('submitted'));
    this.log(`job ${id} (${job.name}) submitted`);
    return view;
  }

  private transition(view: JobView, state: JobState, message: string, update: TransitionUpdate = {}, planJson?: string): void {
    view.record = this.o.store.transition(view.id, state, message, Date.now(), { step: view.step, loss: view.loss, ...update });
    view.emit(view.stateEvent(message, planJson));
    this.log(`job ${view.id}: ${state}${message ? ` (${message})` : ''}`);
    if (isTerminal(state)) this.o.logs.closeJob(view.id);
  }

  private async runTuning(a: ActiveJob): Promise<void> {
    const view = a.view;
    try {
      const agents = this.chooseAgents(a.job.agents);
      let free = agents.map((agent) => ({ agent, free: agent.devices.length - this.busyDevices(agent.id).size }));
      // Every device busy: tune for the whole of them, and wait in the queue for them afterwards.
      if (free.every((f) => f.free <= 0)) free = agents.map((agent) => ({ agent, free: agent.devices.length }));
      const target = tuningTarget(a.job, free);
      let lastProgress = 0;
      const limit = a.job.tune?.timeLimit || this.o.tuneTimeLimitS;
      const tuned = await tuneJob(a.job, target, {
        timeLimitS: limit,
        signal: a.abort!.signal,
        onStopped: (how, afterS) => this.log(how === 'stopped'
          ? `job ${view.id}: the search stopped ${afterS.toFixed(2)} s after it was told to`
          : `job ${view.id}: the search did not stop within ${afterS.toFixed(1)} s of being told to; its thread was terminated`),
        onProgress: (p) => {
          const now = Date.now();
          if (now - lastProgress < PROGRESS_EVERY_MS) return;
          lastProgress = now;
          view.emit({ jobId: view.id, time: now / 1000, event: 'tuneProgress', tuneProgress: {
            phase: p.phase, done: p.done, total: p.total, candidatesEvaluated: p.candidatesEvaluated,
            bestIterationTime: p.bestIterationTimeS ?? 0, elapsed: p.elapsedS,
          } });
        },
      }, this.o.remoteTuner);
      if (view.record.state !== 'tuning') return; // cancelled meanwhile
      const early = tuned.stoppedBy === 'time-limit' ? stoppedEarlyNote(limit, tuned) : '';
      if (early) this.log(`job ${view.id}: ${early}`);
      const planJson = JSON.stringify(tuned.plan);
      this.o.store.setPlan(view.id, planJson, tuned.predicted ? JSON.stringify(tuned.predicted) : null);
      view.record = this.o.store.getJob(view.id)!;
      const chosen = this.chooseAgents(a.job.agents);
      this.checkFitsIdle(tuned.plan, a.job, chosen);
      this.active.delete(view.id);
      let prepared: Prepared | null = null;
      let busy = `${this.queue.length} job(s) queued ahead`;
      if (this.queue.length === 0 || a.job.noQueue) {
        try {
          prepared = this.prepare(tuned.plan, a.job, chosen);
        } catch (err) {
          if (a.job.noQueue) throw err;
          busy = (err as Error).message;
        }
      }
      if (!prepared) {
        this.enqueue(view, a.job, busy);
        return;
      }
      this.transition(view, 'placing', `tuned: ${tuned.plan.stages.length} stage(s) on ${prepared.placement.length} devices${early ? ` (${early})` : ''}`, {}, planJson);
      this.dispatch(view, a.job, tuned.plan, prepared, view.record.attempt, false);
    } catch (err) {
      if (this.active.get(view.id) === a) this.active.delete(view.id);
      if (err instanceof TuningAborted) return;
      if (!isTerminal(view.record.state) && view.record.state !== 'cancelling') {
        this.transition(view, 'failed', (err as Error).message);
      }
    }
  }

  /** The live agents a job may use: all, or those named by id or host name. */
  private chooseAgents(names: string[]): AgentRecord[] {
    const alive = this.o.registry.alive();
    if (alive.length === 0) throw new RequestError(status.FAILED_PRECONDITION, 'no live agent is registered');
    if (names.length === 0) return alive;
    const chosen = new Map<string, AgentRecord>();
    names.forEach((name, i) => {
      const found = alive.filter((a) => a.id === name || a.hostName === name);
      if (found.length === 0) {
        throw new RequestError(status.INVALID_ARGUMENT,
          `agents[${i}]: no live agent with id or host name "${name}" (live: ${alive.map((a) => `${a.id} on ${a.hostName}`).join(', ')})`);
      }
      for (const a of found) chosen.set(a.id, a);
    });
    return [...chosen.values()];
  }

  private busyDevices(agentId: string): Set<number> {
    const busy = new Set<number>();
    for (const a of this.active.values()) for (const r of a.ranks) if (r.agentId === agentId && !DONE_STATES.has(r.state)) busy.add(r.deviceIndex);
    return busy;
  }

  /** Placement, backend and rendezvous, or a RequestError with the reason. */
  private prepare(plan: Plan, job: ValidatedJob, agents: AgentRecord[]): Prepared {
    const placementAgents: PlacementAgent[] = agents.map((a) => ({
      id: a.id,
      host: a.hostName,
      devices: a.devices.map((d) => ({ index: d.index, kind: d.kind, memoryBytes: d.memoryBytes })),
      busy: [...this.busyDevices(a.id)],
    }));
    const placed = placePlan(plan, placementAgents);
    if (!placed.ok) throw new RequestError(status.FAILED_PRECONDITION, `cannot place the plan: ${placed.reason}`);
    const backend = resolveBackend(job.backend, placed.ranks, this.o.registry);
    if (!backend.ok) throw new RequestError(status.FAILED_PRECONDITION, backend.reason);
    const rdv = buildRendezvous(backend.backend, placed.ranks, this.o.registry);
    if (!rdv.ok) throw new RequestError(status.RESOURCE_EXHAUSTED, rdv.reason);
    return { placement: placed.ranks, backend: backend.backend, rendezvous: rdv.rendezvous, leases: rdv.leases };
  }

  /** Sends every agent its ranks of this attempt. */
  private dispatch(view: JobView, job: ValidatedJob, plan: Plan, p: Prepared, attempt: number, resume: boolean): void {
    const ranks: RankRuntime[] = p.placement.map((r) => ({
      rank: r.rank, stage: r.stage, agentId: r.agentId, hostName: r.host, deviceIndex: r.deviceIndex,
      state: 'WORKER_STATE_ASSIGNED', exitCode: 0, checkpointStep: 0,
    }));
    const a: ActiveJob = { view, attempt, phase: 'live', job, ranks, leases: p.leases, assignments: new Map(), timer: null };
    const run = { ...job.run, resume: resume || job.run.resume };
    for (const agentId of new Set(ranks.map((r) => r.agentId))) {
      a.assignments.set(agentId, {
        jobId: view.id,
        attempt,
        worldSize: ranks.length,
        planJson: JSON.stringify(plan),
        modelJson: JSON.stringify(job.model),
        trainingJson: JSON.stringify(job.training),
        run,
        backend: p.backend === 'nccl' ? 'BACKEND_NCCL' : 'BACKEND_CPU',
        rendezvous: p.rendezvous,
        ranks: ranks.filter((r) => r.agentId === agentId).map((r) => ({ rank: r.rank, stage: r.stage, deviceIndex: r.deviceIndex })),
      });
    }
    this.active.set(view.id, a);
    view.liveWorkers = () => workerInfos(a.ranks);
    const hosts = new Set(ranks.map((r) => r.agentId)).size;
    // Kept so that a restarted coordinator that adopts these workers reserves their ports again.
    this.o.store.setPortLeases(view.id, p.leases);
    this.transition(view, 'starting', `${ranks.length} rank(s) assigned to ${hosts} agent(s), backend ${p.backend}`, {
      attempt, workersJson: JSON.stringify(workerInfos(ranks)),
    });
    for (const [agentId, assign] of a.assignments) this.o.registry.send(agentId, { assign });
  }

  // ---- resume and cancel ------------------------------------------------------------------------

  private resume(id: string): Job {
    const view = this.view(id);
    checkJobId(id, 'resume_job_id');
    const r = view.record;
    if (!isResumable(r.state)) {
      throw new RequestError(status.FAILED_PRECONDITION, `job ${id} is ${r.state}; only an interrupted or failed job can be resumed`);
    }
    const stopping = this.o.registry.alive().filter((ag) => ag.workers.some((w) => w.jobId === id)).map((ag) => ag.id);
    if (this.active.has(id) || stopping.length > 0) {
      throw new RequestError(status.FAILED_PRECONDITION,
        `workers of job ${id} are still stopping${stopping.length ? ` on ${stopping.join(', ')}` : ''}; try again in a few seconds`);
    }
    if (!r.planJson) throw new RequestError(status.FAILED_PRECONDITION, `job ${id} has no plan (it never finished tuning): submit it again`);
    const job = validateJobSpec(view.spec as Parameters<typeof validateJobSpec>[0]);
    const plan = parsePlan(JSON.parse(r.planJson), { model: job.model });
    const prepared = this.prepare(plan, job, this.chooseAgents(job.agents));
    const from = r.lastCheckpointStep !== null
      ? `from its newest checkpoint that verifies (last recorded: step ${r.lastCheckpointStep})` : 'from its newest checkpoint that verifies, if any (none recorded)';
    this.transition(view, 'placing', `resuming ${from}`, { attempt: r.attempt + 1 });
    this.dispatch(view, job, plan, prepared, r.attempt + 1, true);
    return view.toJob();
  }

  cancel(id: string, reason: string): Job {
    checkReason(reason);
    const view = this.view(id);
    const state = view.record.state;
    if (isTerminal(state) || state === 'cancelling') return view.toJob();
    const why = reason || 'cancelled by the user';
    const a = this.active.get(id);
    if (!a || a.phase === 'tuning') {
      a?.abort?.abort();
      this.active.delete(id);
      const queued = this.queue.indexOf(id);
      if (queued >= 0) this.queue.splice(queued, 1);
      this.queuedJobs.delete(id);
      this.transition(view, 'cancelled', why);
      return view.toJob();
    }
    this.transition(view, 'cancelling', why);
    this.stopWorkers(a, why);
    this.finishIfAllDone(a);
    return view.toJob();
  }

  // ---- workers' events --------------------------------------------------------------------------

  reportEvents(agentId: string, events: WorkerEvent__Output[]): void {
    this.o.registry.touch(agentId);
    for (const ev of events) {
      const a = this.active.get(ev.jobId);
      if (!a || ev.attempt !== a.attempt || a.phase === 'tuning') continue; // stale attempt or unknown job
      const rank = a.ranks[ev.rank];
      if (!rank || rank.agentId !== agentId) continue;
      const view = a.view;
      const forward = (): void => {
        const event: JobEvent = { jobId: view.id, time: ev.time || Date.now() / 1000, event: 'worker', worker: ev };
        this.o.logs.append(view.id, event);
        view.emit(event);
      };
      switch (ev.event) {
        case 'started':
          if (rank.state === 'WORKER_STATE_ASSIGNED') rank.state = 'WORKER_STATE_RUNNING';
          forward();
          if (a.phase === 'live' && view.record.state === 'starting' && a.ranks.every((r) => r.state !== 'WORKER_STATE_ASSIGNED')) {
            this.transition(view, 'running', `all ${a.ranks.length} workers started`, { startedAt: Date.now() });
          }
          break;
        case 'metrics': {
          const m = ev.metrics!;
          view.step = Math.max(view.step, m.step);
          if (m.loss !== undefined && m.loss !== null && m.step >= view.lossStep) {
            view.loss = m.loss;
            view.lossStep = m.step;
          }
          forward();
          break;
        }
        case 'log':
          forward();
          break;
        case 'checkpoint': {
          if (ev.checkpoint!.resumed) {
            // The workers verified and loaded this checkpoint (every rank the same step): the record says so too.
            rank.checkpointStep = ev.checkpoint!.step;
            if (ev.rank === 0) this.onResumed(view, ev.checkpoint!.step, ev.checkpoint!.dir);
            forward();
            break;
          }
          rank.checkpointStep = Math.max(rank.checkpointStep, ev.checkpoint!.step);
          const complete = Math.min(...a.ranks.map((r) => r.checkpointStep));
          if (complete > 0 && complete > (view.record.lastCheckpointStep ?? 0)) {
            this.o.store.setCheckpoint(view.id, complete);
            this.o.store.setProgress(view.id, view.step, view.loss);
            view.record = this.o.store.getJob(view.id)!;
          }
          forward();
          break;
        }
        case 'exited': {
          const x = ev.exited!;
          rank.state = 'WORKER_STATE_EXITED';
          rank.exitCode = x.exitCode;
          forward();
          this.onExit(a, rank, x.exitCode, x.signal, x.message);
          break;
        }
        default:
          break;
      }
    }
  }

  private onResumed(view: JobView, step: number, dir: string): void {
    view.step = step;
    this.o.store.setCheckpoint(view.id, step);
    this.o.store.setProgress(view.id, step, view.loss);
    view.record = this.o.store.getJob(view.id)!;
    view.emit({ jobId: view.id, time: Date.now() / 1000, event: 'worker', worker: {
      jobId: view.id, attempt: view.record.attempt, rank: 0, time: Date.now() / 1000, event: 'log',
      log: { stream: 'LOG_STREAM_SYSTEM', text: `the workers verified and resumed from the checkpoint of step ${step} (${dir})` },
    } });
    this.log(`job ${view.id}: resumed from the checkpoint of step ${step}`);
  }

  /**
   * A rank that failed because a peer went away (the executor names it: "peer rank N") is usually
   * not the cause: say where that peer ran and how long its agent has been silent, so a dead host
   * is named at once, before its agent is declared lost.
   */
  private peerBlame(a: ActiveJob, rank: RankRuntime, message: string): string {
    // A failure can travel through several ranks ("peer rank 0 aborted: ... connection to peer rank 3
    // was closed"): the deepest peer mentioned that ran on another agent is the likeliest cause.
    const peers = [...message.matchAll(/peer rank (\d+)/g)].map((m) => a.ranks[Number(m[1])])
      .filter((p): p is RankRuntime => p !== undefined && p.agentId !== rank.agentId);
    const peer = peers[peers.length - 1];
    if (!peer) return '';
    const agent = this.o.registry.get(peer.agentId);
    const silence = !agent ? 'not registered' : agent.state === 'lost' ? 'lost' : `last heard ${this.o.registry.silentS(agent).toFixed(1)} s ago`;
    return ` [peer rank ${peer.rank} ran on agent ${peer.agentId} (host ${peer.hostName}): ${silence}]`;
  }

  private onExit(a: ActiveJob, rank: RankRuntime, code: number, signal: string, message: string): void {
    const state = a.view.record.state;
    if (a.phase === 'draining' || state === 'cancelling') {
      this.finishIfAllDone(a);
      return;
    }
    if (code !== 0 || signal) {
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      this.fail(a, `rank ${rank.rank} (stage ${rank.stage}) on agent ${rank.agentId} (host ${rank.hostName}) ${how}${message ? `: ${message}` : ''}${this.peerBlame(a, rank, message)}`);
      return;
    }
    if (a.ranks.every((r) => r.state === 'WORKER_STATE_EXITED' && r.exitCode === 0)) {
      this.release(a);
      this.transition(a.view, 'succeeded', `all ${a.ranks.length} workers finished`, { workersJson: JSON.stringify(workerInfos(a.ranks)) });
    }
  }

  /** Fails the job and stops its other workers; the devices stay busy until they are gone. */
  /** Fails the job and stops its other workers; with restarts left (maxRestarts) it then resumes by itself from its newest verified checkpoint. */
  private fail(a: ActiveJob, reason: string): void {
    a.phase = 'draining';
    this.recovering.delete(a.view.id);
    const restart = a.job.maxRestarts > a.attempt && a.view.record.planJson !== null;
    const message = restart ? `${reason}; resuming by itself (restart ${a.attempt + 1} of ${a.job.maxRestarts})` : reason;
    this.transition(a.view, 'failed', message, { workersJson: JSON.stringify(workerInfos(a.ranks)) });
    this.stopWorkers(a, `job failed: ${reason}`);
    this.finishIfAllDone(a);
    if (restart) this.autoResume(a.view.id, Date.now() + (this.o.stopGraceS + 10) * 1000);
  }

  private stopWorkers(a: ActiveJob, reason: string): void {
    const agents = new Set(a.ranks.filter((r) => !DONE_STATES.has(r.state)).map((r) => r.agentId));
    for (const agentId of agents) this.sendStop(agentId, a.view.id, a.attempt, reason);
    a.assignments.clear();
    // Workers that never report their exit (their agent vanished without being declared lost yet)
    // must not keep the job in CANCELLING or its devices busy forever.
    a.timer ??= setTimeout(() => this.forceDone(a), (this.o.stopGraceS + 5) * 1000);
    a.timer.unref();
  }

  private sendStop(agentId: string, jobId: string, attempt: number, reason: string): void {
    this.stopSentAt.set(`${agentId}/${jobId}/${attempt}`, Date.now());
    const stop: AgentCommand = { stop: { jobId, attempt, reason, gracePeriod: this.o.stopGraceS } };
    this.o.registry.send(agentId, stop);
  }

  private forceDone(a: ActiveJob): void {
    for (const r of a.ranks) if (!DONE_STATES.has(r.state)) r.state = 'WORKER_STATE_LOST';
    this.finishIfAllDone(a);
  }

  private finishIfAllDone(a: ActiveJob): void {
    if (!a.ranks.every((r) => DONE_STATES.has(r.state))) return;
    this.release(a);
    if (a.view.record.state === 'cancelling') {
      this.transition(a.view, 'cancelled', `${a.view.record.message}; every worker stopped`, { workersJson: JSON.stringify(workerInfos(a.ranks)) });
    }
  }

  private release(a: ActiveJob): void {
    if (a.timer) clearTimeout(a.timer);
    a.timer = null;
    for (const l of a.leases) this.o.registry.releasePorts(l.address, l.ports);
    a.leases = [];
    if (this.active.get(a.view.id) === a) this.active.delete(a.view.id);
    const final = workerInfos(a.ranks);
    a.view.liveWorkers = () => final;
    // Devices came free: the queue may move (after the caller's own transition).
    setImmediate(() => this.pumpQueue());
  }

  // ---- agents -----------------------------------------------------------------------------------

  onAgentLost(agent: AgentRecord, silentS: number): void {
    this.log(`agent ${agent.id} (${agent.hostName}) lost after ${silentS.toFixed(1)} s of silence`);
    for (const a of [...this.active.values()]) {
      const mine = a.ranks.filter((r) => r.agentId === agent.id && !DONE_STATES.has(r.state));
      if (mine.length === 0) continue;
      for (const r of mine) r.state = 'WORKER_STATE_LOST';
      if (a.phase === 'live' && a.view.record.state !== 'cancelling') {
        this.fail(a, `agent ${agent.id} (host ${agent.hostName}) lost: no heartbeat for ${silentS.toFixed(1)} s; ` +
          `its rank(s) ${mine.map((r) => r.rank).join(', ')} are gone`);
      } else this.finishIfAllDone(a);
    }
  }

  /** On (re)connection: the assignments the agent still holds, and stops for what it must not run. */
  onAgentConnected(agent: AgentRecord): void {
    setImmediate(() => this.pumpQueue());
    for (const a of this.active.values()) {
      const assign = a.assignments.get(agent.id);
      if (assign) this.o.registry.send(agent.id, { assign });
      else if (this.recovering.has(a.view.id)) continue; // its workers run on: the heartbeats tell which
      else if (a.ranks.some((r) => r.agentId === agent.id && !DONE_STATES.has(r.state))) {
        this.sendStop(agent.id, a.view.id, a.attempt, 'the job is stopping');
      }
    }
  }

  /**
   * Heartbeat reconciliation: workers the agent runs that belong to no running attempt are stopped,
   * and a running rank that its agent has not listed for a heartbeat timeout is taken as exited
   * (its exit event never arrived), so a job is never left running with no worker alive.
   */
  onHeartbeat(agent: AgentRecord): void {
    this.applyHeartbeatProgress(agent);
    this.reconcileMissingWorkers(agent);
    const now = Date.now();
    for (const w of agent.workers) {
      const a = this.active.get(w.jobId);
      const wanted = a && a.phase === 'live' && a.attempt === w.attempt && a.view.record.state !== 'cancelling'
        && a.ranks[w.rank]?.agentId === agent.id;
      if (wanted) continue;
      const key = `${agent.id}/${w.jobId}/${w.attempt}`;
      if (now - (this.stopSentAt.get(key) ?? 0) < 2000) continue;
      this.sendStop(agent.id, w.jobId, w.attempt, 'not a running job of this coordinator');
    }
  }

  /**
   * What the heartbeat says of the workers of live jobs: a recovering job's rank is running again,
   * and the job's step and complete checkpoint are at least what its workers reached (they train on
   * while the coordinator is away, and their metric events may have been dropped meanwhile).
   */
  private applyHeartbeatProgress(agent: AgentRecord): void {
    for (const w of agent.workers) {
      const a = this.active.get(w.jobId);
      const rank = a?.ranks[w.rank];
      if (!a || a.phase !== 'live' || a.attempt !== w.attempt || !rank || rank.agentId !== agent.id) continue;
      const view = a.view;
      if (rank.state === 'WORKER_STATE_ASSIGNED' && this.recovering.has(view.id)) rank.state = 'WORKER_STATE_RUNNING';
      rank.checkpointStep = Math.max(rank.checkpointStep, Number(w.checkpointStep ?? 0));
      const step = Number(w.step ?? 0);
      view.step = Math.max(view.step, step);
      if (w.loss !== undefined && w.loss !== null && step >= view.lossStep) {
        view.loss = w.loss;
        view.lossStep = step;
      }
      const complete = Math.min(...a.ranks.map((r) => r.checkpointStep));
      if (complete > (view.record.lastCheckpointStep ?? 0)) {
        this.o.store.setCheckpoint(view.id, complete);
        this.o.store.setProgress(view.id, view.step, view.loss);
        view.record = this.o.store.getJob(view.id)!;
      }
    }
  }

  /**
   * At start-up: jobs that were starting or running when the previous coordinator stopped keep
   * running (agents keep their workers through an outage). They wait `graceS` for their agents to
   * come back and list the workers in their heartbeats; ranks never listed are gone, and the attempt
   * fails; with restarts left (maxRestarts) the job resumes itself from its newest verified checkpoint.
   */
  recoverRunning(graceS: number): string[] {
    const out: string[] = [];
    for (const r of this.o.store.unfinishedJobs()) {
      if (r.state !== 'starting' && r.state !== 'running') continue;
      const view = this.views.get(r.id) ?? this.loadView(r);
      let job: ValidatedJob;
      let infos: Array<Required<Pick<WorkerInfo, 'rank' | 'stage' | 'agentId' | 'hostName' | 'deviceIndex' | 'exitCode'>> & { state?: string }>;
      try {
        job = validateJobSpec(view.spec as Parameters<typeof validateJobSpec>[0]);
        infos = JSON.parse(r.workersJson ?? '[]') as typeof infos;
        if (infos.length === 0) throw new Error('no workers recorded');
      } catch (err) {
        this.transition(view, 'interrupted', `coordinator restarted while the job was ${r.state}; cannot recover it: ${(err as Error).message}`);
        continue;
      }
      const ranks: RankRuntime[] = infos.map((w) => ({
        rank: w.rank, stage: w.stage, agentId: w.agentId, hostName: w.hostName, deviceIndex: w.deviceIndex,
        state: w.state === 'WORKER_STATE_EXITED' && w.exitCode === 0 ? 'WORKER_STATE_EXITED' : 'WORKER_STATE_ASSIGNED',
        exitCode: w.exitCode ?? 0, checkpointStep: r.lastCheckpointStep ?? 0,
      }));
      // The workers keep the ports they were given: no other job may be handed them (released when the job ends).
      let leases: PortLease[] = [];
      try {
        leases = this.o.store.portLeases(r.id);
      } catch (err) {
        this.log(`job ${r.id}: its recorded worker ports are unreadable (${(err as Error).message}); they are not reserved`);
      }
      for (const l of leases) this.o.registry.reservePorts(l.address, l.ports);
      const a: ActiveJob = { view, attempt: r.attempt, phase: 'live', job, ranks, leases, assignments: new Map(), timer: null };
      view.step = Math.max(view.step, r.step ?? 0);
      this.active.set(r.id, a);
      view.liveWorkers = () => workerInfos(a.ranks);
      this.recovering.add(r.id);
      const deadline = setTimeout(() => this.endRecovery(a), graceS * 1000);
      deadline.unref();
      const held = leases.reduce((n, l) => n + l.ports.length, 0);
      this.log(`job ${r.id}: running when the coordinator stopped; ${held} worker port(s) reserved again; waiting up to ${graceS} s for its agents to list its workers`);
      out.push(r.id);
    }
    return out;
  }

  private endRecovery(a: ActiveJob): void {
    const id = a.view.id;
    if (!this.recovering.delete(id) || this.active.get(id) !== a || a.phase !== 'live') return;
    const gone = a.ranks.filter((r) => r.state === 'WORKER_STATE_ASSIGNED');
    if (gone.length === 0) {
      if (a.view.record.state === 'starting') this.transition(a.view, 'running', `all ${a.ranks.length} workers still running after the coordinator restart`);
      return;
    }
    for (const r of gone) r.state = 'WORKER_STATE_LOST';
    this.fail(a, `rank(s) ${gone.map((r) => r.rank).join(', ')} (agent(s) ${[...new Set(gone.map((r) => r.agentId))].join(', ')}) ` +
      'were gone when the coordinator came back');
  }

  /** Resumes a failed job once its remaining workers are gone (resume refuses while they stop). */
  private autoResume(id: string, until: number): void {
    const retry = setTimeout(() => {
      try {
        this.resume(id);
      } catch (err) {
        if (Date.now() < until && err instanceof RequestError && /still stopping/.test(err.message)) this.autoResume(id, until);
        else this.log(`job ${id}: cannot resume it by itself: ${(err as Error).message}`);
      }
    }, 500);
    retry.unref();
  }

  private reconcileMissingWorkers(agent: AgentRecord): void {
    const now = performance.now();
    const listed = new Set(agent.workers.map((w) => `${w.jobId}#${w.attempt}#${w.rank}`));
    for (const a of [...this.active.values()]) {
      if (a.phase === 'tuning') continue;
      for (const r of a.ranks) {
        if (r.agentId !== agent.id || r.state !== 'WORKER_STATE_RUNNING') continue;
        if (listed.has(`${a.view.id}#${a.attempt}#${r.rank}`)) {
          r.missingSince = undefined;
          continue;
        }
        r.missingSince ??= now;
        if (now - r.missingSince < this.o.registry.heartbeatTimeoutS * 1000) continue;
        r.state = 'WORKER_STATE_LOST';
        const reason = `rank ${r.rank} (stage ${r.stage}) on agent ${r.agentId} (host ${r.hostName}): its worker is gone but its exit was never reported`;
        if (a.phase === 'live' && a.view.record.state !== 'cancelling') this.fail(a, reason);
        else this.finishIfAllDone(a);
      }
    }
  }

  close(): void {
    this.closed = true;
    for (const a of this.active.values()) {
      if (a.timer) clearTimeout(a.timer);
      a.abort?.abort();
    }
    for (const v of this.views.values()) {
      for (const w of v.watchers) w.end();
      v.watchers.clear();
    }
  }
}

/** What a job's log says of a search stopped at its time limit: the plan kept and how far from the optimum it may be. */
function stoppedEarlyNote(limitS: number, tuned: TunedPlan): string {
  const iterS = Number(tuned.predicted?.iterationTime ?? NaN);
  const iter = Number.isFinite(iterS) ? `${iterS.toPrecision(4)} s per iteration` : 'no prediction';
  const gap = tuned.gap;
  const proven = gap && gap.relative !== null && Number.isFinite(gap.lowerBoundS)
    ? `proven gap ${(gap.relative * 100).toFixed(1)}% (no plan of the space is faster than ${gap.lowerBoundS.toPrecision(4)} s per iteration)`
    : 'gap unknown';
  return `tuning stopped at its time limit of ${limitS} s: kept the best plan found (${iter}), ${proven}`;
}

function workerInfos(ranks: RankRuntime[]): WorkerInfo[] {
  return ranks.map((r) => ({
    rank: r.rank, stage: r.stage, agentId: r.agentId, hostName: r.hostName, deviceIndex: r.deviceIndex, state: r.state, exitCode: r.exitCode,
  }));
}
