// What the coordinator shows of one job: its persistent record, the events recorded so far (for
// WatchJob's replay) and the streams watching it. Terminal states end every watcher's stream.
import type { Job, JobEvent, JobSpec, JobState as ProtoJobState, Prediction, WorkerInfo } from '@mist/rpc';
import { isTerminal, type JobState } from './job-state';
import type { JobRecord, JobSummaryRecord } from './state-store';

export interface JobWatcher {
  includeLogs: boolean;
  write(event: JobEvent): void;
  end(): void;
}


const PROTO_STATE: Record<JobState, ProtoJobState> = {
  queued: 'JOB_STATE_QUEUED',
  tuning: 'JOB_STATE_TUNING',
  placing: 'JOB_STATE_STARTING',
  starting: 'JOB_STATE_STARTING',
  running: 'JOB_STATE_RUNNING',
  cancelling: 'JOB_STATE_CANCELLING',
  succeeded: 'JOB_STATE_SUCCEEDED',
  failed: 'JOB_STATE_FAILED',
  cancelled: 'JOB_STATE_CANCELLED',
  interrupted: 'JOB_STATE_INTERRUPTED',
};

export function protoJobState(s: JobState): ProtoJobState {
  return PROTO_STATE[s];
}

/** The internal states a proto state stands for (STARTING covers placing and starting). */
export function statesOfProto(s: ProtoJobState | string): JobState[] {
  return (Object.keys(PROTO_STATE) as JobState[]).filter((k) => PROTO_STATE[k] === s);
}

export class JobView {
  /** The job's state changes (its worker events are in JobLogs). */
  readonly history: JobEvent[] = [];
  readonly watchers = new Set<JobWatcher>();
  /** Latest step and loss reported (live; persisted at state changes). */
  step: number;
  loss: number | null;
  lossStep = 0;
  /** Live worker list of the current attempt, when it runs. */
  liveWorkers: (() => WorkerInfo[]) | null = null;

  constructor(
    public record: JobRecord,
    readonly spec: JobSpec,
  ) {
    this.step = record.step;
    this.loss = record.loss;
  }

  get id(): string {
    return this.record.id;
  }

  /** Sends the event to the watchers (a state change is also kept for replay); ends their streams on a terminal state. */
  emit(event: JobEvent): void {
    if (event.event === 'state') this.history.push(event);
    const isLog = event.event === 'worker' && event.worker?.event === 'log';
    for (const w of this.watchers) if (!isLog || w.includeLogs) w.write(event);
    if (event.event === 'state' && isTerminal(this.record.state)) {
      for (const w of this.watchers) w.end();
      this.watchers.clear();
    }
  }

  stateEvent(message: string, planJson?: string, at = Date.now()): JobEvent {
    return {
      jobId: this.id,
      time: at / 1000,
      event: 'state',
      state: { state: protoJobState(this.record.state), message, attempt: this.record.attempt, planJson: planJson ?? '' },
    };
  }

  toJob(): Job {
    const r = this.record;
    let workers: WorkerInfo[] = [];
    if (this.liveWorkers) workers = this.liveWorkers();
    else if (r.workersJson) workers = JSON.parse(r.workersJson) as WorkerInfo[];
    const predicted = r.predictionJson ? (JSON.parse(r.predictionJson) as Prediction) : null;
    const job: Job = {
      id: r.id,
      spec: this.spec,
      state: protoJobState(r.state),
      message: r.message,
      planJson: r.planJson ?? '',
      predicted,
      attempt: r.attempt,
      submitTime: r.createdAt / 1000,
      startTime: r.startedAt !== null ? r.startedAt / 1000 : 0,
      endTime: r.endedAt !== null ? r.endedAt / 1000 : 0,
      workers,
      step: this.step,
      checkpointStep: r.lastCheckpointStep ?? 0,
      ranks: workers.length,
    };
    if (this.loss !== null) job.loss = this.loss;
    return job;
  }
}

/** A job as ListJobs shows it (GetJob has the rest); `live` overlays the step and loss of a running job. */
export function summaryJob(r: JobSummaryRecord, live?: JobView): Job {
  const job: Job = {
    id: r.id,
    spec: { name: r.name },
    state: protoJobState(live?.record.state ?? r.state),
    message: r.message,
    planJson: '',
    predicted: null,
    attempt: r.attempt,
    submitTime: r.createdAt / 1000,
    startTime: r.startedAt !== null ? r.startedAt / 1000 : 0,
    endTime: r.endedAt !== null ? r.endedAt / 1000 : 0,
    workers: [],
    step: live?.step ?? r.step,
    checkpointStep: r.lastCheckpointStep ?? 0,
    ranks: live?.liveWorkers ? live.liveWorkers().length : r.ranks,
  };
  const loss = live ? live.loss : r.loss;
  if (loss !== null) job.loss = loss;
  return job;
}
