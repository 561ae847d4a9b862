// @mist/coordinator: job and agent registry, placement of stages on devices, job state.
export * from './placement';
export * from './job-state';
export * from './state-store';
