// Test helper: an agent made of raw AgentControl calls, so the coordinator's tests control exactly
// what an agent says and when (registration, heartbeats, worker events), with no processes.
import { type AgentCommand__Output, type AgentControlClient, callUnary, createClient, type Device, type WorkerEvent } from '@mist/rpc';

export class FakeAgent {
  readonly client: AgentControlClient;
  id = '';
  /** The session credential of the last registration (sent with every later call). */
  session = '';
  readonly commands: AgentCommand__Output[] = [];
  private waiters: Array<{ pred: (c: AgentCommand__Output) => boolean; resolve: (c: AgentCommand__Output) => void }> = [];
  private stream: ReturnType<AgentControlClient['watchAssignments']> | null = null;

  constructor(address: string, token: string, readonly hostName: string, readonly deviceCount: number, readonly ports = { first: 40000, count: 100 }) {
    this.client = createClient('AgentControl', address, { token });
  }

  devices(): Device[] {
    return Array.from({ length: this.deviceCount }, (_, index) => ({ index, kind: 'DEVICE_KIND_CPU', name: 'test cpu', gpu: '', memoryBytes: 1e9 }));
  }

  async register(): Promise<string> {
    const res = await callUnary(this.client, 'register', {
      agentId: this.id, hostName: this.hostName, address: '127.0.0.1', devices: this.devices(),
      backends: [{ backend: 'BACKEND_CPU', available: true }], workerPorts: this.ports, version: '0.1.0', sessionToken: this.session,
    });
    this.id = res.agentId;
    this.session = res.sessionToken;
    return this.id;
  }

  /** Opens the command stream; resolves once the coordinator has attached it (first heartbeat answered after). */
  watch(): void {
    this.stream = this.client.watchAssignments({ agentId: this.id, sessionToken: this.session });
    this.stream.on('data', (c: AgentCommand__Output) => {
      this.commands.push(c);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(c)) return true;
        w.resolve(c);
        return false;
      });
    });
    this.stream.on('error', () => undefined);
  }

  /** The first command (already received or coming) that matches. */
  next(pred: (c: AgentCommand__Output) => boolean): Promise<AgentCommand__Output> {
    const seen = this.commands.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  heartbeat(workers: Array<{ jobId: string; attempt: number; rank: number; pid: number }> = []): Promise<{ reregister: boolean }> {
    return callUnary(this.client, 'heartbeat', { agentId: this.id, workers, sessionToken: this.session });
  }

  report(events: Array<Omit<WorkerEvent, 'time'>>): Promise<unknown> {
    return callUnary(this.client, 'reportWorkerEvents', { agentId: this.id, sessionToken: this.session, events: events.map((e) => ({ time: Date.now() / 1000, ...e })) });
  }

  close(): void {
    this.stream?.cancel();
    this.client.close();
  }
}
