// Test helpers: a pp=2 x dp=2 gpt-tiny job, and following a job until it ends.
import { NO_OFFLOAD, type Plan } from '@mist/core';
import type { CoordinatorConnection } from '@mist/coordinator';
import type { JobEvent__Output, JobSpec } from '@mist/rpc';

export const TOKEN = 'agent-test-token';

export function tinyPlan(): Plan {
  const stage = (layers: [number, number]) => ({
    layers, mesh: { nodes: 1, gpusPerNode: 2 }, microBatchSize: 1, dp: 2, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 0 as const,
    offload: { ...NO_OFFLOAD },
  });
  return { version: 1, model: 'gpt-tiny', seqLen: 64, globalBatch: 8, gradAccumSteps: 4, stages: [stage([0, 1]), stage([2, 3])] };
}

export function tinySpec(steps = 5, extra: Partial<JobSpec['run']> = {}): JobSpec {
  return {
    name: 'tiny', model: { name: 'gpt-tiny' }, trainingJson: JSON.stringify({ globalBatch: 8, seqLen: 64 }), planJson: JSON.stringify(tinyPlan()),
    backend: 'BACKEND_CPU', run: { steps, seed: 1, dataPath: 'corpus', ...extra },
  };
}

/** Every event of the job until its stream ends (a terminal state). */
export async function follow(c: CoordinatorConnection, jobId: string, onEvent: (e: JobEvent__Output) => void = () => undefined): Promise<JobEvent__Output[]> {
  const out: JobEvent__Output[] = [];
  for await (const e of c.watch(jobId, { replay: true, includeLogs: true })) {
    out.push(e);
    onEvent(e);
  }
  return out;
}

export const pidsOf = (events: JobEvent__Output[]): number[] => events.filter((e) => e.worker?.started).map((e) => e.worker!.started!.pid);
export const lastState = (events: JobEvent__Output[]) => events.filter((e) => e.event === 'state').at(-1)!.state!;

/** Waits until `cond` holds, checking after every turn of the event loop. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutS = 15): Promise<void> {
  const deadline = Date.now() + timeoutS * 1000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
