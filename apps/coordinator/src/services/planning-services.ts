// The planning services the coordinator hosts beside its job API (ARCHITECTURE.md, apps/coordinator):
// Analyzer.Analyze, Tuner.Tune and Profiler.Profile. Requests are validated with core's schemas; a
// bad document is answered INVALID_ARGUMENT with the field named, a plan that does not fit is
// reported in the estimate (not an error), and nothing fitting is FAILED_PRECONDITION with the reason.
import { analyzePlan } from '@mist/analyzer';
import {
  builtinHardwareProfile, type ClusterSpec, type HardwareProfile, type ModelSpec, parseHardwareProfile, parseTrainingSpec, SpecError,
  type SpecIssue,
} from '@mist/core';
import { knobsFromOptions, predictionOf, resolveClusterRef, resolveModelRef } from '@mist/coordinator';
import { profileRequestHandler } from '@mist/profiler';
import {
  addService, type BaselineResult, type ClusterRef__Output, errorToStatus, type HandlersOf, type ModelRef__Output, rpcError,
  type RpcServer, status,
} from '@mist/rpc';
import { spaceFromKnobs, trainingForTarget, tune, type TuneResult, tuneWithBaselines } from '@mist/tuner';

/** Resolves a request's references with the job API's rules; every problem in one SpecError. */
function resolveRefs(req: { model: ModelRef__Output | null; cluster: ClusterRef__Output | null }): { model: ModelSpec; cluster: ClusterSpec | undefined } {
  const issues: SpecIssue[] = [];
  const model = resolveModelRef(req.model, issues);
  const cluster = resolveClusterRef(req.cluster, issues);
  if (issues.length > 0 || !model) throw new SpecError('request', issues);
  return { model, cluster: cluster ?? undefined };
}

function profileOf(json: string, cluster: ClusterSpec | undefined, computeDtype: 'fp16' | 'bf16' | 'fp32'): HardwareProfile {
  if (json) return parseHardwareProfile(JSON.parse(json));
  if (!cluster) throw new SpecError('request', [{ field: 'cluster', value: undefined, message: 'required when no profile_json is given' }]);
  return builtinHardwareProfile(cluster, computeDtype);
}


/** Runs a handler body; its error becomes a status through @mist/rpc's errorToStatus (bad input: INVALID_ARGUMENT). */
async function answer<T>(body: () => Promise<T> | T, callback: (err: Error | null, value?: T) => void): Promise<void> {
  try {
    callback(null, await body());
  } catch (err) {
    callback(errorToStatus(err));
  }
}

function baseline(space: 'SEARCH_SPACE_MEGATRON' | 'SEARCH_SPACE_DEEPSPEED', r: TuneResult, speedup: number | null): BaselineResult {
  if (!r.plan || !r.predicted) return { space, feasible: false, reason: r.noFit?.message ?? 'nothing fits' };
  return { space, feasible: true, planJson: JSON.stringify(r.plan), predicted: predictionOf(r.predicted), speedup: speedup ?? 0 };
}

export const analyzerHandlers: HandlersOf<'Analyzer'> = {
  Analyze: (call, callback) => {
    void answer(() => {
      const req = call.request;
      const { model, cluster } = resolveRefs(req);
      const training = req.trainingJson ? JSON.parse(req.trainingJson) : undefined;
      const profile = req.profileJson ? parseHardwareProfile(JSON.parse(req.profileJson)) : undefined;
      const { analysis } = analyzePlan({ model, plan: JSON.parse(req.planJson), cluster, profile, training });
      return { estimateJson: JSON.stringify(analysis), predicted: predictionOf(analysis) };
    }, callback);
  },
};

export const tunerHandlers: HandlersOf<'Tuner'> = {
  Tune: (call, callback) => {
    void answer(async () => {
      const req = call.request;
      const { model, cluster } = resolveRefs(req);
      const knobs = knobsFromOptions(req.options);
      const training0 = parseTrainingSpec(JSON.parse(req.trainingJson || '{}'));
      const profile = profileOf(req.profileJson, cluster, training0.computeDtype);
      const training = trainingForTarget(knobs, model, training0, (cluster ?? profile.cluster).gpu.name);
      const ctx = { model, training, profile: cluster ? { ...profile, cluster } : profile };
      const space = spaceFromKnobs(knobs, model, training);
      const clusterName = (cluster ?? profile.cluster).name;
      // The timeLimit knob: the search returns the best plan found when the time is up.
      const timeLimitS = knobs.timeLimit;
      if (req.options?.skipBaselines) {
        const best = await tune(ctx, { space, clusterName, timeLimitS });
        if (!best.plan || !best.predicted) throw rpcError(status.FAILED_PRECONDITION, best.noFit?.message ?? 'no plan fits');
        return { planJson: JSON.stringify(best.plan), predicted: predictionOf(best.predicted), baselines: [], searchTime: best.tuningTimeS, candidates: best.candidatesEvaluated };
      }
      const cmp = await tuneWithBaselines(ctx, { space, clusterName, timeLimitS });
      if (!cmp.best.plan || !cmp.best.predicted) throw rpcError(status.FAILED_PRECONDITION, cmp.best.noFit?.message ?? 'no plan fits');
      return {
        planJson: JSON.stringify(cmp.best.plan),
        predicted: predictionOf(cmp.best.predicted),
        baselines: [
          baseline('SEARCH_SPACE_MEGATRON', cmp.megatron, cmp.speedup.megatron),
          baseline('SEARCH_SPACE_DEEPSPEED', cmp.deepspeed, cmp.speedup.deepspeed),
        ],
        searchTime: cmp.tuningTimeS,
        candidates: cmp.best.candidatesEvaluated + cmp.megatron.candidatesEvaluated + cmp.deepspeed.candidatesEvaluated,
      };
    }, callback);
  },
};

export const profilerHandlers: HandlersOf<'Profiler'> = {
  Profile: (call, callback) => {
    void answer(async () => {
      const started = performance.now();
      const profileJson = await profileRequestHandler({ quick: call.request.quick });
      return { profileJson, elapsed: (performance.now() - started) / 1000 };
    }, callback);
  },
};

/** Adds Analyzer, Tuner and Profiler to a server (the coordinator's, or a standalone one). */
export function addPlanningServices(server: RpcServer): void {
  addService(server, 'Analyzer', analyzerHandlers);
  addService(server, 'Tuner', tunerHandlers);
  addService(server, 'Profiler', profilerHandlers);
}
