// The tuner: for every gradient-accumulation count G, intra-stage search of every stage group, then
// the inter-stage solver over the groups' frontiers; the best plan over all G wins. Every plan is
// re-estimated with the analyzer's estimatePlan, the same cost model the search used.
import {
  type AnalyzerContext, type CompiledStageModel, compileStageModel, estimatePlan, type PlanEstimate,
} from '@mist/analyzer';
import { clusterDevices, meshSize, SpecError, type Mesh, type Plan, parsePlan, PLAN_VERSION, type StageStrategy, type ZeroLevel } from '@mist/core';
import { ckptLevels, gradAccumChoices, meshChoices, parallelConfigs, type StageGroupSpec, stageGroupSpecs } from './enumerate';
import { solveInterStageDp } from './inter-stage-dp';
import { FrontierStoreBuilder, type InterStageInstance, type StageGroup } from './inter-stage-instance';
import { solveInterStageMilp } from './inter-stage-milp';
import { IntraStageSearch, ST, StrategyStore } from './intra-stage';
import { diagnoseNoFit, type NoFitReport } from './no-fit';
import { checkSearchSpace, mistSpace, type SearchSpace } from './search-space';
import { stageGroupFromSet } from './stage-frontiers';

export type TunePhase = 'intra-stage' | 'inter-stage' | 'done';

export interface TuneProgress {
  space: string;
  phase: TunePhase;
  /** Stage groups searched (intra-stage) or G values solved (inter-stage) so far, of `total`. */
  done: number;
  total: number;
  candidatesEvaluated: number;
  bestIterationTimeS: number | null;
}

export interface TuneOptions {
  space?: SearchSpace;
  /** Shorthand of the cluster, written into the plan (e.g. `1x8-l4`); default: the profile's cluster name. */
  clusterName?: string;
  /** A stage model already compiled for ctx (saves the compile when tuning several spaces). */
  compiled?: CompiledStageModel;
  onProgress?: (p: TuneProgress) => void;
  /**
   * A plan of this space already known (e.g. the best baseline plan): the search only looks for
   * strategies that can beat its iteration time, and returns it when nothing does.
   */
  incumbent?: Plan;
}

export interface TuneResult {
  space: string;
  /** The best plan, or null when nothing fits. */
  plan: Plan | null;
  /** estimatePlan of the plan. */
  predicted: PlanEstimate | null;
  /** The inter-stage objective of the plan (equal to predicted.iterationTimeS). */
  objectiveS: number | null;
  candidatesEvaluated: number;
  /** Pareto points kept over all stage groups (before sampling). */
  frontierPoints: number;
  stageGroups: number;
  tuningTimeS: number;
  /** Of which in the inter-stage solver. */
  interStageTimeS: number;
  solver: SearchSpace['solver'];
  /** Set when nothing fits: the smallest shortfall and what would help. */
  noFit: NoFitReport | null;
}

function stageStrategy(store: StrategyStore, ref: number, firstLayer: number, layers: number, mesh: Mesh): StageStrategy {
  const v = (c: number): number => store.get(ref, c);
  return {
    layers: [firstLayer, firstLayer + layers - 1],
    mesh: { nodes: mesh.nodes, gpusPerNode: mesh.gpusPerNode },
    microBatchSize: v(ST.B),
    dp: v(ST.DP),
    tp: v(ST.TP),
    sequenceParallel: v(ST.SP) === 1,
    ckptLayers: v(ST.CKPT),
    zero: v(ST.ZERO) as ZeroLevel,
    offload: { weights: v(ST.OW), grads: v(ST.OG), optim: v(ST.OO), activations: v(ST.OA) },
  };
}

/** Finds the plan with the lowest predicted iteration time that fits, in the given search space. */
export async function tune(ctx: AnalyzerContext, options: TuneOptions = {}): Promise<TuneResult> {
  const started = performance.now();
  const space = options.space ?? mistSpace();
  checkSearchSpace(space);
  const { model, training, profile } = ctx;
  const cluster = profile.cluster;
  if (model.positional === 'learned' && training.seqLen > model.maxSeq) {
    throw new SpecError('training spec', [{ field: 'seqLen', value: training.seqLen,
      message: `must be at most ${model.maxSeq} (learned positions of ${model.name})` }]);
  }
  const compiled = options.compiled ?? compileStageModel(ctx);
  const strategies = new StrategyStore();
  const search = new IntraStageSearch(compiled, strategies);
  const meshes = meshChoices(cluster);
  const specs = stageGroupSpecs(space, model.layers, cluster, meshes);
  const gValues = gradAccumChoices(training.globalBatch);
  const devices = clusterDevices(cluster);
  const total = specs.length * gValues.length;
  let done = 0;
  let frontierPoints = 0;
  let stageGroups = 0;
  let interStageMs = 0;
  let best: { iterationTimeS: number; plan: Plan } | null = null;
  if (options.incumbent) {
    const est = estimatePlan(parsePlan(options.incumbent, { model, cluster }), ctx, compiled);
    if (est.allFit) best = { iterationTimeS: est.iterationTimeS, plan: options.incumbent };
  }
  const report = (phase: TunePhase): void => {
    options.onProgress?.({
      space: space.name, phase, done, total, candidatesEvaluated: search.evaluated,
      bestIterationTimeS: best ? best.iterationTimeS : null,
    });
  };
  for (const G of gValues) {
    const samples = training.globalBatch / G;
    const store = new FrontierStoreBuilder();
    const groups: StageGroup[] = [];
    const groupSpecs: StageGroupSpec[] = [];
    for (const spec of specs) {
      done++;
      const configs = parallelConfigs(space, model, training.seqLen, spec.mesh, samples);
      if (configs.length === 0) continue;
      const set = search.searchGroup(spec, G, configs, ckptLevels(space.ckpt, spec.layers), space.offload, best ? best.iterationTimeS : Infinity);
      frontierPoints += set.size;
      const group = stageGroupFromSet(spec, meshSize(spec.mesh), set, space.frontierSize, store);
      if (group) {
        groups.push(group);
        groupSpecs.push(spec);
      }
      if (done % 16 === 0) report('intra-stage');
    }
    stageGroups += groups.length;
    report('inter-stage');
    const inst: InterStageInstance = {
      layers: model.layers, devices, gradAccumSteps: G, minStages: 1, maxStages: Math.min(space.maxStages, model.layers, devices),
      uniformPartition: space.uniformPartition, uniformMesh: space.uniformMesh, groups, frontiers: store.build(),
    };
    const solveStart = performance.now();
    const solution = space.solver === 'milp' ? await solveInterStageMilp(inst) : solveInterStageDp(inst);
    interStageMs += performance.now() - solveStart;
    if (!solution || (best && solution.iterationTimeS >= best.iterationTimeS)) continue;
    let layer = 0;
    const stages = solution.stages.map((s) => {
      const spec = groupSpecs[s.group];
      const st = stageStrategy(strategies, inst.frontiers.ref[s.point], layer, spec.layers, spec.mesh);
      layer += spec.layers;
      return st;
    });
    const plan: Plan = {
      version: PLAN_VERSION,
      model: model.name,
      cluster: options.clusterName ?? cluster.name,
      seqLen: training.seqLen,
      globalBatch: training.globalBatch,
      gradAccumSteps: G,
      flashAttention: training.flashAttention,
      stages,
    };
    best = { iterationTimeS: solution.iterationTimeS, plan: parsePlan(plan, { model, cluster }) };
  }
  const predicted = best ? estimatePlan(best.plan, ctx, compiled) : null;
  const result: TuneResult = {
    space: space.name,
    plan: best ? best.plan : null,
    predicted,
    objectiveS: best ? best.iterationTimeS : null,
    candidatesEvaluated: search.evaluated,
    frontierPoints,
    stageGroups,
    tuningTimeS: (performance.now() - started) / 1000,
    interStageTimeS: interStageMs / 1000,
    solver: space.solver,
    noFit: best ? null : diagnoseNoFit(ctx, space, compiled, search.shortfall, search.hostShortfall),
  };
  report('done');
  return result;
}
