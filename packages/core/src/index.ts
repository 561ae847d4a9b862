// @mist/core: the specs every part of Mist-TS shares, their schemas and the built-in catalogs.
export * from './validation';
export * from './units';
export * from './quantities';
export * from './names';
export * from './model';
export * from './model-catalog';
export * from './gpu';
export * from './cluster';
export * from './training';
export * from './hardware-profile';
export * from './plan';
export * from './load';
export * from './fit';
export * from './engine-capabilities';
export * from './backend-capabilities';
export * from './training-defaults';
export * from './rank-layout';
