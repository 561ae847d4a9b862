// The body of the tuning worker thread (see tuning.ts, tuneOffThread): runs @mist/tuner's search
// for one job and posts its progress and its result, so that the coordinator's event loop keeps
// answering calls, heartbeats and log streams while a large search runs. The search stops by itself
// at `timeLimitS` and on a `{ kind: 'stop' }` message (a cancel), answering with the best plan found
// so far and its proven gap (TuneResult.stoppedBy, .gap); the coordinator terminates the thread only
// when it does not answer in time.
import { parentPort, workerData } from 'node:worker_threads';
import type { ClusterSpec, HardwareProfile, ModelSpec, TrainingSpec } from '@mist/core';
import type { TuneOptions__Output } from '@mist/rpc';
import { spaceFromKnobs, trainingForTarget, tune } from '@mist/tuner';
import { knobsFromOptions } from './tune-knobs';

export interface TuneWorkerInput {
  model: ModelSpec;
  training: TrainingSpec;
  profile: HardwareProfile;
  cluster: ClusterSpec;
  options: TuneOptions__Output | null;
  /** Seconds the search may take before it returns its best plan so far (undefined: no limit). */
  timeLimitS?: number;
}

/** What the coordinator sends the thread. */
export type TuneWorkerCommand = { kind: 'stop' };

export type TuneWorkerMessage =
  | { kind: 'progress'; phase: string; done: number; total: number; candidatesEvaluated: number; bestIterationTimeS: number | null }
  | { kind: 'result'; result: Awaited<ReturnType<typeof tune>> }
  | { kind: 'error'; message: string };

async function main(): Promise<void> {
  const input = workerData as TuneWorkerInput;
  const post = (m: TuneWorkerMessage): void => parentPort!.postMessage(m);
  const stop = new AbortController();
  // The tuner yields to the event loop every ~50 ms (tuner.ts, breathe), so this message is seen mid-search.
  parentPort!.on('message', (m: TuneWorkerCommand) => {
    if (m.kind === 'stop') stop.abort();
  });
  try {
    const knobs = knobsFromOptions(input.options);
    const training = trainingForTarget(knobs, input.model, input.training, input.profile.cluster.gpu.name);
    const result = await tune({ model: input.model, training, profile: input.profile }, {
      space: spaceFromKnobs(knobs, input.model, training),
      clusterName: input.cluster.name,
      timeLimitS: input.timeLimitS,
      signal: stop.signal,
      onProgress: (p) => post({ kind: 'progress', phase: p.phase, done: p.done, total: p.total, candidatesEvaluated: p.candidatesEvaluated, bestIterationTimeS: p.bestIterationTimeS }),
    });
    post({ kind: 'result', result });
  } catch (err) {
    post({ kind: 'error', message: (err as Error).message ?? String(err) });
  }
  // The 'message' listener would keep the thread alive.
  parentPort!.removeAllListeners('message');
}

if (parentPort) void main();
