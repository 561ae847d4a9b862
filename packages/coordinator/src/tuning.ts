// Tuning a submitted job: the cluster is the job's (when given) or the shape of the chosen agents'
// free devices; the hardware profile is the job's measured one, or the datasheet profile of the
// cluster's GPU. The tuner runs in-process (@mist/tuner) or, when configured, as a remote Tuner
// service.
import {
  builtinHardwareProfile, type ClusterSpec, clusterDevices, type HardwareProfile, parseClusterShorthand, parsePlan, type Plan,
} from '@mist/core';
import {
  callUnary, createClient, deadlineIn, type ClientOptions, type Prediction, type SearchSpace__Output, type TuneOptions__Output,
} from '@mist/rpc';
import { type SearchSpace, spaceByName, tune, type SpaceName, type TuneResult } from '@mist/tuner';
import type { AgentRecord } from './agent-registry';
import type { ValidatedJob } from './job-spec';

export interface TunedPlan {
  plan: Plan;
  predicted: Prediction | null;
}

export interface RemoteTuner {
  address: string;
  client: ClientOptions;
}

const SPACES: Record<SearchSpace__Output, SpaceName> = {
  SEARCH_SPACE_UNSPECIFIED: 'mist', SEARCH_SPACE_MIST: 'mist', SEARCH_SPACE_MEGATRON: 'megatron', SEARCH_SPACE_DEEPSPEED: 'deepspeed',
};

/** The tuner's search space for the TuneOptions of a request (space, solver, most stages); unset options keep the space's defaults. */
export function tunerSpaceFromOptions(options: TuneOptions__Output | null | undefined): SearchSpace {
  const overrides: { maxStages?: number; solver?: 'milp' | 'dp' } = {};
  if (options && options.maxStages > 0) overrides.maxStages = options.maxStages;
  if (options?.solver === 'SOLVER_MILP') overrides.solver = 'milp';
  if (options?.solver === 'SOLVER_DP') overrides.solver = 'dp';
  return spaceByName(SPACES[options?.space ?? 'SEARCH_SPACE_UNSPECIFIED'] ?? 'mist', overrides);
}

/** The devices tuning may use on each agent: free ones, the same count per agent (the smallest), as nodes x gpusPerNode. */
export function agentsShape(agents: Array<{ agent: AgentRecord; free: number }>): { nodes: number; gpusPerNode: number } {
  const usable = agents.filter((a) => a.free > 0);
  return { nodes: usable.length, gpusPerNode: usable.length ? Math.min(...usable.map((a) => a.free)) : 0 };
}

/** The cluster and profile to tune for. Throws a clear error when they cannot be derived. */
export function tuningTarget(job: ValidatedJob, agents: Array<{ agent: AgentRecord; free: number }>): { cluster: ClusterSpec; profile: HardwareProfile } {
  const shape = agentsShape(agents);
  if (shape.nodes === 0) throw new Error('no live agent has a free device to tune for');
  if (job.cluster) {
    const profile = job.profile ?? builtinHardwareProfile(job.cluster, job.training.computeDtype);
    return { cluster: job.cluster, profile: { ...profile, cluster: job.cluster } };
  }
  if (job.profile) {
    // A measured profile describes one host kind; the cluster's shape comes from the agents.
    const cluster = { ...job.profile.cluster, name: `${shape.nodes}x${shape.gpusPerNode}-${job.profile.cluster.gpu.name}`, ...shape };
    return { cluster, profile: { ...job.profile, cluster } };
  }
  const kinds = new Set(agents.flatMap((a) => a.agent.devices.map((d) => (d.kind === 'DEVICE_KIND_CUDA' && d.gpu ? d.gpu : `${d.kind}:${d.name}`))));
  const [only] = [...kinds];
  if (kinds.size !== 1 || only.includes(':')) {
    throw new Error(`cannot tune for the agents' devices (${[...kinds].join(', ')}): give the job a cluster (e.g. "1x4-l4") ` +
      'or a hardware profile measured with `mist profile` (CPU devices and unrecognised GPUs have no datasheet profile)');
  }
  const cluster = parseClusterShorthand(`${shape.nodes}x${shape.gpusPerNode}-${only}`);
  return { cluster, profile: builtinHardwareProfile(cluster, job.training.computeDtype) };
}

/** The headline figures of a cost-model estimate, as the protos carry them. */
export function predictionOf(p: NonNullable<TuneResult['predicted']>): Prediction {
  return { iterationTime: p.iterationTimeS, tokensPerSecond: p.tokensPerS, mfu: p.mfu, stagePeakMemory: p.stages.map((s) => s.peakMemoryBytes) };
}

/** Runs the tuner for the job; throws with the tuner's reason when no plan fits. */
export async function tuneJob(job: ValidatedJob, target: { cluster: ClusterSpec; profile: HardwareProfile }, remote?: RemoteTuner): Promise<TunedPlan> {
  const options = job.tune!;
  if (remote) {
    const client = createClient('Tuner', remote.address, remote.client);
    try {
      const res = await callUnary(client, 'tune', {
        model: { specJson: JSON.stringify(job.model) },
        cluster: { specJson: JSON.stringify(target.cluster) },
        trainingJson: JSON.stringify(job.training),
        options: { ...options, skipBaselines: true },
        profileJson: JSON.stringify(target.profile),
      }, { deadline: deadlineIn(3600) });
      return { plan: parsePlan(JSON.parse(res.planJson), { model: job.model, cluster: target.cluster }), predicted: res.predicted };
    } finally {
      client.close();
    }
  }
  const space = tunerSpaceFromOptions(options);
  const result = await tune({ model: job.model, training: job.training, profile: target.profile }, { space, clusterName: target.cluster.name });
  if (!result.plan || !result.predicted) {
    const why = result.noFit ? `: ${result.noFit.message}` : '';
    throw new Error(`no plan of the ${result.space} space fits ${job.model.name} on ${target.cluster.name} (${clusterDevices(target.cluster)} devices)${why}`);
  }
  return {
    plan: result.plan,
    predicted: predictionOf(result.predicted),
  };
}
