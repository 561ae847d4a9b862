// The jobs of one coordinator: submission (validate, tune or take the plan, place, hand out the
// rendezvous, assign ranks to agents), the workers' events (start, metrics, logs, checkpoints,
// exits), failure (a lost agent or a failed worker fails the job and stops every other worker of
// it), cancellation, resume of an interrupted job, and the persistent record of all of it.
import * as crypto from 'node:crypto';
import { parsePlan, type Plan } from '@mist/core';
import {
  type AgentCommand, type Job, type JobAssignment, type JobSpec, type ListJobsRequest__Output,
  status, type SubmitJobRequest__Output, type WorkerEvent__Output, type WorkerInfo, type WorkerState__Output,
} from '@mist/rpc';
import type { AgentRecord, AgentRegistry } from './agent-registry';
import { isResumable, isTerminal, type JobState } from './job-state';
import { type ValidatedJob, validateJobSpec } from './job-spec';
import { JobView, type JobWatcher, protoJobState, statesOfProto } from './job-view';
import { placePlan, type PlacementAgent, type RankPlacement } from './placement';
import { buildRendezvous, type PortLease, resolveBackend, type ResolvedBackend } from './rendezvous';
import type { StateStore, TransitionUpdate } from './state-store';
import { type RemoteTuner, tuneJob, tuningTarget } from './tuning';

/** An error that ends the call with a gRPC status (the service layer maps it). */
export class RequestError extends Error {
  constructor(readonly code: status, message: string) {
    super(message);
    this.name = 'RequestError';
  }
}

interface RankRuntime {
  rank: number;
  stage: number;
  agentId: string;
  hostName: string;
  deviceIndex: number;
  state: WorkerState__Output;
  exitCode: number;
  checkpointStep: number;
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
  log?: (line: string) => void;
}

const DONE_STATES: ReadonlySet<WorkerState__Output> = new Set(['WORKER_STATE_EXITED', 'WORKER_STATE_LOST']);

export class JobManager {
  private readonly views = new Map<string, JobView>();
  private readonly active = new Map<string, ActiveJob>();
  /** When a stop was last sent for (agent, job, attempt), to not repeat it on every heartbeat. */
  private readonly stopSentAt = new Map<string, number>();

  constructor(private readonly o: JobManagerOptions) {
    for (const r of o.store.listJobs()) {
      const view = new JobView(r, JSON.parse(r.requestJson) as JobSpec);
      for (const e of o.store.events(r.id)) {
        view.history.push({ jobId: r.id, time: e.at / 1000, event: 'state', state: { state: protoJobState(e.state), message: e.message, attempt: e.attempt, planJson: '' } });
      }
      this.views.set(r.id, view);
    }
  }

  private log(line: string): void {
    this.o.log?.(line);
  }

  // ---- queries ----------------------------------------------------------------------------------

  getJob(id: string): Job {
    return this.view(id).toJob();
  }

  listJobs(req: ListJobsRequest__Output): Job[] {
    const wanted = new Set(req.states.flatMap((s) => statesOfProto(s)));
    return [...this.views.values()]
      .filter((v) => wanted.size === 0 || wanted.has(v.record.state))
      .sort((a, b) => a.record.createdAt - b.record.createdAt || a.id.localeCompare(b.id))
      .map((v) => v.toJob());
  }

  private view(id: string): JobView {
    const v = this.views.get(id);
    if (!v) throw new RequestError(status.NOT_FOUND, `no job "${id}"`);
    return v;
  }

  /** Streams the job's events to `watcher` (only those recorded so far with `replayOnly`); returns the unsubscribe function. */
  watch(id: string, replay: boolean, watcher: JobWatcher, replayOnly = false): () => void {
    const view = this.view(id);
    if (replay || replayOnly) {
      for (const e of view.history) {
        if (e.event === 'worker' && e.worker?.event === 'log' && !watcher.includeLogs) continue;
        watcher.write(e);
      }
    }
    if (replayOnly) {
      watcher.end();
      return () => undefined;
    }
    if (isTerminal(view.record.state)) {
      if (!replay) watcher.write(view.stateEvent(view.record.message));
      watcher.end();
      return () => undefined;
    }
    view.watchers.add(watcher);
    return () => view.watchers.delete(watcher);
  }

  /** Jobs with workers (or assignments) on this agent now. */
  jobsOnAgent(agentId: string): string[] {
    return [...this.active.values()].filter((a) => a.ranks.some((r) => r.agentId === agentId)).map((a) => a.view.id);
  }

  // ---- submission -------------------------------------------------------------------------------

  async submit(req: SubmitJobRequest__Output): Promise<Job> {
    if (req.resumeJobId) return this.resume(req.resumeJobId);
    const job = validateJobSpec(req.spec);
    const agents = this.chooseAgents(job.agents);
    const id = `job-${crypto.randomBytes(4).toString('hex')}`;
    const spec = req.spec as JobSpec;
    if (job.plan) {
      // Everything that can refuse the job happens before it is recorded: nothing starts.
      const prepared = this.prepare(job.plan, job, agents);
      const view = this.create(id, job, spec, JSON.stringify(job.plan));
      this.transition(view, 'placing', `placing ${prepared.placement.length} ranks`, {}, JSON.stringify(job.plan));
      this.dispatch(view, job, job.plan, prepared, 0, false);
      return view.toJob();
    }
    const view = this.create(id, job, spec, null);
    this.transition(view, 'tuning', 'tuning a plan for the agents\' devices');
    const activeJob: ActiveJob = { view, attempt: 0, phase: 'tuning', job, ranks: [], leases: [], assignments: new Map(), timer: null };
    this.active.set(id, activeJob);
    void this.runTuning(activeJob, agents);
    return view.toJob();
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
  }

  private async runTuning(a: ActiveJob, agents: AgentRecord[]): Promise<void> {
    const view = a.view;
    try {
      const free = agents.map((agent) => ({ agent, free: agent.devices.length - this.busyDevices(agent.id).size }));
      const target = tuningTarget(a.job, free);
      const tuned = await tuneJob(a.job, target, this.o.remoteTuner);
      if (view.record.state !== 'tuning') return; // cancelled meanwhile
      const planJson = JSON.stringify(tuned.plan);
      this.o.store.setPlan(view.id, planJson, tuned.predicted ? JSON.stringify(tuned.predicted) : null);
      view.record = this.o.store.getJob(view.id)!;
      const prepared = this.prepare(tuned.plan, a.job, this.chooseAgents(a.job.agents));
      this.active.delete(view.id);
      this.transition(view, 'placing', `tuned: ${tuned.plan.stages.length} stage(s) on ${prepared.placement.length} devices`, {}, planJson);
      this.dispatch(view, a.job, tuned.plan, prepared, 0, false);
    } catch (err) {
      this.active.delete(view.id);
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
    this.transition(view, 'starting', `${ranks.length} rank(s) assigned to ${hosts} agent(s), backend ${p.backend}`, {
      attempt, workersJson: JSON.stringify(workerInfos(ranks)),
    });
    for (const [agentId, assign] of a.assignments) this.o.registry.send(agentId, { assign });
  }

  // ---- resume and cancel ------------------------------------------------------------------------

  private resume(id: string): Job {
    const view = this.view(id);
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
    const from = r.lastCheckpointStep !== null ? `from the checkpoint of step ${r.lastCheckpointStep}` : 'from the start (no complete checkpoint)';
    this.transition(view, 'placing', `resuming ${from}`, { attempt: r.attempt + 1 });
    this.dispatch(view, job, plan, prepared, r.attempt + 1, true);
    return view.toJob();
  }

  cancel(id: string, reason: string): Job {
    const view = this.view(id);
    const state = view.record.state;
    if (isTerminal(state) || state === 'cancelling') return view.toJob();
    const why = reason || 'cancelled by the user';
    const a = this.active.get(id);
    if (!a || a.phase === 'tuning') {
      this.active.delete(id);
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
      const forward = (): void => view.emit({ jobId: view.id, time: ev.time || Date.now() / 1000, event: 'worker', worker: ev });
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

  private onExit(a: ActiveJob, rank: RankRuntime, code: number, signal: string, message: string): void {
    const state = a.view.record.state;
    if (a.phase === 'draining' || state === 'cancelling') {
      this.finishIfAllDone(a);
      return;
    }
    if (code !== 0 || signal) {
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      this.fail(a, `rank ${rank.rank} (stage ${rank.stage}) on agent ${rank.agentId} (host ${rank.hostName}) ${how}${message ? `: ${message}` : ''}`);
      return;
    }
    if (a.ranks.every((r) => r.state === 'WORKER_STATE_EXITED' && r.exitCode === 0)) {
      this.release(a);
      this.transition(a.view, 'succeeded', `all ${a.ranks.length} workers finished`, { workersJson: JSON.stringify(workerInfos(a.ranks)) });
    }
  }

  /** Fails the job and stops its other workers; the devices stay busy until they are gone. */
  private fail(a: ActiveJob, reason: string): void {
    a.phase = 'draining';
    this.transition(a.view, 'failed', reason, { workersJson: JSON.stringify(workerInfos(a.ranks)) });
    this.stopWorkers(a, `job failed: ${reason}`);
    this.finishIfAllDone(a);
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
    for (const a of this.active.values()) {
      const assign = a.assignments.get(agent.id);
      if (assign) this.o.registry.send(agent.id, { assign });
      else if (a.ranks.some((r) => r.agentId === agent.id && !DONE_STATES.has(r.state))) {
        this.sendStop(agent.id, a.view.id, a.attempt, 'the job is stopping');
      }
    }
  }

  /** Heartbeat reconciliation: workers the agent runs that belong to no running attempt are stopped. */
  onHeartbeat(agent: AgentRecord): void {
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

  close(): void {
    for (const a of this.active.values()) if (a.timer) clearTimeout(a.timer);
    for (const v of this.views.values()) {
      for (const w of v.watchers) w.end();
      v.watchers.clear();
    }
  }
}

function workerInfos(ranks: RankRuntime[]): WorkerInfo[] {
  return ranks.map((r) => ({
    rank: r.rank, stage: r.stage, agentId: r.agentId, hostName: r.hostName, deviceIndex: r.deviceIndex, state: r.state, exitCode: r.exitCode,
  }));
}
