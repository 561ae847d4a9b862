// @mist/executor: runs one rank of a plan. So far: the stage module (transformer layers from a
// ModelSpec on the native CPU kernels, TP-ready) and single-process training.
export * from './model';
export * from './train';
