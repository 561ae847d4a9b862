// The per-host agent: registers its devices with the coordinator, heartbeats, follows its command
// stream (WatchAssignments), starts one executor worker per assigned rank, forwards the workers'
// events, stops them on command, and reconnects with exponential back-off when the coordinator
// goes away (a restarted coordinator gets the same agent id and the list of running workers).
import * as os from 'node:os';
import type * as grpc from '@grpc/grpc-js';
import {
  type AgentCommand__Output, type AgentControlClient, callUnary, type ClientTlsOptions, createClient, deadlineIn, type Device, isRpcError,
  type MetricsEndpoint, serveMetrics, status,
} from '@mist/rpc';
import { backendStatus, chooseDevices } from './devices';
import { EventReporter } from './event-reporter';
import { AgentMetrics } from './metrics';
import { WorkerSupervisor } from './worker-supervisor';

export const AGENT_VERSION = '0.1.0';

export interface AgentOptions {
  /** `host:port` of the coordinator. */
  coordinator: string;
  /** The token of the agents' calls: the coordinator's --agent-token when it has one, else its shared token. */
  token: string;
  tls?: ClientTlsOptions;
  /** Offer this many CPU devices (hosts without GPUs). */
  cpuDevices?: number;
  /** CUDA ordinals to offer (default: every GPU nvidia-smi lists). */
  devices?: number[];
  /** Devices as given (tests, or hosts where detection is not wanted); overrides cpuDevices/devices. */
  deviceList?: Device[];
  hostName?: string;
  /** Address at which other hosts reach this host's workers (default: the host name). */
  address?: string;
  /** Ports the coordinator may hand to this host's workers (CPU rendezvous, NCCL root). */
  portRange?: { first: number; count: number };
  /** Jobs may write checkpoints only under this directory (absolute paths anywhere when unset). */
  checkpointRoot?: string;
  /** The executor worker entry; default: @mist/executor's workerEntryPath(). */
  workerScript?: string;
  workerEnv?: Record<string, string>;
  /** Back-off between reconnection attempts, seconds (doubles up to maxS). */
  backoff?: { initialS: number; maxS: number };
  /** `host:port` of a Prometheus endpoint (GET /metrics, no token; port 0 picks a free one); none when unset. */
  metricsListen?: string;
  log?: (line: string) => void;
}

export interface RunningAgent {
  /** Resolves with the agent id after the first registration. */
  readonly registered: Promise<string>;
  readonly agentId: string | null;
  readonly devices: Device[];
  /** `host:port` of the metrics endpoint as bound, when metricsListen was given. */
  readonly metricsAddress?: string;
  /** Stops every worker (SIGTERM, then SIGKILL after `graceS`) and disconnects. */
  stop(graceS?: number): Promise<void>;
}

/** Default worker ports: 29500 is where PyTorch's rendezvous traditionally starts (MASTER_PORT). */
export const DEFAULT_PORT_RANGE = { first: 29500, count: 512 };

/** The executor's worker entry, resolved when first needed (the executor may not be built yet). */
export function defaultWorkerScript(): string {
  // Loaded lazily: the executor brings the native kernels, which the agent itself does not need.
  let executor: Pick<typeof import('@mist/executor'), 'workerEntryPath'>;
  try {
    executor = require('@mist/executor') as typeof executor;
  } catch (err) {
    throw new Error(`cannot load @mist/executor to find the worker entry (${(err as Error).message}); pass --worker-script FILE`);
  }
  return executor.workerEntryPath();
}

const DROPPED_NOTE = '[agent] an event of this worker was refused by the coordinator and dropped';

const sleep = (s: number): Promise<void> => new Promise((r) => setTimeout(r, s * 1000));

export async function runAgent(o: AgentOptions): Promise<RunningAgent> {
  const log = o.log ?? (() => undefined);
  const devices = o.deviceList ?? chooseDevices({ cpuDevices: o.cpuDevices, devices: o.devices });
  const workerScript = o.workerScript ?? defaultWorkerScript();
  const hostName = o.hostName ?? os.hostname();
  const address = o.address ?? hostName;
  const ports = o.portRange ?? DEFAULT_PORT_RANGE;
  const backoff = o.backoff ?? { initialS: 0.2, maxS: 5 };
  const backends = backendStatus(devices);
  const client: AgentControlClient = createClient('AgentControl', o.coordinator, { token: o.token, tls: o.tls });

  let agentId: string | null = null;
  /** The session credential of the current registration: every later call carries it. */
  let session = '';
  let stopped = false;
  let stream: grpc.ClientReadableStream<AgentCommand__Output> | null = null;
  let heartbeat: NodeJS.Timeout | null = null;
  let wake: (() => void) | null = null;
  let resolveRegistered!: (id: string) => void;
  const registered = new Promise<string>((r) => { resolveRegistered = r; });

  const reporter: EventReporter = new EventReporter(async (events) => {
    if (!agentId) throw new Error('not registered');
    await callUnary(client, 'reportWorkerEvents', { agentId, events, sessionToken: session }, { deadline: deadlineIn(10) });
  }, {
    onDropped: (e, reason) => {
      log(`job ${e.jobId} rank ${e.rank}: the coordinator refused an event for good, dropped it: ${reason}`);
      // Say so in the job's log too (a short line, which the coordinator takes).
      if (!(e.log?.text ?? '').startsWith(DROPPED_NOTE)) {
        reporter.push({ jobId: e.jobId, attempt: e.attempt, rank: e.rank, time: Date.now() / 1000,
          log: { stream: 'LOG_STREAM_SYSTEM', text: `${DROPPED_NOTE} (${reason.slice(0, 200)})` } });
      }
    },
  });
  // The workers' events go to the metrics first, then to the coordinator.
  const metrics: AgentMetrics = new AgentMetrics({ devices, workers: () => supervisor.running(), agentId: () => agentId, hostName, version: AGENT_VERSION });
  const supervisor: WorkerSupervisor = new WorkerSupervisor({
    workerScript, env: o.workerEnv, checkpointRoot: o.checkpointRoot,
    emit: (e) => {
      metrics.observe(e);
      reporter.push(e);
    },
  });
  let metricsEndpoint: MetricsEndpoint | undefined;
  if (o.metricsListen !== undefined) {
    try {
      metricsEndpoint = await serveMetrics(o.metricsListen, () => metrics.render());
    } catch (err) {
      client.close();
      throw err;
    }
  }

  const register = async (): Promise<number> => {
    const res = await callUnary(client, 'register', {
      agentId: agentId ?? '', hostName, address, devices, backends, workerPorts: ports, cpuCores: os.cpus().length,
      hostMemoryBytes: os.totalmem(), version: AGENT_VERSION, sessionToken: session,
    }, { deadline: deadlineIn(10) });
    if (agentId && agentId !== res.agentId) log(`registered again as ${res.agentId} (was ${agentId})`);
    agentId = res.agentId;
    session = res.sessionToken;
    return res.heartbeatInterval;
  };

  const onCommand = (c: AgentCommand__Output): void => {
    if (c.command === 'assign' && c.assign) {
      const a = c.assign;
      if (supervisor.has(a.jobId, a.attempt)) return;
      log(`job ${a.jobId} attempt ${a.attempt}: starting rank(s) ${a.ranks.map((r) => r.rank).join(', ')}`);
      supervisor.start(a);
    } else if (c.command === 'stop' && c.stop) {
      const s = c.stop;
      log(`job ${s.jobId} attempt ${s.attempt}: stopping (${s.reason})`);
      void supervisor.stop(s.jobId, s.attempt, s.gracePeriod, s.reason);
    }
  };

  /** Follows the command stream until it ends or fails. */
  const follow = (): Promise<void> => new Promise((resolve) => {
    const call = client.watchAssignments({ agentId: agentId!, sessionToken: session });
    stream = call;
    call.on('data', onCommand);
    const done = (): void => {
      if (stream === call) stream = null;
      resolve();
    };
    call.on('error', (err: Error) => {
      if (!stopped) log(`command stream lost: ${err.message}`);
      done();
    });
    call.on('end', done);
  });

  const beat = async (): Promise<void> => {
    if (!agentId) return;
    try {
      const res = await callUnary(client, 'heartbeat', { agentId, workers: supervisor.running(), sessionToken: session }, { deadline: deadlineIn(5) });
      if (res.reregister) {
        log('the coordinator asks to register again');
        stream?.cancel();
      }
    } catch (err) {
      // A refused session: register again. Otherwise the command stream notices a dead
      // coordinator and drives the reconnection.
      if (isRpcError(err, status.UNAUTHENTICATED)) {
        log(`heartbeat refused: ${(err as Error).message}`);
        stream?.cancel();
      }
    }
  };

  const loop = async (): Promise<void> => {
    let delay = backoff.initialS;
    while (!stopped) {
      try {
        const intervalS = await register();
        log(`registered with ${o.coordinator} as ${agentId} (${devices.length} device(s))`);
        resolveRegistered(agentId!);
        delay = backoff.initialS;
        heartbeat = setInterval(() => void beat(), intervalS * 1000);
        void beat();
        void reporter.flush();
        await follow();
      } catch (err) {
        if (!stopped) log(`cannot register with ${o.coordinator}: ${(err as Error).message}`);
        if (isRpcError(err, status.ALREADY_EXISTS) && agentId) {
          // Our id is held by another session (we cannot prove it is ours): take a new one.
          log(`giving up the id ${agentId}: registering as a new agent`);
          agentId = null;
          session = '';
        }
      }
      if (heartbeat) clearInterval(heartbeat);
      heartbeat = null;
      if (stopped) break;
      // Back-off, with jitter so that many agents do not reconnect in lock-step.
      await Promise.race([sleep(delay * (0.75 + Math.random() * 0.5)), new Promise<void>((r) => { wake = r; })]);
      delay = Math.min(backoff.maxS, delay * 2);
    }
  };
  const running = loop();

  let stopping: Promise<void> | null = null;
  return {
    registered,
    get agentId() {
      return agentId;
    },
    devices,
    ...(metricsEndpoint ? { metricsAddress: metricsEndpoint.address } : {}),
    stop: (graceS = 5) => {
      stopping ??= (async () => {
        stopped = true;
        stream?.cancel();
        wake?.();
        await supervisor.stopAll(graceS, 'the agent is stopping');
        await Promise.race([reporter.flush(), sleep(2)]);
        reporter.dispose();
        await running;
        client.close();
        await metricsEndpoint?.close();
      })();
      return stopping;
    },
  };
}
