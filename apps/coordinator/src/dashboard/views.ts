// The JSON shapes the dashboard serves (and its pages render): summaries of jobs and agents made
// from the coordinator's Job and AgentInfo messages.
import { type AgentInfo__Output, type Job__Output } from '@mist/rpc';

export interface JobSummary {
  id: string;
  name: string;
  /** `running`, `succeeded`, ... (the proto name without JOB_STATE_). */
  state: string;
  message: string;
  step: number;
  steps: number;
  loss: number | null;
  predictedIterationS: number | null;
  workers: number;
  submitTime: number;
  endTime: number;
}

export interface AgentSummary {
  id: string;
  host: string;
  address: string;
  state: string;
  devices: Array<{ index: number; kind: string; name: string; gpu: string; memoryBytes: number }>;
  jobs: string[];
  lastHeartbeatTime: number;
}

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'interrupted']);

export function isTerminal(state: string): boolean {
  return TERMINAL.has(state);
}

export function jobSummary(j: Job__Output): JobSummary {
  return {
    id: j.id,
    name: j.spec?.name ?? '',
    state: String(j.state).replace('JOB_STATE_', '').toLowerCase(),
    message: j.message,
    step: Number(j.step),
    steps: Number(j.spec?.run?.steps ?? 0),
    loss: j.loss ?? null,
    predictedIterationS: j.predicted && j.predicted.iterationTime > 0 ? j.predicted.iterationTime : null,
    workers: j.workers.length,
    submitTime: j.submitTime,
    endTime: j.endTime,
  };
}

export function agentSummary(a: AgentInfo__Output): AgentSummary {
  return {
    id: a.agentId,
    host: a.hostName,
    address: a.address,
    state: String(a.state).replace('AGENT_STATE_', '').toLowerCase(),
    devices: a.devices.map((d) => ({
      index: d.index, kind: String(d.kind).replace('DEVICE_KIND_', '').toLowerCase(), name: d.name, gpu: d.gpu, memoryBytes: Number(d.memoryBytes),
    })),
    jobs: a.jobIds,
    lastHeartbeatTime: a.lastHeartbeatTime,
  };
}
