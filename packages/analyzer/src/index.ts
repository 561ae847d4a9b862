// @mist/analyzer: symbolic runtime and memory model of a pipeline stage under any strategy, and
// the estimate of a whole plan (Mist, EuroSys 2025; cost model in ARCHITECTURE.md).
export { type AnalyzerContext, buildStageExpressions, modelBindings, type StageExpressions } from './stage-model';
export {
  checkStageQuery, type CompiledStageModel, compileStageModel, readStageEstimate, type StageEstimate,
  type StageMemory, type StageQuery, type StageTime, readStageQuery, writeStageQuery,
} from './compile';
export { DEFAULT_HOST_RESERVE_FRACTION, usableHostMemoryPerGpu } from './host-memory';
export { IN, INPUT_WIDTH, OUT, OUTPUT_WIDTH, POSITION_CODE, type StagePosition, stagePosition } from './layout';
export {
  estimatePlan, inFlightMicroBatches, interleavedStageEstimate, iterationTime, type PlanEstimate, type PlanStageEstimate, planStageQueries, planStageQuery,
  planTraining, stepJitter,
} from './plan-estimate';
export { type FlopsOptions, modelFlopsPerIteration, opGraphFlopsPerIteration } from './flops';
export { checkpointBytes, ELEMENTWISE_TABLE_NAMES, embeddingOps, headOps, layerOps, type Op, type OpComm, type OpKind } from './op-graph';
export { embeddingParamsPerRank, finalNormParams, layerParamsPerRank, lmHeadParamsPerRank } from './params';
export { CostModel, computeRates, type ComputeRates, fp8Rate } from './hardware-cost';
export { type AllBusyTerms, backendTerms, type BackendTerms } from './backend-terms';
export * as expr from './expr';
export { M as MODEL_SYMBOLS, S as STRATEGY_SYMBOLS } from './symbols';
export { type Analysis, type AnalysisStage, type AnalyzeInput, analyzePlan } from './report';
export { contextFor, type ContextInput } from './context';
export { checkFp8, fp8StageTerms, type Fp8StageTerms } from './fp8-stage';
export { fp8CastOp } from './fp8-ops';
