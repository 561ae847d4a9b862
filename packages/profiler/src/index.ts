// @mist/profiler: measures a host on the device backend at hand and writes a HardwareProfile
// (@mist/core) that the analyzer and the tuner use instead of the datasheet profile.
export { profileHost, type ProfileHostOptions } from './profile-host';
export { type ProfileProgress, type ProgressFn } from './progress';
export { profileGrid, SMOKE_GRID, type ProfileGrid, type MatmulShape, type AttentionCase } from './grids';
export { mergeProfiles } from './merge';
export { profileRequestHandler } from './service';
export {
  collectiveTerms, fitCollective, fitLine, fitLineRelative, fitReport, fitTransfer, fitTwoTermsRelative, relativeErrors,
  type AlphaBetaFit, type UVY, type XY,
} from './fit';
export { median, timeAsync, timeSync, type Timing, type TimingOptions } from './timing';
