// `mist logs [-f] JOB`: the job's worker log lines and state changes (what the coordinator kept),
// and with -f everything that follows until the job ends. `mist launch` follows jobs the same way.
import type { CoordinatorConnection } from '@mist/coordinator';
import type { JobEvent__Output, JobState } from '@mist/rpc';
import { type CliIo, type Command } from '../cli/command';
import { ProgressBar } from '../cli/progress';
import { CONNECTION_OPTIONS, planSummary, shortState, withConnection } from './status';

export interface FollowOptions {
  /** Print the workers' log lines. */
  logs: boolean;
  /** Draw a progress bar of `totalSteps` from the metrics (launch); else print metrics lines only with logs. */
  progressSteps?: number;
  /** Stop after the events recorded so far (no following). */
  replayOnly?: boolean;
}

function logLine(e: JobEvent__Output): string | null {
  const w = e.worker;
  if (!w) return null;
  if (w.log) return `[rank ${w.rank}] ${w.log.text}`;
  if (w.started) return `[rank ${w.rank}] started (pid ${w.started.pid}, attempt ${w.attempt})`;
  if (w.exited) {
    const x = w.exited;
    return `[rank ${w.rank}] exited ${x.signal ? `by ${x.signal}` : `with code ${x.exitCode}`}${x.message ? `: ${x.message}` : ''}`;
  }
  if (w.checkpoint) return `[rank ${w.rank}] checkpoint of step ${w.checkpoint.step} in ${w.checkpoint.dir}`;
  return null;
}

/** Prints a job's events; resolves with its last state seen (terminal unless replayOnly). */
export async function followJob(c: CoordinatorConnection, jobId: string, io: CliIo, o: FollowOptions): Promise<JobState | null> {
  let last: JobState | null = null;
  const bar = o.progressSteps ? new ProgressBar(io, 'train', o.progressSteps) : null;
  for await (const e of c.watch(jobId, { replay: true, includeLogs: o.logs, replayOnly: o.replayOnly })) {
    if (e.logGap) {
      io.stderr(`[... ${e.logGap.droppedEvents} earlier worker event(s) dropped: ${e.logGap.reason}]\n`);
      continue;
    }
    if (e.tuneProgress) {
      const p = e.tuneProgress;
      const best = p.bestIterationTime > 0 ? `, best ${p.bestIterationTime.toFixed(4)} s/iteration` : '';
      io.stderr(`[tuning] ${p.phase} ${p.done}/${p.total}, ${p.candidatesEvaluated} candidates${best}, ${p.elapsed.toFixed(0)} s\n`);
      continue;
    }
    if (e.state) {
      last = e.state.state;
      const text = `[${shortState(e.state.state)}] ${e.state.message}`;
      io.stderr(`${bar && io.isTTY ? '\n' : ''}${text}\n`);
      if (e.state.planJson) for (const line of planSummary(e.state.planJson)) io.stderr(`${line}\n`);
      continue;
    }
    const m = e.worker?.metrics;
    if (m) {
      if (bar && m.loss !== undefined) bar.update(m.step, `loss ${m.loss.toFixed(4)}  ${m.tokensPerSecond.toFixed(0)} tokens/s`);
      else if (!bar && o.logs && m.loss !== undefined) io.stdout(`[rank ${e.worker!.rank}] step ${m.step} loss ${m.loss.toFixed(4)} ${m.tokensPerSecond.toFixed(0)} tokens/s\n`);
      continue;
    }
    if (o.logs) {
      const line = logLine(e);
      if (line) io.stdout(`${line}\n`);
    }
  }
  return last;
}

export const logsCommand: Command = {
  name: 'logs',
  summary: 'print a job\'s worker logs and state changes; -f follows the job until it ends',
  usage: 'mist logs [-f] JOB [--coordinator HOST:PORT]',
  examples: ['MIST_TOKEN=secret mist logs -f job-1a2b3c4d', 'mist logs job-1a2b3c4d --coordinator 10.0.0.1:7070 --token secret'],
  positionals: { min: 1, max: 1, names: 'one job id' },
  options: {
    follow: { type: 'boolean', short: 'f', description: 'keep printing until the job ends' },
    ...CONNECTION_OPTIONS,
  },
  async run(values, positionals, io) {
    return withConnection(values, async (c) => {
      const last = await followJob(c, positionals[0], io, { logs: true, replayOnly: !values.follow });
      if (!values.follow) return 0;
      return last === 'JOB_STATE_SUCCEEDED' ? 0 : 1;
    });
  },
};
