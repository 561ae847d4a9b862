// The agent's Prometheus metrics (prom-client): its devices and workers, and each rank's training
// figures as its worker reports them (the executor's StepMetrics, which the agent already forwards
// to the coordinator): step, step time, tokens/s, loss, compute and collective-wait seconds, and
// memory peaks per pool. Per-rank series carry `job` and `rank` labels; those of the
// RANK_SERIES_JOBS most recent jobs are kept (older ones are removed, so that a long-lived agent
// does not grow a series per job it ever ran).
import type * as PromClient from 'prom-client';
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Device, RunningWorker, WorkerEvent } from '@mist/rpc';

export interface AgentMetricSources {
  devices: readonly Device[];
  workers: () => RunningWorker[];
  agentId: () => string | null;
  hostName: string;
  version: string;
}

/** Jobs whose per-rank series are kept. */
export const RANK_SERIES_JOBS = 8;

/** Step-time buckets in seconds: 10 ms (a tiny CPU model) to 5 min (a large model's iteration with deep accumulation). */
export const STEP_TIME_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

type RankLabels = 'job' | 'rank';

/** "DEVICE_KIND_CUDA" -> "cuda". */
const kindLabel = (kind: unknown): string => String(kind ?? 'unknown').replace(/^DEVICE_KIND_/, '').toLowerCase();

export class AgentMetrics {
  readonly registry: Registry;
  private readonly step: Gauge<RankLabels>;
  private readonly stepSeconds: Gauge<RankLabels>;
  private readonly tokensPerSecond: Gauge<RankLabels>;
  private readonly loss: Gauge<RankLabels>;
  private readonly computeSeconds: Gauge<RankLabels>;
  private readonly collectiveSeconds: Gauge<RankLabels>;
  private readonly memoryPeak: Gauge<RankLabels | 'pool'>;
  private readonly stepTime: Histogram;
  private readonly steps: Counter;
  private readonly starts: Counter;
  private readonly exits: Counter<'result'>;
  /** job id -> the label sets recorded for it, oldest job first (Map keeps insertion order). */
  private readonly series = new Map<string, Array<{ gauge: Gauge<string>; labels: Record<string, string> }>>();

  constructor(sources: AgentMetricSources) {
    // prom-client is loaded here, not by every importer of this package (~30 ms).
    const { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } = require('prom-client') as typeof PromClient;
    this.registry = new Registry();
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: 'mist_agent_info', help: 'Always 1; the labels say which agent this is (agent is empty until registered)',
      labelNames: ['agent', 'host', 'version'], registers,
      collect() {
        this.reset();
        this.set({ agent: sources.agentId() ?? '', host: sources.hostName, version: sources.version }, 1);
      },
    });
    const devices = new Gauge({ name: 'mist_agent_devices', help: 'Devices this agent offers, by kind', labelNames: ['kind'], registers });
    const byKind = new Map<string, number>();
    for (const d of sources.devices) byKind.set(kindLabel(d.kind), (byKind.get(kindLabel(d.kind)) ?? 0) + 1);
    for (const [kind, n] of byKind) devices.set({ kind }, n);
    new Gauge({
      name: 'mist_agent_workers', help: 'Executor workers running now', registers,
      collect() {
        this.set(sources.workers().length);
      },
    });
    this.starts = new Counter({ name: 'mist_agent_worker_starts_total', help: 'Executor workers started', registers });
    this.exits = new Counter({
      name: 'mist_agent_worker_exits_total', help: 'Executor workers that exited, by result (ok: code 0; failed: another code; signal: killed)',
      labelNames: ['result'], registers,
    });
    this.steps = new Counter({ name: 'mist_agent_steps_total', help: 'Training iterations reported by this agent\'s ranks (one per rank per step)', registers });
    this.stepTime = new Histogram({
      name: 'mist_agent_step_time_seconds', help: 'Iteration time reported by this agent\'s ranks', buckets: STEP_TIME_BUCKETS, registers,
    });
    const rankGauge = (name: string, help: string): Gauge<RankLabels> => new Gauge({ name, help, labelNames: ['job', 'rank'], registers });
    this.step = rankGauge('mist_agent_rank_step', 'Last iteration a rank reported');
    this.stepSeconds = rankGauge('mist_agent_rank_step_seconds', 'Seconds of a rank\'s last reported iteration');
    this.tokensPerSecond = rankGauge('mist_agent_rank_tokens_per_second', 'Tokens per second of a rank\'s last reported iteration (the job\'s global batch over the step time)');
    this.loss = rankGauge('mist_agent_rank_loss', 'Training loss of the last reported iteration (ranks of the last pipeline stage only)');
    this.computeSeconds = rankGauge('mist_agent_rank_compute_seconds', 'Seconds a rank computed in its last reported iteration');
    this.collectiveSeconds = rankGauge('mist_agent_rank_collective_wait_seconds',
      'Seconds a rank waited on collectives and pipeline send/recv in its last reported iteration (exposed communication and bubbles)');
    this.memoryPeak = new Gauge({
      name: 'mist_agent_rank_memory_peak_bytes', help: 'Peak bytes of a memory pool of a rank over its last reported iterations',
      labelNames: ['job', 'rank', 'pool'], registers,
    });
  }

  private setRank<L extends string>(gauge: Gauge<L>, jobId: string, labels: Record<L, string>, value: number): void {
    let list = this.series.get(jobId);
    if (!list) {
      list = [];
      this.series.set(jobId, list);
      while (this.series.size > RANK_SERIES_JOBS) {
        const [oldest, old] = this.series.entries().next().value as [string, typeof list];
        for (const s of old) s.gauge.remove(s.labels);
        this.series.delete(oldest);
      }
    }
    const key = JSON.stringify(labels);
    if (!list.some((s) => s.gauge === (gauge as Gauge<string>) && JSON.stringify(s.labels) === key)) list.push({ gauge: gauge as Gauge<string>, labels });
    gauge.set(labels, value);
  }

  /** Takes in one worker event (every event the agent forwards passes here first). */
  observe(e: WorkerEvent): void {
    const job = e.jobId ?? '';
    const labels = { job, rank: String(e.rank ?? 0) };
    if (e.started) this.starts.inc();
    if (e.exited) this.exits.inc({ result: e.exited.signal ? 'signal' : e.exited.exitCode === 0 ? 'ok' : 'failed' });
    const m = e.metrics;
    if (!m) return;
    const stepTime = Number(m.stepTime ?? 0);
    this.steps.inc();
    if (stepTime > 0) this.stepTime.observe(stepTime);
    this.setRank(this.step, job, labels, Number(m.step ?? 0));
    this.setRank(this.stepSeconds, job, labels, stepTime);
    this.setRank(this.tokensPerSecond, job, labels, Number(m.tokensPerSecond ?? 0));
    this.setRank(this.computeSeconds, job, labels, Number(m.computeTime ?? 0));
    this.setRank(this.collectiveSeconds, job, labels, Number(m.waitTime ?? 0));
    if (m.loss !== undefined && m.loss !== null) this.setRank(this.loss, job, labels, Number(m.loss));
    for (const p of m.memoryPeaks ?? []) this.setRank(this.memoryPeak, job, { ...labels, pool: p.pool ?? '' }, Number(p.bytes ?? 0));
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
