// One declarative description of the transformer block, costed by the analyzer and run by the executor.
export * from './dim';
export * from './types';
export * from './layer-block';
export * from './launches';
export * from './pre-post-blocks';
export * from './selective';
