// startCoordinator: the Coordinator and AgentControl services on one port, with the job state in
// SQLite under `stateDir`. Jobs left unfinished by a previous run are marked interrupted first.
import { addService, createServer, type RpcServer, startServer, stopServer, type ClientOptions, type TlsOptions } from '@mist/rpc';
import { AgentRegistry } from './agent-registry';
import { JobManager } from './job-manager';
import { agentControlHandlers, coordinatorHandlers } from './service';
import { StateStore } from './state-store';

export interface CoordinatorOptions {
  /** `host:port`; port 0 picks a free one. */
  listen: string;
  /** Directory of the SQLite state (created when missing); `:memory:` keeps nothing. */
  stateDir: string;
  /** Shared token every call must carry. */
  token: string;
  /** Seconds of silence after which an agent is lost (default 10). */
  heartbeatTimeoutS?: number;
  /** Seconds stopped workers get between SIGTERM and SIGKILL (default 5). */
  stopGraceS?: number;
  tls?: TlsOptions;
  /** A remote Tuner service to call instead of tuning in-process. */
  tuner?: { address: string; client: ClientOptions };
  /** Where the coordinator writes what it does (default: nowhere). */
  log?: (line: string) => void;
  /** Adds more services on the same port (the app adds Analyzer, Tuner and Profiler). */
  extraServices?: (server: RpcServer) => void;
}

export interface RunningCoordinator {
  /** `host:port` as bound. */
  address: string;
  port: number;
  /** Jobs marked interrupted at start-up (they were unfinished when the previous run stopped). */
  interrupted: string[];
  stop(): Promise<void>;
}

export async function startCoordinator(o: CoordinatorOptions): Promise<RunningCoordinator> {
  const store = new StateStore(o.stateDir);
  const interrupted = store.markUnfinishedInterrupted().filter((j) => j.state === 'interrupted').map((j) => j.id);
  let jobs: JobManager | null = null;
  const registry = new AgentRegistry(o.heartbeatTimeoutS ?? 10, {
    onLost: (agent, silentS) => jobs?.onAgentLost(agent, silentS),
    onConnected: (agent) => jobs?.onAgentConnected(agent),
  });
  jobs = new JobManager({ store, registry, stopGraceS: o.stopGraceS ?? 5, remoteTuner: o.tuner, log: o.log });
  const server = createServer({
    token: o.token,
    tls: o.tls,
    // Server streams (WatchAssignments, WatchJob) stay open for hours: keep them alive through NATs.
    grpcOptions: { 'grpc.keepalive_time_ms': 30_000, 'grpc.keepalive_permit_without_calls': 1 },
  });
  addService(server, 'Coordinator', coordinatorHandlers(jobs, registry));
  addService(server, 'AgentControl', agentControlHandlers(jobs, registry));
  o.extraServices?.(server);
  let port: number;
  try {
    port = await startServer(server, o.listen);
  } catch (err) {
    store.close();
    throw err;
  }
  registry.start();
  const host = o.listen.slice(0, o.listen.lastIndexOf(':'));
  for (const id of interrupted) o.log?.(`job ${id} was unfinished when the coordinator stopped: marked interrupted`);
  let stopped: Promise<void> | null = null;
  return {
    address: `${host}:${port}`,
    port,
    interrupted,
    stop: () => {
      stopped ??= (async () => {
        registry.stop();
        jobs!.close();
        await stopServer(server, 1);
        store.close();
      })();
      return stopped;
    },
  };
}
