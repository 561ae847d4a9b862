// @mist/tuner: the Mist search — intra-stage Pareto frontiers, the inter-stage MILP / bottleneck DP,
// the Megatron-LM and DeepSpeed baseline spaces, and brute force for checking small instances.
export {
  checkSearchSpace, type CkptMode, DEFAULT_FRONTIER_SIZE, DEFAULT_OFFLOAD_STEP, deepspeedSpace, engineSpace, type InterStageSolver,
  megatronSpace, mistSpace, NO_OFFLOAD_LEVELS, type OffloadLevels, ratioGrid, type SearchSpace, spaceByName,
  SPACE_NAMES, type SpaceName, uniformOffloadLevels,
} from './search-space';
export { planInSpace, planSpaceViolations } from './space-membership';
export { backendSpace } from './backend-space';
export {
  FP8_KNOB_VALUES, type Fp8Knob, type KnobSpec, mergeSearchKnobs, parseSearchKnobs, SEARCH_KNOBS, type SearchKnobs, searchKnobsFromFlags, spaceFromKnobs,
  trainingForTarget,
} from './search-knobs';
export { enginePartitions, type EngineTuneOptions, tuneForEngine } from './engine-search';
export {
  atDepth, atGradAccum, ckptLevels, divisors, gradAccumChoices, meshChoices, type ParallelConfig, parallelConfigs, queryPp, selectiveLevels,
  type StageGroupSpec, stageGroupSpecs, tpProblem,
} from './enumerate';
export { stageModelReadsPp } from './pipeline-depth';
export { StagePareto, paretoFrontier2D, paretoFrontier3D, sampleFrontier } from './pareto';
export {
  type ChosenStage, evaluateSolution, type FrontierStore, FrontierStoreBuilder, type InterStageInstance,
  type InterStageSolution, type StageGroup,
} from './inter-stage-instance';
export { type DpStats, solveInterStageDp } from './inter-stage-dp';
export { type MilpOptions, type MilpStats, solveInterStageMilp } from './inter-stage-milp';
export { IntraStageSearch, type Shortfall, ST, STRATEGY_WIDTH, StrategyStore } from './intra-stage';
export { type BindingMemory, diagnoseNoFit, type NoFitReport } from './no-fit';
export { tune, type TuneGap, type TuneOptions, type TunePhase, type TuneProgress, type TuneResult, type TuneStop } from './tuner';
export { defaultCacheDir, FRONTIER_CACHE_VERSION } from './frontier-cache';
export { explainReplan, type ReplanReport, type StageChange } from './replan';
export { tuneWithBaselines, type BaselineComparison, type TuneWithBaselinesOptions } from './compare';
export { bruteForce, type BruteForceResult } from './brute-force';
export { fp8Choices, type Fp8Outcome, planFp8Field, tuneFp8Choice } from './fp8-choice';
export { type DimensionGain, dimensionGains, type DimensionGainsOptions, type DimensionUse, type NewDimension, newDimensionsUsed, spaceWithout } from './dimension-gains';
export { interleavedChunkChoices, searchInterleaved } from './interleaved-search';
