// The job file of `mist launch job.json`: what to train (model, training spec), how (a plan file,
// an inline plan, or "tune"), where (agents, backend) and the run options. Relative paths are
// relative to the job file. It becomes the JobSpec the coordinator receives.
import * as path from 'node:path';
import {
  loadModel, nestIssues, parsePlan, parseSpec, parseTrainingSpec, readSpecFile, SpecError,
} from '@mist/core';
import type { JobSpec } from '@mist/rpc';
import { parseSearchKnobs } from '@mist/tuner';
import { z } from 'zod';

const objectDoc = z.record(z.string(), z.unknown());

export const JobFileSchema = z.strictObject({
  name: z.string().min(1).optional(),
  /** A catalog name, a model file (our JSON/YAML or a Hugging Face config.json), or an inline ModelSpec. */
  model: z.union([z.string().min(1), objectDoc]),
  /** TrainingSpec (@mist/core). */
  training: objectDoc,
  /** "tune", a plan file, or an inline plan. */
  plan: z.union([z.string().min(1), objectDoc]),
  /** The search knobs (@mist/tuner search-knobs.ts, the same as `mist tune`'s flags), checked where the job is read. */
  tune: objectDoc.optional(),
  /** For tuning: a cluster shorthand or ClusterSpec; default: derived from the agents' devices. */
  cluster: z.union([z.string().min(1), objectDoc]).optional(),
  /** For tuning: a hardware profile file (from `mist profile`) or an inline one. */
  profile: z.union([z.string().min(1), objectDoc]).optional(),
  /** Agent ids or host names; default: every live agent. */
  agents: z.array(z.string().min(1)).default([]),
  backend: z.enum(['auto', 'cpu', 'nccl']).default('auto'),
  /** false: refuse the job when its devices are busy instead of waiting in the queue (`mist launch --no-queue`). */
  queue: z.boolean().default(true),
  /** Resumes the job by itself (from its newest verified checkpoint) after a failed worker or lost agent, at most this many times. */
  maxRestarts: z.number().int().min(0).max(100).default(0),
  run: z.strictObject({
    steps: z.number().int().positive(),
    seed: z.number().int().nonnegative().default(0),
    learningRate: z.number().positive().optional(),
    /** "corpus" (the shipped text), "synthetic", or a token file on the workers' hosts. */
    data: z.string().min(1).default('synthetic'),
    /** Directory for sharded checkpoints, on the workers' hosts (a shared file system across hosts). */
    checkpointDir: z.string().min(1).optional(),
    /** Steps between checkpoints; 0: only at the end. */
    checkpointEvery: z.number().int().nonnegative().default(0),
    /** Steps between metric reports; 0: every step. */
    metricsEvery: z.number().int().nonnegative().default(0),
    /** Element type of a token file given as data: "uint16" or "uint32" (default: uint16 when the vocabulary fits). */
    dataDtype: z.enum(['uint16', 'uint32']).optional(),
    /** Keep only the newest K checkpoints of the job (0: all). */
    keepCheckpoints: z.number().int().nonnegative().max(1_000_000).default(0),
    /** Go on when the loss is not finite (default: the job fails); such states are never checkpointed. */
    allowNonFiniteLoss: z.boolean().default(false),
  }),
});
export type JobFile = z.output<typeof JobFileSchema>;

/**
 * A job file's tune section as TuneOptions: every knob travels in knobsJson. Older files wrote
 * `solver: "auto"` and `maxStages: 0` for "the tuner's choice": read as no knob.
 */
function tuneOptions(doc: Record<string, unknown> | undefined): JobSpec['tune'] {
  const t: Record<string, unknown> = { ...(doc ?? {}) };
  if (t.solver === 'auto') delete t.solver;
  if (t.maxStages === 0) delete t.maxStages;
  const knobs = parseSearchKnobs(t, 'tune');
  return { space: 'SEARCH_SPACE_UNSPECIFIED', solver: 'SOLVER_UNSPECIFIED', maxStages: 0, timeLimit: 0, skipBaselines: true, knobsJson: JSON.stringify(knobs) };
}
const BACKEND = { auto: 'BACKEND_UNSPECIFIED', cpu: 'BACKEND_CPU', nccl: 'BACKEND_NCCL' } as const;

function within<T>(field: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SpecError) {
      throw new SpecError('job file', nestIssues(field, err.issues));
    }
    throw err;
  }
}

/** Turns a job document into the JobSpec to submit; `baseDir` resolves relative file names. Throws a SpecError naming the field. */
export function jobSpecFromDocument(data: unknown, baseDir: string): JobSpec {
  const doc = parseSpec(JobFileSchema, data, 'job file');
  const file = (p: string): string => path.resolve(baseDir, p);
  const model = typeof doc.model === 'string' ? within('model', () => loadModel(/[./\\]/.test(doc.model as string) ? file(doc.model as string) : doc.model as string)) : doc.model;
  within('training', () => parseTrainingSpec(doc.training));
  const spec: JobSpec = {
    name: doc.name ?? '',
    model: typeof doc.model === 'string' && !/[./\\]/.test(doc.model) ? { name: doc.model } : { specJson: JSON.stringify(model) },
    trainingJson: JSON.stringify(doc.training),
    agents: doc.agents,
    backend: BACKEND[doc.backend],
    run: {
      steps: doc.run.steps,
      seed: doc.run.seed,
      dataPath: doc.run.data === 'synthetic' ? '' : doc.run.data,
      checkpointDir: doc.run.checkpointDir ? path.resolve(baseDir, doc.run.checkpointDir) : '',
      checkpointInterval: doc.run.checkpointEvery,
      metricsInterval: doc.run.metricsEvery,
      resume: false,
      keepCheckpoints: doc.run.keepCheckpoints,
      allowNonFiniteLoss: doc.run.allowNonFiniteLoss,
      dataDtype: doc.run.dataDtype ?? '',
      ...(doc.run.learningRate !== undefined ? { learningRate: doc.run.learningRate } : {}),
    },
    maxRestarts: doc.maxRestarts,
    noQueue: !doc.queue,
  };
  if (doc.plan === 'tune') {
    spec.tune = within('tune', () => tuneOptions(doc.tune));
  } else {
    const planDoc = typeof doc.plan === 'string' ? within('plan', () => readSpecFile(file(doc.plan as string))) : doc.plan;
    within('plan', () => parsePlan(planDoc));
    spec.planJson = JSON.stringify(planDoc);
  }
  if (doc.cluster !== undefined) {
    spec.cluster = typeof doc.cluster === 'string'
      ? (/[./\\]/.test(doc.cluster) ? { specJson: JSON.stringify(readSpecFile(file(doc.cluster))) } : { shorthand: doc.cluster })
      : { specJson: JSON.stringify(doc.cluster) };
  }
  if (doc.profile !== undefined) {
    spec.profileJson = JSON.stringify(typeof doc.profile === 'string' ? readSpecFile(file(doc.profile)) : doc.profile);
  }
  return spec;
}

/** Reads a job file (JSON or YAML) into the JobSpec to submit. */
export function loadJobFile(file: string): JobSpec {
  return jobSpecFromDocument(readSpecFile(file), path.dirname(path.resolve(file)));
}
