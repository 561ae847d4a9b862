// The coordinator's Prometheus metrics (prom-client): jobs by state, the queue, agents and their
// devices, and every RPC's status and latency. Gauges read their source when scraped (the job
// database, the agent registry), so they are never stale; the RPC series are fed by the server's
// call observer (@mist/rpc callObserverInterceptor). Names follow Prometheus' naming guide
// (https://prometheus.io/docs/practices/naming/): base units (seconds), `_total` for counters.
import type * as PromClient from 'prom-client';
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ObservedCall } from '@mist/rpc';
import type { AgentRecord } from './agent-registry';
import { JOB_STATES, type JobState } from './job-state';

export interface CoordinatorMetricSources {
  jobsByState: () => Partial<Record<JobState, number>>;
  agents: () => AgentRecord[];
}

/** Latency buckets in seconds, 1 ms to 30 s: unary calls range from a status read to a submission that validates a plan. */
export const RPC_LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class CoordinatorMetrics {
  readonly registry: Registry;
  private readonly rpcSeconds: Histogram<'method' | 'code'>;
  private readonly rpcCalls: Counter<'method' | 'code'>;

  constructor(sources: CoordinatorMetricSources) {
    // prom-client is loaded here, not by every importer of this package (~30 ms).
    const { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } = require('prom-client') as typeof PromClient;
    this.registry = new Registry();
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: 'mist_coordinator_jobs', help: 'Jobs in the job database, by state', labelNames: ['state'], registers,
      collect() {
        const counts = sources.jobsByState();
        for (const state of JOB_STATES) this.set({ state }, counts[state] ?? 0);
      },
    });
    new Gauge({
      name: 'mist_coordinator_queue_length', help: 'Jobs queued, waiting for devices (or for their tuning to start)', registers,
      collect() {
        this.set(sources.jobsByState().queued ?? 0);
      },
    });
    new Gauge({
      name: 'mist_coordinator_agents', help: 'Registered agents, by state (alive: heartbeating; lost: silent past --heartbeat-timeout)',
      labelNames: ['state'], registers,
      collect() {
        const all = sources.agents();
        for (const state of ['alive', 'lost'] as const) this.set({ state }, all.filter((a) => a.state === state).length);
      },
    });
    new Gauge({
      name: 'mist_coordinator_devices', help: 'Devices the alive agents offer, by kind', labelNames: ['kind'], registers,
      collect() {
        this.reset();
        const byKind = new Map<string, number>();
        for (const a of sources.agents()) {
          if (a.state !== 'alive') continue;
          // "DEVICE_KIND_CUDA" -> "cuda", as on the agents' pages.
          for (const d of a.devices) {
            const kind = String(d.kind).replace(/^DEVICE_KIND_/, '').toLowerCase();
            byKind.set(kind, (byKind.get(kind) ?? 0) + 1);
          }
        }
        for (const [kind, n] of byKind) this.set({ kind }, n);
      },
    });
    new Gauge({
      name: 'mist_coordinator_workers', help: 'Workers the alive agents listed as running in their last heartbeat', registers,
      collect() {
        this.set(sources.agents().filter((a) => a.state === 'alive').reduce((n, a) => n + a.workers.length, 0));
      },
    });
    this.rpcSeconds = new Histogram({
      name: 'mist_coordinator_rpc_duration_seconds', help: 'Duration of unary RPCs, by method and status code',
      labelNames: ['method', 'code'], buckets: RPC_LATENCY_BUCKETS, registers,
    });
    this.rpcCalls = new Counter({
      name: 'mist_coordinator_rpc_calls_total', help: 'RPCs finished (unary and streaming), by method and status code', labelNames: ['method', 'code'], registers,
    });
  }

  /** Records one finished call (the server's `observe` hook). */
  observeRpc(call: ObservedCall): void {
    // "/mist.v1.Coordinator/SubmitJob" -> "mist.v1.Coordinator/SubmitJob"
    const labels = { method: call.path.replace(/^\//, ''), code: call.code };
    this.rpcCalls.inc(labels);
    // A stream's duration is how long it stayed open (hours for WatchAssignments), not a latency.
    if (call.unary) this.rpcSeconds.observe(labels, call.seconds);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
