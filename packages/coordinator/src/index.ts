// @mist/coordinator: job and agent registry, placement of stages on devices, rendezvous, job
// lifecycle and its persistent state, the Coordinator + AgentControl services, and the client the
// CLI uses.
export * from './placement';
export * from './job-state';
export * from './state-store';
export * from './job-spec';
export { AgentRegistry, type AgentRecord, type RegistryHooks } from './agent-registry';
export { buildRendezvous, resolveBackend, type ResolvedBackend, type PortLease } from './rendezvous';
export { JobManager, RequestError, type JobManagerOptions } from './job-manager';
export { JobLogs, type LogSnapshot } from './job-log';
export { checkJobId, LIMITS } from './job-limits';
export { protoJobState, statesOfProto, type JobWatcher } from './job-view';
export { knobsFromOptions, tunerSpaceFromOptions } from './tune-knobs';
export { agentsShape, clusterMismatch, predictionOf, tuningTarget, type RemoteTuner, type TunedPlan } from './tuning';
export { PROTOCOL_VERSION } from './service';
export { startCoordinator, type CoordinatorOptions, type RunningCoordinator } from './server';
export { CoordinatorMetrics, RPC_LATENCY_BUCKETS, type CoordinatorMetricSources } from './metrics';
export { CoordinatorCallError, CoordinatorConnection } from './client';
export { JobFileSchema, type JobFile, jobSpecFromDocument, loadJobFile } from './job-file';
