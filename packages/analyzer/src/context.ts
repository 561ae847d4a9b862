// One way to say what is analysed or tuned: `contextFor({ model, cluster | profile, training })` gives
// the AnalyzerContext that `tune` and `tuneWithBaselines` (@mist/tuner) take, and that `analyzePlan`
// takes as `{ ...ctx, plan }`. Names and shorthands are accepted where a spec is expected: a catalog
// model name (`gpt3-1.3b`, any case) or model file, a cluster shorthand (`1x8-l4`) or cluster file.
import {
  builtinHardwareProfile, type ClusterSpec, type HardwareProfile, loadCluster, loadModel, type ModelSpec, parseTrainingSpec,
  SpecError, type TrainingSpecInput,
} from '@mist/core';
import type { AnalyzerContext } from './stage-model';

export interface ContextInput {
  /** A ModelSpec, or a catalog name / model file / Hugging Face config.json path. */
  model: ModelSpec | string;
  /** The cluster, for the built-in datasheet profile; a ClusterSpec, a shorthand or a cluster file. */
  cluster?: ClusterSpec | string;
  /** A measured hardware profile (`mist profile`); it carries its own cluster. */
  profile?: HardwareProfile;
  /** Global batch and sequence length (required), dtypes and flash attention. */
  training: TrainingSpecInput;
}

/** The AnalyzerContext of a model, a cluster or a measured profile, and a training spec (validated). */
export function contextFor(input: ContextInput): AnalyzerContext {
  if (input.cluster !== undefined && input.profile !== undefined) {
    throw new SpecError('context', [{
      field: 'cluster', value: typeof input.cluster === 'string' ? input.cluster : input.cluster.name,
      message: 'give a cluster or a profile, not both (a profile carries its own cluster)',
    }]);
  }
  const training = parseTrainingSpec(input.training);
  const model = typeof input.model === 'string' ? loadModel(input.model) : input.model;
  let profile = input.profile;
  if (profile === undefined) {
    if (input.cluster === undefined) {
      throw new SpecError('context', [{ field: 'cluster', value: undefined, message: 'required: a cluster (e.g. "1x8-l4") or a profile' }]);
    }
    const cluster = typeof input.cluster === 'string' ? loadCluster(input.cluster) : input.cluster;
    profile = builtinHardwareProfile(cluster, training.computeDtype);
  }
  return { model, training, profile };
}
