// The client side of the Coordinator service, as the CLI (and scripts) use it: promise-returning
// calls, WatchJob as an async iterator, and gRPC errors turned into plain messages.
import type * as grpc from '@grpc/grpc-js';
import {
  callUnary, type ClientOptions, type CoordinatorClient as GrpcCoordinatorClient, createClient, deadlineIn, isRpcError, type AgentInfo__Output,
  type Job__Output, type JobEvent__Output, type JobSpec, type JobState, readStream, status,
} from '@mist/rpc';

/** A failed call: the server's message without grpc-js's "3 INVALID_ARGUMENT:" prefix, and the status code. */
export class CoordinatorCallError extends Error {
  constructor(readonly code: grpc.status, message: string) {
    super(message);
    this.name = 'CoordinatorCallError';
  }
}

/**
 * The cause in grpc-js's UNAVAILABLE details, without its framing: "No connection established. Last
 * error: Error: connect ECONNREFUSED 127.0.0.1:7070. Resolution note: " -> "connect ECONNREFUSED 127.0.0.1:7070".
 */
export function unreachableCause(details: string): string {
  const last = /Last error: (?:Error: )?(.*?)\.?\s*(?:Resolution note:.*)?$/s.exec(details)?.[1];
  return (last ?? details.replace(/\s*Resolution note:\s*$/, '')).trim();
}

function plain(err: unknown, address: string): Error {
  if (!isRpcError(err)) return err as Error;
  if (err.code === status.UNAVAILABLE) {
    const cause = unreachableCause(err.details || err.message);
    return new CoordinatorCallError(err.code, `cannot reach the coordinator at ${address}${cause ? `: ${cause}` : ''} (is it running? --coordinator HOST:PORT)`);
  }
  if (err.code === status.UNAUTHENTICATED) {
    return new CoordinatorCallError(err.code, `the coordinator at ${address} refused the token (set MIST_TOKEN or --token): ${err.details}`);
  }
  return new CoordinatorCallError(err.code, err.details || err.message);
}

export class CoordinatorConnection {
  private readonly client: GrpcCoordinatorClient;

  constructor(
    readonly address: string,
    options: ClientOptions,
    /** Seconds a unary call may take. */
    private readonly timeoutS = 30,
  ) {
    this.client = createClient('Coordinator', address, options);
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw plain(err, this.address);
    }
  }

  private opts(): grpc.CallOptions {
    return { deadline: deadlineIn(this.timeoutS) };
  }

  submit(spec: JobSpec): Promise<Job__Output> {
    return this.call(() => callUnary(this.client, 'submitJob', { spec }, this.opts()));
  }

  /** Resumes an interrupted or failed job from its last complete checkpoint. */
  resume(jobId: string): Promise<Job__Output> {
    return this.call(() => callUnary(this.client, 'submitJob', { resumeJobId: jobId }, this.opts()));
  }

  get(jobId: string): Promise<Job__Output> {
    return this.call(() => callUnary(this.client, 'getJob', { jobId }, this.opts()));
  }

  /** One page of job summaries, newest first (`pageToken` from the previous page; '' for the first). */
  listPage(o: { states?: JobState[]; pageSize?: number; pageToken?: string } = {}): Promise<{ jobs: Job__Output[]; nextPageToken: string }> {
    return this.call(() => callUnary(this.client, 'listJobs', { states: o.states ?? [], pageSize: o.pageSize ?? 0, pageToken: o.pageToken ?? '' }, this.opts()));
  }

  /** The newest `limit` job summaries (0: all, page by page). */
  async list(states: JobState[] = [], limit = 0): Promise<Job__Output[]> {
    const out: Job__Output[] = [];
    let pageToken = '';
    do {
      const pageSize = limit > 0 ? Math.min(1000, limit - out.length) : 1000;
      const page = await this.listPage({ states, pageSize, pageToken });
      out.push(...page.jobs);
      pageToken = page.nextPageToken;
    } while (pageToken && (limit === 0 || out.length < limit));
    return out;
  }

  /** Deletes a finished job (record, history and logs). */
  async remove(jobId: string): Promise<void> {
    await this.call(() => callUnary(this.client, 'deleteJob', { jobId }, this.opts()));
  }

  cancel(jobId: string, reason = ''): Promise<Job__Output> {
    return this.call(() => callUnary(this.client, 'cancelJob', { jobId, reason }, this.opts()));
  }

  async agents(): Promise<AgentInfo__Output[]> {
    return (await this.call(() => callUnary(this.client, 'listAgents', {}, this.opts()))).agents;
  }

  /** The job's events until it reaches a terminal state (the stream ends then), or only those recorded so far (`replayOnly`). */
  async *watch(jobId: string, options: { replay?: boolean; includeLogs?: boolean; replayOnly?: boolean } = {}): AsyncGenerator<JobEvent__Output, void, undefined> {
    const call = this.client.watchJob({
      jobId, replay: options.replay ?? true, includeLogs: options.includeLogs ?? false, replayOnly: options.replayOnly ?? false,
    });
    try {
      for await (const e of readStream(call)) yield e;
    } catch (err) {
      throw plain(err, this.address);
    } finally {
      call.cancel();
    }
  }

  close(): void {
    this.client.close();
  }
}
