// The lifecycle of a job. Terminal states never change again; `interrupted` marks a job that was
// running when the coordinator stopped, and can be resumed from its last checkpoint.
export const JOB_STATES = [
  'queued', 'tuning', 'placing', 'starting', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted',
] as const;
export type JobState = (typeof JOB_STATES)[number];

export const TERMINAL_STATES: ReadonlySet<JobState> = new Set(['succeeded', 'failed', 'cancelled', 'interrupted']);

const NEXT: Record<JobState, readonly JobState[]> = {
  queued: ['tuning', 'placing', 'failed', 'cancelled', 'interrupted'],
  tuning: ['placing', 'failed', 'cancelled', 'interrupted'],
  placing: ['starting', 'failed', 'cancelled', 'interrupted'],
  starting: ['running', 'failed', 'cancelled', 'interrupted'],
  running: ['succeeded', 'failed', 'cancelled', 'interrupted'],
  succeeded: [],
  failed: [],
  cancelled: [],
  // A resumed job starts over from placement.
  interrupted: ['placing'],
};

export function canTransition(from: JobState, to: JobState): boolean {
  return NEXT[from].includes(to);
}

export function isTerminal(s: JobState): boolean {
  return TERMINAL_STATES.has(s);
}
