// startCoordinator: the Coordinator and AgentControl services on one port, with the job state in
// SQLite under `stateDir` (locked: one coordinator per directory), the workers' events of every job
// in `<stateDir>/logs`. Jobs left unfinished by a previous run are marked interrupted first (queued
// ones stay queued).
import * as path from 'node:path';
import {
  addHealthAndReflection, addService, type AuthThrottleOptions, createServer, HEALTH_SERVICE, type MetricsEndpoint, type RpcServer, serveMetrics,
  startServer, stopServer, type ClientOptions, type TlsOptions,
} from '@mist/rpc';
import { AgentRegistry } from './agent-registry';
import { JobLogs } from './job-log';
import { JobManager } from './job-manager';
import { CoordinatorMetrics } from './metrics';
import { agentControlHandlers, coordinatorHandlers } from './service';
import { StateStore } from './state-store';

export interface CoordinatorOptions {
  /** `host:port`; port 0 picks a free one. */
  listen: string;
  /** Directory of the SQLite state (created when missing); `:memory:` keeps nothing. */
  stateDir: string;
  /** Shared token every call must carry. */
  token: string;
  /** When set, the token of the agents' calls (AgentControl), which the user token cannot make (and the reverse). */
  agentToken?: string;
  /** Seconds of silence after which an agent is lost (default 10). */
  heartbeatTimeoutS?: number;
  /** Seconds stopped workers get between SIGTERM and SIGKILL (default 5). */
  stopGraceS?: number;
  tls?: TlsOptions;
  /** Throttling of peers that keep sending wrong tokens (defaults: @mist/rpc DEFAULT_AUTH_THROTTLE; refusals go to `log`). */
  authThrottle?: Partial<Omit<AuthThrottleOptions, 'log' | 'now'>>;
  /** A remote Tuner service to call instead of tuning in-process. */
  tuner?: { address: string; client: ClientOptions };
  /** Start with a new, empty database although the state directory holds other files (its database was lost). */
  init?: boolean;
  /** Cap of one job's log files in bytes (default 64 MiB); they are rotated at half of it. */
  logMaxBytes?: number;
  /** Retention of finished jobs: the newest `maxJobs` are kept (0: no limit) and none older than `maxAgeS` seconds (0: no limit). */
  retention?: { maxJobs: number; maxAgeS: number };
  /** Seconds a tuning may take when the job does not say (default 1800; 0: no limit). */
  tuneTimeLimitS?: number;
  /** Where the coordinator writes what it does (default: nowhere). */
  log?: (line: string) => void;
  /** Adds more services on the same port (the app adds Analyzer, Tuner and Profiler). */
  extraServices?: (server: RpcServer) => void;
  /** `host:port` of a Prometheus endpoint (GET /metrics, no token; port 0 picks a free one); none when unset. */
  metricsListen?: string;
}

export interface RunningCoordinator {
  /** `host:port` as bound. */
  address: string;
  port: number;
  /** Jobs marked interrupted at start-up (they were unfinished when the previous run stopped). */
  interrupted: string[];
  /** Jobs found running at start-up, kept running while their agents come back. */
  recovered: string[];
  /** `host:port` of the metrics endpoint as bound, when metricsListen was given. */
  metricsAddress?: string;
  stop(): Promise<void>;
}

export async function startCoordinator(o: CoordinatorOptions): Promise<RunningCoordinator> {
  const store = new StateStore(o.stateDir, { init: o.init });
  // Running jobs are not interrupted: their agents keep the workers through the outage (recovered below).
  const interrupted = store.markUnfinishedInterrupted(Date.now(), ['starting', 'running']).filter((j) => j.state === 'interrupted').map((j) => j.id);
  let jobs: JobManager | null = null;
  const registry = new AgentRegistry(o.heartbeatTimeoutS ?? 10, {
    onLost: (agent, silentS) => jobs?.onAgentLost(agent, silentS),
    onConnected: (agent) => jobs?.onAgentConnected(agent),
  });
  const logs = new JobLogs(o.stateDir === ':memory:' ? null : path.join(o.stateDir, 'logs'), o.logMaxBytes ?? 64 * 1024 * 1024);
  jobs = new JobManager({
    store, registry, logs, stopGraceS: o.stopGraceS ?? 5, remoteTuner: o.tuner, tuneTimeLimitS: o.tuneTimeLimitS ?? 1800, log: o.log,
  });
  // Agents reconnect with a back-off of at most 5 s (apps/agent): two heartbeat timeouts give them time.
  const recovered = jobs.recoverRunning(2 * (o.heartbeatTimeoutS ?? 10));
  const retention = o.retention ?? { maxJobs: 0, maxAgeS: 0 };
  const housekeeping = (): void => {
    const problem = store.databaseProblem();
    if (problem) {
      o.log?.(`ERROR: ${problem}: the job database is gone; new jobs are refused; restart the coordinator (with --init to begin again)`);
      jobs!.setDatabaseProblem(problem);
      health.setServing(false);
      return;
    }
    if (retention.maxJobs > 0 || retention.maxAgeS > 0) jobs!.applyRetention(retention.maxJobs, retention.maxAgeS);
  };
  const metrics = new CoordinatorMetrics({ jobsByState: () => store.countByState(), agents: () => registry.all() });
  const server = createServer({
    token: o.token,
    ...(o.agentToken !== undefined ? { agentToken: o.agentToken } : {}),
    tls: o.tls,
    authThrottle: { ...(o.log ? { log: o.log } : {}), ...o.authThrottle },
    // Server streams (WatchAssignments, WatchJob) stay open for hours: keep them alive through NATs.
    grpcOptions: { 'grpc.keepalive_time_ms': 30_000, 'grpc.keepalive_permit_without_calls': 1 },
    // Health answers probes without a token (it tells only SERVING / NOT_SERVING); reflection needs one.
    openServices: [HEALTH_SERVICE],
    observe: (call) => metrics.observeRpc(call),
  });
  addService(server, 'Coordinator', coordinatorHandlers(jobs, registry));
  addService(server, 'AgentControl', agentControlHandlers(jobs, registry));
  o.extraServices?.(server);
  const health = addHealthAndReflection(server, ['Coordinator', 'AgentControl']);
  let port: number;
  let metricsEndpoint: MetricsEndpoint | undefined;
  try {
    port = await startServer(server, o.listen);
    if (o.metricsListen !== undefined) metricsEndpoint = await serveMetrics(o.metricsListen, () => metrics.render());
  } catch (err) {
    await stopServer(server, 0);
    store.close();
    throw err;
  }
  registry.start();
  const host = o.listen.slice(0, o.listen.lastIndexOf(':'));
  for (const id of interrupted) o.log?.(`job ${id} was unfinished when the coordinator stopped: marked interrupted`);
  store.writeLockInfo(`${host}:${port}`);
  health.setServing(true);
  housekeeping();
  const housekeepingTimer = setInterval(housekeeping, 2000);
  housekeepingTimer.unref();
  let stopped: Promise<void> | null = null;
  return {
    address: `${host}:${port}`,
    port,
    interrupted,
    recovered,
    ...(metricsEndpoint ? { metricsAddress: metricsEndpoint.address } : {}),
    stop: () => {
      stopped ??= (async () => {
        health.setServing(false);
        clearInterval(housekeepingTimer);
        registry.stop();
        jobs!.close();
        await stopServer(server, 1);
        await metricsEndpoint?.close();
        logs.close();
        store.close();
      })();
      return stopped;
    },
  };
}
