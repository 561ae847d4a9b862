export { trainSingleProcess, TRAIN_DEFAULTS } from './single-process';
export type { StepCallback, StepReport, TrainOptions, TrainResult } from './single-process';
export { AdamW, ADAMW_DEFAULTS, learningRate } from './optimizer';
export type { AdamWOptions } from './optimizer';
export { CorpusSampler, SyntheticSampler, corpusPath, loadCorpus, makeSampler } from './data';
export type { BatchSampler, DataSource, TokenBatch } from './data';
export { readTokenFile, TokenFileSampler, type TokenFile } from './token-file';
