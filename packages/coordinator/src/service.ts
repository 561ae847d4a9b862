// The gRPC handlers of the Coordinator service (the job API of `mist`) and of AgentControl (the
// agents' side), over one JobManager and one AgentRegistry.
import type * as grpc from '@grpc/grpc-js';
import { type AgentControlHandlers, type CoordinatorHandlers, errorToStatus, rpcError, status } from '@mist/rpc';
import { AgentAuthError, type AgentRegistry, peerCertName } from './agent-registry';
import { type JobManager, RequestError } from './job-manager';
import { StateDirError } from './state-store';

/** The agent package version this coordinator speaks with (major.minor must match). */
export const PROTOCOL_VERSION = '0.1.0';

/** The coordinator's own errors; the rest (SpecError, RangeError, RequestError's code...) is @mist/rpc's errorToStatus. */
function coordinatorError(err: unknown): grpc.ServiceError | undefined {
  if (err instanceof RequestError) return rpcError(err.code, err.message);
  if (err instanceof AgentAuthError) return rpcError(err.kind === 'taken' ? status.ALREADY_EXISTS : status.UNAUTHENTICATED, err.message);
  if (err instanceof StateDirError) return rpcError(status.INVALID_ARGUMENT, err.message);
  return undefined;
}

function toServiceError(err: unknown): grpc.ServiceError {
  return errorToStatus(err, coordinatorError);
}

/** Runs a handler body and answers with its result or its error. */
function answer<T>(callback: grpc.sendUnaryData<T>, body: () => T | Promise<T>): void {
  Promise.resolve()
    .then(body)
    .then((res) => callback(null, res), (err: unknown) => callback(toServiceError(err)));
}

function compatible(version: string): boolean {
  if (!version) return true;
  const [a, b] = version.split('.');
  const [c, d] = PROTOCOL_VERSION.split('.');
  return a === c && b === d;
}

export function coordinatorHandlers(jobs: JobManager, registry: AgentRegistry): CoordinatorHandlers {
  return {
    SubmitJob: (call, cb) => answer(cb, () => jobs.submit(call.request)),
    GetJob: (call, cb) => answer(cb, () => jobs.getJob(call.request.jobId)),
    ListJobs: (call, cb) => answer(cb, () => jobs.listJobs(call.request)),
    DeleteJob: (call, cb) => answer(cb, () => {
      jobs.deleteJob(call.request.jobId);
      return {};
    }),
    CancelJob: (call, cb) => answer(cb, () => jobs.cancel(call.request.jobId, call.request.reason)),
    ListAgents: (_call, cb) => answer(cb, () => ({
      agents: registry.all().map((a) => ({ ...registry.info(a), jobIds: [...new Set([...registry.info(a).jobIds ?? [], ...jobs.jobsOnAgent(a.id)])].sort() })),
    })),
    WatchJob: (call) => {
      const { jobId, replay, includeLogs, replayOnly } = call.request;
      let ended = false;
      try {
        const unsubscribe = jobs.watch(jobId, replay, {
          includeLogs,
          write: (e) => {
            if (!ended) call.write(e);
          },
          end: () => {
            if (!ended) {
              ended = true;
              call.end();
            }
          },
        }, replayOnly);
        call.on('cancelled', () => {
          ended = true;
          unsubscribe();
        });
      } catch (err) {
        call.emit('error', toServiceError(err));
      }
    },
  };
}

export function agentControlHandlers(jobs: JobManager, registry: AgentRegistry): AgentControlHandlers {
  return {
    Register: (call, cb) => answer(cb, () => {
      const req = call.request;
      if (!compatible(req.version)) {
        throw new RequestError(status.FAILED_PRECONDITION, `agent version ${req.version} cannot work with coordinator ${PROTOCOL_VERSION}`);
      }
      let agent;
      try {
        agent = registry.register(req, peerCertName(call));
      } catch (err) {
        if (err instanceof AgentAuthError) throw err;
        throw new RequestError(status.INVALID_ARGUMENT, (err as Error).message);
      }
      return { agentId: agent.id, heartbeatInterval: registry.heartbeatIntervalS, heartbeatTimeout: registry.heartbeatTimeoutS, sessionToken: agent.sessionToken };
    }),
    Heartbeat: (call, cb) => answer(cb, () => {
      registry.authenticate(call.request.agentId, call.request.sessionToken, peerCertName(call), 'heartbeat');
      const agent = registry.heartbeat(call.request.agentId, call.request.workers);
      if (!agent) return { reregister: true };
      jobs.onHeartbeat(agent);
      return { reregister: false };
    }),
    WatchAssignments: (call) => {
      try {
        registry.authenticate(call.request.agentId, call.request.sessionToken, peerCertName(call), 'command stream');
      } catch (err) {
        call.emit('error', toServiceError(err));
        return;
      }
      const agent = registry.attachStream(call.request.agentId, call);
      if (!agent) call.emit('error', rpcError(status.NOT_FOUND, `unknown or lost agent "${call.request.agentId}": register again`));
    },
    ReportWorkerEvents: (call, cb) => answer(cb, () => {
      if (!registry.authenticate(call.request.agentId, call.request.sessionToken, peerCertName(call), 'worker events')) {
        // Not permanent: the agent registers again (e.g. after a coordinator restart) and resends.
        throw new RequestError(status.FAILED_PRECONDITION, `unknown agent "${call.request.agentId}": register again`);
      }
      jobs.reportEvents(call.request.agentId, call.request.events);
      return {};
    }),
  };
}
