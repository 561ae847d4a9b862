// From the coordinator's JobAssignment (one per agent and job attempt) to the WorkerAssignment
// each worker process receives (one per rank).
import * as path from 'node:path';
import { DEFAULT_LEARNING_RATE, parseModelSpec, parsePlan, parseTrainingSpec } from '@mist/core';
import type { JobAssignment__Output, RankAssignment__Output } from '@mist/rpc';
import type { RunOptions as WorkerRunOptions, WorkerAssignment, WorkerRendezvous } from '@mist/executor';
import { checkCheckpointDir } from './checkpoint-root';

export interface AssignmentLimits {
  /** Checkpoints only under this directory (`mist agent --checkpoint-root`). */
  checkpointRoot?: string;
}

function runOptions(a: JobAssignment__Output, limits: AssignmentLimits, vocab: number): WorkerRunOptions {
  const r = a.run;
  if (!r) throw new Error('the assignment has no run options');
  let data: WorkerRunOptions['data'];
  if (r.dataPath === '' || r.dataPath === 'synthetic') data = 'synthetic';
  else if (r.dataPath === 'corpus') data = 'corpus';
  else {
    if (!path.isAbsolute(r.dataPath) || r.dataPath.includes('\0')) throw new Error(`run.dataPath "${r.dataPath.replace(/\0/g, '\\0')}": a token file must be an absolute path`);
    if (r.dataDtype && r.dataDtype !== 'uint16' && r.dataDtype !== 'uint32') throw new Error(`run.dataDtype "${r.dataDtype}": expected uint16 or uint32`);
    // Default: uint16 when every id of the vocabulary fits in 16 bits (nanoGPT's GPT-2 dumps).
    const dtype = (r.dataDtype || (vocab <= 65536 ? 'uint16' : 'uint32')) as 'uint16' | 'uint32';
    data = { file: r.dataPath, dtype };
  }
  const out: WorkerRunOptions = { steps: r.steps, seed: r.seed, lr: r.learningRate ?? DEFAULT_LEARNING_RATE, data }; // unset: core's default, the executor's own
  if (r.checkpointDir) {
    out.checkpointDir = checkCheckpointDir(r.checkpointDir, limits.checkpointRoot);
    out.checkpointEvery = r.checkpointInterval;
  }
  if (r.resume) out.resume = true;
  if (r.allowNonFiniteLoss) out.allowNonFiniteLoss = true;
  if (r.keepCheckpoints > 0) out.keepCheckpoints = r.keepCheckpoints;
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
export function workerAssignments(a: JobAssignment__Output, limits: AssignmentLimits = {}): Array<{ rank: RankAssignment__Output; assignment: WorkerAssignment }> {
  const plan = parsePlan(JSON.parse(a.planJson));
  const model = parseModelSpec(JSON.parse(a.modelJson));
  const training = parseTrainingSpec(JSON.parse(a.trainingJson));
  const run = runOptions(a, limits, model.vocab);
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
