// The agents the coordinator knows: what they offer, when they last spoke, their command stream,
// and the worker ports of their hosts. An agent silent for longer than the heartbeat timeout is
// lost (reported once through onLost); it comes back only by registering again.
//
// Each registration gets a session credential (random, 256 bits) that the agent's later calls and
// its re-registrations must carry: nobody else can register under an id the coordinator knows, or
// heartbeat, follow the commands or report events as that agent. Under mutual TLS the id is also
// bound to the name (CN) of the certificate it first registered with.
import * as crypto from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import type {
  AgentCommand, AgentInfo, BackendStatus__Output, Device__Output, RegisterRequest__Output, RunningWorker__Output,
} from '@mist/rpc';

export interface AgentRecord {
  id: string;
  hostName: string;
  /** Where other hosts reach this host's workers. */
  address: string;
  devices: Device__Output[];
  backends: BackendStatus__Output[];
  ports: { first: number; count: number };
  cpuCores: number;
  hostMemoryBytes: number;
  version: string;
  state: 'alive' | 'lost';
  /** Seconds since the Unix epoch. */
  registeredAt: number;
  lastHeartbeatAt: number;
  /** The workers the agent said were alive in its last heartbeat. */
  workers: RunningWorker__Output[];
  /** The open WatchAssignments stream, if any. */
  stream: grpc.ServerWritableStream<unknown, AgentCommand> | null;
  /** The session credential issued at registration (hex). */
  sessionToken: string;
  /** Common name of the client certificate it registered with (mutual TLS), or null. */
  certName: string | null;
}

/** A call that does not prove to be from the agent it names. */
export class AgentAuthError extends Error {
  constructor(message: string, readonly kind: 'unauthenticated' | 'taken') {
    super(message);
    this.name = 'AgentAuthError';
  }
}

/** The CN of the client certificate of a call under mutual TLS, or null (plaintext, no certificate). */
export function peerCertName(call: { getAuthContext?: () => { sslPeerCertificate?: { subject?: { CN?: string | string[] } } } }): string | null {
  const cn = call.getAuthContext?.().sslPeerCertificate?.subject?.CN;
  if (Array.isArray(cn)) return cn[0] ?? null;
  return cn || null;
}

function sameSecret(a: string, b: string): boolean {
  const ha = crypto.createHash('sha256').update(a).digest();
  const hb = crypto.createHash('sha256').update(b).digest();
  return crypto.timingSafeEqual(ha, hb);
}

export interface RegistryHooks {
  /** An agent went silent for longer than the timeout. */
  onLost(agent: AgentRecord, silentS: number): void;
  /** An agent opened its command stream (first time or after a reconnection). */
  onConnected(agent: AgentRecord): void;
}

/**
 * Seconds on a monotonic clock that reads like the Unix epoch: the wall clock at process start plus
 * the monotonic time since. A step of the wall clock (NTP, an operator) neither delays nor hastens
 * the detection of a lost agent.
 */
const nowS = (): number => (performance.timeOrigin + performance.now()) / 1000;

function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9.-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'agent';
}

export class AgentRegistry {
  private readonly agents = new Map<string, AgentRecord>();
  /** Ports handed out per host address (agents on one host may offer overlapping ranges). */
  private readonly usedPorts = new Map<string, Set<number>>();
  private timer: NodeJS.Timeout | null = null;
  private lastCheckAt = nowS();

  constructor(
    readonly heartbeatTimeoutS: number,
    private readonly hooks: RegistryHooks,
  ) {}

  /** Seconds between heartbeats asked of the agents: a third of the timeout, at most 2 s. */
  get heartbeatIntervalS(): number {
    return Math.min(2, this.heartbeatTimeoutS / 3);
  }

  start(): void {
    const everyMs = Math.max(50, Math.min(1000, (this.heartbeatTimeoutS * 1000) / 5));
    this.timer = setInterval(() => this.checkTimeouts(), everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const a of this.agents.values()) {
      a.stream?.end();
      a.stream = null;
    }
  }

  /**
   * Registers a new agent or an agent coming back (same id, with the session credential it got);
   * validates what it offers. `certName`: the client certificate's CN under mutual TLS.
   * An id the coordinator does not know (it restarted) is accepted and bound anew.
   */
  register(req: RegisterRequest__Output, certName: string | null = null): AgentRecord {
    const problems: string[] = [];
    if (!req.hostName) problems.push('host_name is required');
    if (!req.address) problems.push('address is required');
    if (req.devices.length === 0) problems.push('devices: an agent must offer at least one device');
    const indices = new Set(req.devices.map((d) => d.index));
    if (indices.size !== req.devices.length) problems.push('devices: indices must be unique');
    for (const d of req.devices) {
      if (d.kind !== 'DEVICE_KIND_CPU' && d.kind !== 'DEVICE_KIND_CUDA') problems.push(`devices[${d.index}].kind must be CPU or CUDA`);
    }
    const ports = req.workerPorts;
    if (!ports || ports.count < 1 || ports.first < 1 || ports.first + ports.count > 65536) {
      problems.push('worker_ports: a range [first, first + count) inside 1..65535 is required');
    }
    if (problems.length > 0) throw new Error(`bad registration: ${problems.join('; ')}`);

    const existing = req.agentId ? this.agents.get(req.agentId) : undefined;
    if (existing) this.checkIdentity(existing, req.sessionToken, certName, 'register');
    const id = req.agentId || this.newId(req.hostName);
    const now = nowS();
    const record: AgentRecord = {
      id,
      hostName: req.hostName,
      address: req.address,
      devices: req.devices.map((d) => ({ ...d })),
      backends: req.backends.map((b) => ({ ...b })),
      ports: { first: ports!.first, count: ports!.count },
      cpuCores: req.cpuCores,
      hostMemoryBytes: req.hostMemoryBytes,
      version: req.version,
      state: 'alive',
      registeredAt: existing?.registeredAt ?? now,
      lastHeartbeatAt: now,
      workers: existing?.workers ?? [],
      stream: existing?.stream ?? null,
      sessionToken: crypto.randomBytes(32).toString('hex'),
      certName: existing?.certName ?? certName,
    };
    this.agents.set(id, record);
    return record;
  }

  private checkIdentity(a: AgentRecord, sessionToken: string, certName: string | null, what: string): void {
    if (a.certName !== null && a.certName !== certName) {
      throw new AgentAuthError(`agent id ${a.id} is bound to the certificate "${a.certName}"; ${what} with ${certName ? `"${certName}"` : 'no certificate'} refused`, 'taken');
    }
    if (!sessionToken || !sameSecret(sessionToken, a.sessionToken)) {
      throw new AgentAuthError(what === 'register'
        ? `agent id ${a.id} is registered (${a.state}) by another session: a second registration needs that agent's session credential; register without an id to get a new one`
        : `${what} for agent ${a.id}: missing or wrong session credential (register again)`, what === 'register' ? 'taken' : 'unauthenticated');
    }
  }

  /** The agent's record when the call carries its session credential (and certificate); throws AgentAuthError otherwise; undefined when the id is unknown. */
  authenticate(id: string, sessionToken: string, certName: string | null, what: string): AgentRecord | undefined {
    const a = this.agents.get(id);
    if (!a) return undefined;
    this.checkIdentity(a, sessionToken, certName, what);
    return a;
  }

  private newId(hostName: string): string {
    for (;;) {
      const id = `${slug(hostName)}-${crypto.randomBytes(3).toString('hex')}`;
      if (!this.agents.has(id)) return id;
    }
  }

  get(id: string): AgentRecord | undefined {
    return this.agents.get(id);
  }

  all(): AgentRecord[] {
    return [...this.agents.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  alive(): AgentRecord[] {
    return this.all().filter((a) => a.state === 'alive');
  }

  /** Records a heartbeat; false when the agent is unknown or lost (it must register again). */
  heartbeat(id: string, workers: RunningWorker__Output[]): AgentRecord | null {
    const a = this.agents.get(id);
    if (!a || a.state !== 'alive') return null;
    a.lastHeartbeatAt = nowS();
    a.workers = workers;
    return a;
  }

  /** Seconds since the agent last spoke (on the registry's clock). */
  silentS(a: AgentRecord): number {
    return nowS() - a.lastHeartbeatAt;
  }

  /** Any call from the agent proves it alive. */
  touch(id: string): void {
    const a = this.agents.get(id);
    if (a && a.state === 'alive') a.lastHeartbeatAt = nowS();
  }

  attachStream(id: string, stream: grpc.ServerWritableStream<unknown, AgentCommand>): AgentRecord | null {
    const a = this.agents.get(id);
    if (!a || a.state !== 'alive') return null;
    if (a.stream && a.stream !== stream) a.stream.end();
    a.stream = stream;
    const detach = (): void => {
      if (a.stream === stream) a.stream = null;
    };
    stream.on('cancelled', detach);
    stream.on('close', detach);
    stream.on('error', detach);
    this.hooks.onConnected(a);
    return a;
  }

  /** Sends a command on the agent's stream; false when the agent has no open stream (it gets held assignments on reconnection). */
  send(id: string, command: AgentCommand): boolean {
    const a = this.agents.get(id);
    if (!a?.stream) return false;
    a.stream.write(command);
    return true;
  }

  /** Marks silent agents lost. When this check itself ran late (the event loop was blocked, e.g. by a long tuning), the silence is ours, not theirs: every agent gets a fresh start instead. */
  checkTimeouts(now = nowS()): void {
    const late = now - this.lastCheckAt;
    this.lastCheckAt = now;
    if (late > this.heartbeatTimeoutS / 2) {
      for (const a of this.agents.values()) if (a.state === 'alive') a.lastHeartbeatAt = Math.max(a.lastHeartbeatAt, now);
      return;
    }
    for (const a of this.agents.values()) {
      const silent = now - a.lastHeartbeatAt;
      if (a.state === 'alive' && silent > this.heartbeatTimeoutS) {
        a.state = 'lost';
        a.stream?.end();
        a.stream = null;
        this.hooks.onLost(a, silent);
      }
    }
  }

  /** `count` free worker ports of the agent's range (none taken on its host), or null when too few are left. */
  allocatePorts(id: string, count: number): number[] | null {
    const a = this.agents.get(id);
    if (!a) return null;
    const used = this.usedPorts.get(a.address) ?? new Set<number>();
    const out: number[] = [];
    for (let p = a.ports.first; p < a.ports.first + a.ports.count && out.length < count; p++) if (!used.has(p)) out.push(p);
    if (out.length < count) return null;
    for (const p of out) used.add(p);
    this.usedPorts.set(a.address, used);
    return out;
  }

  /** Marks ports of `address` taken although no allocation handed them out here (the workers of a job adopted after a restart hold them). */
  reservePorts(address: string, ports: number[]): void {
    const used = this.usedPorts.get(address) ?? new Set<number>();
    for (const p of ports) used.add(p);
    this.usedPorts.set(address, used);
  }

  releasePorts(address: string, ports: number[]): void {
    const used = this.usedPorts.get(address);
    if (!used) return;
    for (const p of ports) used.delete(p);
  }

  info(a: AgentRecord): AgentInfo {
    return {
      agentId: a.id,
      hostName: a.hostName,
      address: a.address,
      devices: a.devices,
      backends: a.backends,
      state: a.state === 'alive' ? 'AGENT_STATE_ALIVE' : 'AGENT_STATE_LOST',
      registeredTime: a.registeredAt,
      lastHeartbeatTime: a.lastHeartbeatAt,
      jobIds: [...new Set(a.workers.map((w) => w.jobId))].sort(),
      version: a.version,
    };
  }
}
