// Validation of a JobSpec that arrived over the network: every JSON document goes through
// @mist/core's schemas, and every problem names its field (e.g. `plan.stages[1].tp`), so that a bad
// job is refused before anything starts.
import {
  backendCapabilities, type BackendName, backendViolations, type ClusterSpec, type HardwareProfile, loadCluster, getModel, type ModelSpec, parseClusterSpec, parseHardwareProfile,
  nestIssues, parseModelSpec, valueAtField, parsePlan, parseTrainingSpec, type Plan, SpecError, type SpecIssue, type TrainingSpec,
} from '@mist/core';
import { checkHostPath, checkInteger, checkSpecSizes } from './job-limits';
import { knobsFromOptions } from './tune-knobs';
import { spaceFromKnobs, trainingForTarget } from '@mist/tuner';
import type { ClusterRef__Output, JobSpec__Output, ModelRef__Output, RunOptions__Output, TuneOptions__Output } from '@mist/rpc';

export type BackendChoice = 'auto' | 'cpu' | 'nccl';

export interface ValidatedJob {
  name: string;
  model: ModelSpec;
  training: TrainingSpec;
  /** The plan to run; null when the job asks to be tuned. */
  plan: Plan | null;
  tune: TuneOptions__Output | null;
  /** For tuning: the cluster given in the job, or null to derive it from the agents. */
  cluster: ClusterSpec | null;
  profile: HardwareProfile | null;
  agents: string[];
  backend: BackendChoice;
  run: RunOptions__Output;
  /** Refuse instead of queueing when the devices are busy. */
  noQueue: boolean;
  /** Automatic resumes allowed (from the newest verified checkpoint) when its workers died while the coordinator was down. */
  maxRestarts: number;
}

/** Element types of a token file (run.data): a flat little-endian array of token ids (common.proto, RunOptions.data_dtype). */
export const DATA_DTYPES = ['uint16', 'uint32'] as const;

/** Upper bound of JobSpec.max_restarts (a job that needs more is failing for a reason to look at). */
export const MAX_RESTARTS = 100;

/** Prefixes the issues of a nested document with its field name. */
function nested(field: string, err: unknown): SpecIssue[] {
  if (err instanceof SpecError) {
    return nestIssues(field, err.issues);
  }
  return [{ field, value: undefined, message: (err as Error).message }];
}

function parseJson(field: string, text: string, issues: SpecIssue[]): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    issues.push({ field, value: text.length > 40 ? `${text.slice(0, 37)}...` : text, message: `is not valid JSON (${(err as Error).message})` });
    return undefined;
  }
}

function attempt<T>(field: string, issues: SpecIssue[], fn: () => T): T | null {
  try {
    return fn();
  } catch (err) {
    issues.push(...nested(field, err));
    return null;
  }
}

/** The model a ModelRef names (catalog name or ModelSpec JSON); problems go to `issues`, then null. */
export function resolveModelRef(ref: ModelRef__Output | null | undefined, issues: SpecIssue[]): ModelSpec | null {
  // Decoded messages name the oneof member set; objects built in-process may only carry the member.
  const source = ref?.source ?? (ref?.name ? 'name' : ref?.specJson ? 'specJson' : undefined);
  if (!ref || (source !== 'name' && source !== 'specJson')) {
    issues.push({ field: 'model', value: undefined, message: 'required: a catalog name or a ModelSpec JSON document' });
    return null;
  }
  if (source === 'name') return attempt('model', issues, () => getModel(ref.name ?? ''));
  const data = parseJson('model', ref.specJson ?? '', issues);
  return data === undefined ? null : attempt('model', issues, () => parseModelSpec(data));
}

/** The cluster a ClusterRef names (shorthand or ClusterSpec JSON); null when unset or invalid (then in `issues`). */
export function resolveClusterRef(ref: ClusterRef__Output | null | undefined, issues: SpecIssue[]): ClusterSpec | null {
  const source = ref?.source ?? (ref?.shorthand ? 'shorthand' : ref?.specJson ? 'specJson' : undefined);
  if (source === 'shorthand') return attempt('cluster', issues, () => loadCluster(ref!.shorthand ?? ''));
  if (source !== 'specJson') return null;
  const data = parseJson('cluster', ref?.specJson ?? '', issues);
  return data === undefined ? null : attempt('cluster', issues, () => parseClusterSpec(data));
}

/**
 * The executor backend a job with no backend asked for runs on (`auto` resolves to it): the CPU
 * kernels. A job asking for NCCL runs on the `cuda` backend (one GPU per worker): its submit checks
 * use that table and a tuned job searches its space.
 */
export const EXECUTOR_BACKEND = 'cpu' as const;

/** The executor backend (core's capability table) of a job's backend choice. */
export function executorBackendOf(choice: BackendChoice): BackendName {
  return choice === 'nccl' ? 'cuda' : EXECUTOR_BACKEND;
}

const BACKENDS: Record<string, BackendChoice> = { BACKEND_UNSPECIFIED: 'auto', BACKEND_CPU: 'cpu', BACKEND_NCCL: 'nccl' };

/**
 * What the executor cannot run of the job, from core's backend table, so that the job is refused at
 * submit with the feature named instead of failing in a worker or training something else: the `cpu`
 * table for `auto` and `cpu`, the `cuda` table for `nccl`. Dtypes are checked where the training JSON
 * names them: left unset they are the tuner's cost-model default, and the backend trains in its own.
 */
function executorIssues(backend: BackendChoice, model: ModelSpec, training: TrainingSpec, plan: Plan | null, trainingJson: string): SpecIssue[] {
  const executor = executorBackendOf(backend);
  const given = (() => {
    try {
      return JSON.parse(trainingJson) as Record<string, unknown>;
    } catch {
      return {};
    }
  })();
  return backendViolations(backendCapabilities(executor), { model, training, plan })
    .filter((v) => !(v.field === 'training.paramDtype' || v.field === 'training.computeDtype') || v.field.slice('training.'.length) in given)
    .map((v) => ({ field: v.field, value: valueAtField({ model, training, plan }, v.field), message: `${v.feature}: not supported by the executor's ${executor} backend (${v.detail})` }));
}


/** Checks a submitted JobSpec; throws a SpecError naming every bad field. */
export function validateJobSpec(spec: JobSpec__Output | null | undefined): ValidatedJob {
  const issues: SpecIssue[] = [];
  if (!spec) throw new SpecError('job', [{ field: 'spec', value: undefined, message: 'required' }]);
  checkSpecSizes(spec);

  const model = resolveModelRef(spec.model, issues);

  let training: TrainingSpec | null = null;
  if (!spec.trainingJson) issues.push({ field: 'training', value: undefined, message: 'required: a TrainingSpec JSON document' });
  else {
    const data = parseJson('training', spec.trainingJson, issues);
    if (data !== undefined) training = attempt('training', issues, () => parseTrainingSpec(data));
  }

  const backend = BACKENDS[String(spec.backend ?? 'BACKEND_UNSPECIFIED')];
  if (!backend) issues.push({ field: 'backend', value: spec.backend, message: 'allowed: BACKEND_UNSPECIFIED, BACKEND_CPU, BACKEND_NCCL' });
  const executor = executorBackendOf(backend ?? 'auto');
  // A GPU job trains in the dtypes its training JSON names, else in the cuda backend's first (bf16):
  // the schema's default (fp16) is a cost-model default the GPU runtime does not train in.
  if (training && executor === 'cuda') {
    const given = parseJson('training', spec.trainingJson ?? '{}', []) as Record<string, unknown> | undefined;
    const dtype = backendCapabilities('cuda').dtypes[0];
    training = {
      ...training,
      ...(given && 'paramDtype' in given ? {} : { paramDtype: dtype }),
      ...(given && 'computeDtype' in given ? {} : { computeDtype: dtype }),
    };
  }

  let plan: Plan | null = null;
  let tune: TuneOptions__Output | null = null;
  const planSource = spec.planSource ?? (spec.planJson ? 'planJson' : spec.tune ? 'tune' : undefined);
  if (planSource === 'planJson') {
    const data = parseJson('plan', spec.planJson ?? '', issues);
    if (data !== undefined && model) plan = attempt('plan', issues, () => parsePlan(data, { model: model! }));
    if (plan && training) {
      if (plan.seqLen !== training.seqLen) {
        issues.push({ field: 'plan.seqLen', value: plan.seqLen, message: `must equal training.seqLen (${training.seqLen})` });
      }
      if (plan.globalBatch !== training.globalBatch) {
        issues.push({ field: 'plan.globalBatch', value: plan.globalBatch, message: `must equal training.globalBatch (${training.globalBatch})` });
      }
    }
  } else if (planSource === 'tune') {
    tune = spec.tune ?? null;
    if (tune && !(Number.isFinite(tune.timeLimit) && tune.timeLimit >= 0 && tune.timeLimit <= 7 * 86400)) {
      issues.push({ field: 'tune.timeLimit', value: tune.timeLimit, message: 'seconds in [0, 604800]; 0: the coordinator\'s --tune-time-limit' });
    } else if (tune) {
      // Every knob is checked at submit, through the same schema as `mist tune`'s flags; the time
      // limit may come from knobs_json, so the typed field carries the one that applies.
      const t = tune;
      const knobs = attempt('tune', issues, () => knobsFromOptions(t));
      if (knobs?.target !== undefined && knobs.target !== executor) {
        issues.push({ field: 'tune.target', value: knobs.target, message: `the job runs on the executor's ${executor} backend; ` +
          `allowed: ${executor} (plans for an engine come from \`mist tune --target ENGINE\` and \`mist export\`)` });
      } else if (knobs) {
        // The search covers what the job's executor backend runs, costed in the dtype it trains in.
        const runnable = { ...knobs, target: executor };
        if (model) attempt('tune', issues, () => spaceFromKnobs(runnable, model!));
        if (model && training) training = attempt('training', issues, () => trainingForTarget(runnable, model!, training!));
        if (knobs.timeLimit !== undefined && knobs.timeLimit > 7 * 86400) {
          issues.push({ field: 'tune.timeLimit', value: knobs.timeLimit, message: 'seconds in [0, 604800]' });
        }
        tune = { ...t, timeLimit: knobs.timeLimit ?? t.timeLimit, knobsJson: JSON.stringify(runnable) };
      }
    }
  } else {
    issues.push({ field: 'plan', value: undefined, message: 'required: a Plan JSON document, or "tune"' });
  }

  const cluster = resolveClusterRef(spec.cluster, issues);
  let profile: HardwareProfile | null = null;
  if (spec.profileJson) {
    const data = parseJson('profile', spec.profileJson, issues);
    if (data !== undefined) profile = attempt('profile', issues, () => parseHardwareProfile(data));
  }

  if (backend && model && training) issues.push(...executorIssues(backend, model, training, plan, spec.trainingJson));

  const run = spec.run;
  if (!run) issues.push({ field: 'run', value: undefined, message: 'required: at least run.steps' });
  else {
    // Field names are those of the job file (`mist launch job.json`); the JobSpec's own name follows where it differs.
    checkInteger(issues, 'run.steps', run.steps, 1);
    checkInteger(issues, 'run.seed', run.seed, 0);
    checkInteger(issues, 'run.checkpointEvery (checkpoint_interval)', run.checkpointInterval, 0);
    checkInteger(issues, 'run.metricsEvery (metrics_interval)', run.metricsInterval, 0);
    if (run.learningRate !== undefined && run.learningRate !== null && !(Number.isFinite(run.learningRate) && run.learningRate > 0)) {
      issues.push({ field: 'run.learningRate', value: run.learningRate, message: 'must be a finite number > 0' });
    }
    checkHostPath(issues, 'run.checkpointDir', run.checkpointDir);
    checkHostPath(issues, 'run.data (data_path)', run.dataPath);
    // The agent refuses any other element type of a token file, after placement; say it here, at once.
    if (run.dataDtype) {
      if (!(DATA_DTYPES as readonly string[]).includes(run.dataDtype)) {
        issues.push({ field: 'run.dataDtype (data_dtype)', value: run.dataDtype, message: `allowed: ${DATA_DTYPES.join(', ')} (or unset: uint16 when the model's vocabulary fits, else uint32)` });
      } else if (!run.dataPath || run.dataPath === 'synthetic' || run.dataPath === 'corpus') {
        issues.push({ field: 'run.dataDtype (data_dtype)', value: run.dataDtype, message: `applies to a token file given as run.data, not to "${run.dataPath || 'synthetic'}"` });
      }
    }
    if (run.checkpointInterval > 0 && !run.checkpointDir) {
      issues.push({ field: 'run.checkpointEvery (checkpoint_interval)', value: run.checkpointInterval, message: 'needs run.checkpointDir' });
    }
  }
  if ((spec.maxRestarts ?? 0) > MAX_RESTARTS) {
    issues.push({ field: 'maxRestarts', value: spec.maxRestarts, message: `at most ${MAX_RESTARTS}` });
  }
  const agents = spec.agents ?? [];
  agents.forEach((a, i) => {
    if (!a) issues.push({ field: `agents[${i}]`, value: a, message: 'must be an agent id or host name' });
  });

  if (issues.length > 0 || !model || !training || !run || !backend) throw new SpecError('job', issues);
  return {
    name: spec.name || model.name, model, training, plan, tune, cluster, profile, agents: [...agents], backend, run,
    noQueue: spec.noQueue === true,
    maxRestarts: spec.maxRestarts ?? 0,
  };
}
