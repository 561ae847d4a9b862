// @mist/app-agent: the per-host agent (`mist agent`): registers, heartbeats, runs executor workers.
export { AGENT_VERSION, DEFAULT_PORT_RANGE, defaultWorkerScript, runAgent, type AgentOptions, type RunningAgent } from './agent';
export { backendStatus, chooseDevices, cpuDevices, detectCudaDevices, gpuCatalogName, parseNvidiaSmi } from './devices';
export { workerAssignments } from './assignment';
export { WorkerSupervisor, type SupervisorOptions } from './worker-supervisor';
export { EventReporter } from './event-reporter';
export { AGENT_CLI_OPTIONS, agentLoggerFromArgs, agentOptionsFromArgs, tlsFromArgs, tokenFromArgs, type CliOption } from './cli-options';
export { AgentMetrics, RANK_SERIES_JOBS, STEP_TIME_BUCKETS, type AgentMetricSources } from './metrics';
