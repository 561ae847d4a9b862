// The lifecycle of a job. Terminal states never change again, except `interrupted` (the coordinator
// stopped while the job ran) and `failed`, which a resume (`mist launch --resume JOB`) turns into a
// new attempt that starts over from placement.
export const JOB_STATES = [
  'queued', 'tuning', 'placing', 'starting', 'running', 'cancelling', 'succeeded', 'failed', 'cancelled', 'interrupted',
] as const;
export type JobState = (typeof JOB_STATES)[number];

export const TERMINAL_STATES: ReadonlySet<JobState> = new Set(['succeeded', 'failed', 'cancelled', 'interrupted']);

const NEXT: Record<JobState, readonly JobState[]> = {
  queued: ['tuning', 'placing', 'failed', 'cancelling', 'cancelled', 'interrupted'],
  tuning: ['placing', 'queued', 'failed', 'cancelling', 'cancelled', 'interrupted'],
  placing: ['starting', 'failed', 'cancelling', 'cancelled', 'interrupted'],
  starting: ['running', 'succeeded', 'failed', 'cancelling', 'cancelled', 'interrupted'],
  running: ['succeeded', 'failed', 'cancelling', 'cancelled', 'interrupted'],
  cancelling: ['cancelled', 'interrupted'],
  succeeded: [],
  failed: ['placing'],
  cancelled: [],
  interrupted: ['placing'],
};

export function canTransition(from: JobState, to: JobState): boolean {
  return NEXT[from].includes(to);
}

export function isTerminal(s: JobState): boolean {
  return TERMINAL_STATES.has(s);
}

/** States a resume may start from. */
export function isResumable(s: JobState): boolean {
  return s === 'interrupted' || s === 'failed';
}
