// From the coordinator's JobAssignment (one per agent and job attempt) to the WorkerAssignment
// each worker process receives (one per rank).
import { parseModelSpec, parsePlan, parseTrainingSpec } from '@mist/core';
import type { JobAssignment__Output, RankAssignment__Output } from '@mist/rpc';
import type { RunOptions as WorkerRunOptions, WorkerAssignment, WorkerRendezvous } from '@mist/executor';

/**
 * Learning rate when the job does not set one. The executor's protocol requires a value; 1e-3 is
 * the AdamW rate nanoGPT uses for its small character-level GPT (config/train_shakespeare_char.py),
 * the closest published setting to our tiny CPU models.
 */
export const DEFAULT_LEARNING_RATE = 1e-3;

function runOptions(a: JobAssignment__Output): WorkerRunOptions {
  const r = a.run;
  if (!r) throw new Error('the assignment has no run options');
  let data: WorkerRunOptions['data'];
  if (r.dataPath === '' || r.dataPath === 'synthetic') data = 'synthetic';
  else if (r.dataPath === 'corpus') data = 'corpus';
  else throw new Error(`run.dataPath "${r.dataPath}": the executor reads only "corpus" (the shipped text) or synthetic tokens`);
  const out: WorkerRunOptions = { steps: r.steps, seed: r.seed, lr: r.learningRate ?? DEFAULT_LEARNING_RATE, data };
  if (r.checkpointDir) {
    out.checkpointDir = r.checkpointDir;
    out.checkpointEvery = r.checkpointInterval;
  }
  if (r.resume) out.resume = true;
  if (r.metricsInterval > 0) out.metricsEvery = r.metricsInterval;
  return out;
}

function rendezvous(a: JobAssignment__Output): WorkerRendezvous {
  const r = a.rendezvous;
  if (r?.kind === 'cpu' && r.cpu) return { kind: 'cpu', peers: [...r.cpu.peers] };
  if (r?.kind === 'nccl' && r.nccl) {
    const out: WorkerRendezvous = { kind: 'nccl' };
    if (r.nccl.uniqueId && r.nccl.uniqueId.length > 0) out.uniqueId = [...r.nccl.uniqueId];
    if (r.nccl.rootAddress) out.rootAddress = r.nccl.rootAddress;
    return out;
  }
  throw new Error('the assignment has no rendezvous');
}

/** One WorkerAssignment per rank of this agent; throws when the assignment is malformed. */
export function workerAssignments(a: JobAssignment__Output): Array<{ rank: RankAssignment__Output; assignment: WorkerAssignment }> {
  const plan = parsePlan(JSON.parse(a.planJson));
  const model = parseModelSpec(JSON.parse(a.modelJson));
  const training = parseTrainingSpec(JSON.parse(a.trainingJson));
  const run = runOptions(a);
  const rdv = rendezvous(a);
  const backend = a.backend === 'BACKEND_NCCL' ? 'nccl' : 'cpu';
  if (backend === 'cpu' && rdv.kind === 'cpu' && rdv.peers.length !== a.worldSize) {
    throw new Error(`the CPU rendezvous lists ${rdv.peers.length} peers for a world of ${a.worldSize}`);
  }
  return a.ranks.map((rank) => ({
    rank,
    assignment: {
      jobId: a.jobId, attempt: a.attempt, rank: rank.rank, worldSize: a.worldSize, plan, model, training, run, backend,
      rendezvous: rdv, deviceIndex: rank.deviceIndex,
    },
  }));
}
