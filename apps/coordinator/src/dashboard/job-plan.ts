// A job's plan as the analyzer sees it: the estimate of the job's plan under the same model,
// training spec and hardware profile the coordinator tuned with (the job's cluster or measured
// profile, shaped like the devices its workers hold; else the datasheet profile of its agents'
// GPUs), the picture of that plan (@mist/viz), and per stage the predicted figures beside the
// measured ones.
import { type Analysis, analyzePlan } from '@mist/analyzer';
import { validateJobSpec } from '@mist/coordinator';
import { builtinHardwareProfile, type HardwareProfile, parseClusterShorthand, type Plan } from '@mist/core';
import { type AgentInfo__Output, type Job__Output } from '@mist/rpc';
import { buildTimeline, planPictureSvg } from '@mist/viz';
import { type StageMeasurement } from './job-series';

export interface JobPlan {
  plan: Plan;
  analysis: Analysis;
}

/** The devices the job's workers hold, as a cluster shape: hosts, and devices on the fullest host. */
function workerShape(job: Job__Output): { nodes: number; gpusPerNode: number } {
  const perAgent = new Map<string, number>();
  for (const w of job.workers) perAgent.set(w.agentId, (perAgent.get(w.agentId) ?? 0) + 1);
  return { nodes: perAgent.size, gpusPerNode: Math.max(0, ...perAgent.values()) };
}

function jobProfile(job: Job__Output, agents: AgentInfo__Output[]): HardwareProfile {
  const v = validateJobSpec(job.spec);
  if (v.cluster) return { ...(v.profile ?? builtinHardwareProfile(v.cluster, v.training.computeDtype)), cluster: v.cluster };
  const shape = workerShape(job);
  if (shape.nodes === 0) throw new Error('the job has no workers yet: its devices, and so its hardware profile, are not known');
  if (v.profile) {
    const cluster = { ...v.profile.cluster, name: `${shape.nodes}x${shape.gpusPerNode}-${v.profile.cluster.gpu.name}`, ...shape };
    return { ...v.profile, cluster };
  }
  const mine = new Set(job.workers.map((w) => w.agentId));
  const gpus = new Set(agents.filter((a) => mine.has(a.agentId)).flatMap((a) => a.devices.map((d) => d.gpu || `${d.kind}:${d.name}`)));
  const [only] = [...gpus];
  if (gpus.size !== 1 || only.includes(':')) throw new Error(`no datasheet profile for the job's devices (${[...gpus].join(', ')}) and the job has no profile`);
  return builtinHardwareProfile(parseClusterShorthand(`${shape.nodes}x${shape.gpusPerNode}-${only}`), v.training.computeDtype);
}

/** The analyzer's estimate of the job's plan; throws with the reason when it cannot be made. */
export function jobPlan(job: Job__Output, agents: AgentInfo__Output[]): JobPlan {
  if (!job.planJson) throw new Error('the job has no plan yet');
  const v = validateJobSpec(job.spec);
  const { analysis, plan } = analyzePlan({ model: v.model, plan: JSON.parse(job.planJson), profile: jobProfile(job, agents), training: v.training });
  return { plan, analysis };
}

export function jobPictureSvg(job: Job__Output, p: JobPlan): string {
  return planPictureSvg(p.plan, p.analysis, { title: `job ${job.id} (${p.analysis.model}): ${p.plan.stages.length}-stage plan, G=${p.plan.gradAccumSteps}` });
}

export interface StageComparison {
  stage: number;
  /** Predicted seconds per iteration the stage computes: G (forward + backward + recompute) + optimizer. */
  predictedComputeS: number;
  measuredComputeS: number | null;
  /** Predicted iteration (the whole pipeline) and the stage's measured step time. */
  predictedStepS: number;
  measuredStepS: number | null;
  /** Predicted idle (bubbles) per iteration, from the drawn schedule. */
  predictedIdleS: number;
  predictedPeakBytes: number;
  measuredPeakBytes: number | null;
}

export function compareStages(p: JobPlan, measured: StageMeasurement[]): StageComparison[] {
  const G = p.plan.gradAccumSteps;
  const timeline = buildTimeline(p.plan, p.analysis);
  return p.analysis.stages.map((s, i) => {
    const m = measured.find((x) => x.stage === i);
    return {
      stage: i,
      predictedComputeS: G * (s.time.forward + s.time.backward + s.time.recompute) + s.time.optimizer,
      measuredComputeS: m ? m.computeTimeS : null,
      predictedStepS: p.analysis.iterationTimeS,
      measuredStepS: m ? m.stepTimeS : null,
      predictedIdleS: timeline.stages[i].idleS,
      predictedPeakBytes: s.peakMemoryBytes,
      measuredPeakBytes: m ? m.deviceMemoryBytes : null,
    };
  });
}
