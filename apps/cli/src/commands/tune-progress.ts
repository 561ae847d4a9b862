// `mist tune` progress, stop and re-plan helpers: the progress line (candidates/s, ETA) on stderr,
// SIGINT/SIGTERM turned into an abort of the search (the best plan so far is then printed and the
// exit code is 130/143, the shell's 128 + signal number), the gap line of a stopped search, and the
// `--from plan.json` report.
import { formatCount, formatSeconds, loadPlan, type Plan } from '@mist/core';
import { explainReplan, type TuneProgress, type TuneResult } from '@mist/tuner';
import type { AnalyzerContext } from '@mist/analyzer';
import type { CliIo } from '../cli/command';
import { ProgressBar } from '../cli/progress';

/** The progress callback: a bar per space with candidates/s and the ETA (nothing unless `enabled`). */
export function tuneProgressPrinter(io: CliIo, enabled: boolean): (p: TuneProgress) => void {
  let bar: ProgressBar | null = null;
  let barSpace = '';
  return (p) => {
    if (!enabled) return;
    if (p.space !== barSpace) {
      bar?.done();
      bar = new ProgressBar(io, `tune ${p.space}`, p.total);
      barSpace = p.space;
    }
    const best = p.bestIterationTimeS === null ? '-' : formatSeconds(p.bestIterationTimeS);
    const rate = p.candidatesPerS === undefined ? '' : `, ${formatCount(p.candidatesPerS)}/s`;
    // Nothing is left once done: no ETA on the final line.
    const eta = p.etaS === undefined || p.etaS === null || p.phase === 'done' ? '' : `, ETA ${formatSeconds(p.etaS)}`;
    const detail = `${p.phase}, ${formatCount(p.candidatesEvaluated)} candidates${rate}, best ${best}${eta}`;
    if (p.phase === 'done') bar?.done(detail);
    else bar?.update(p.done, detail);
  };
}

/** Aborts `signal` on the first SIGINT/SIGTERM; `exitCode()` is then 130/143. `dispose()` removes the handlers. */
export function stopOnSignals(io: CliIo): { signal: AbortSignal; exitCode: () => number | null; dispose: () => void } {
  const ac = new AbortController();
  let code: number | null = null;
  const handler = (name: 'SIGINT' | 'SIGTERM') => (): void => {
    if (code !== null) return;
    code = name === 'SIGINT' ? 130 : 143;
    io.stderr(`\nmist tune: ${name}: stopping the search, the best plan so far follows\n`);
    ac.abort();
  };
  const onInt = handler('SIGINT');
  const onTerm = handler('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return {
    signal: ac.signal,
    exitCode: () => code,
    dispose: () => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
    },
  };
}

/** "stopped by ...: best plan so far, proven within N % of the optimum" (null when the search completed). */
export function gapText(r: TuneResult): string | null {
  if (!r.stoppedBy) return null;
  const why = r.stoppedBy === 'time-limit' ? 'the time limit' : 'a signal';
  const gap = r.gap;
  if (!gap || gap.relative === null) return `Search stopped by ${why} before any plan was found.`;
  return `Search stopped by ${why}: best plan so far, at most ${(100 * gap.relative).toFixed(1)} % slower than the optimum ` +
    `(no plan is faster than ${formatSeconds(gap.lowerBoundS)}).`;
}

/** Loads the earlier plan of `--from` (model and cluster checked later, against the new setting). */
export function loadFromPlan(file: string): Plan {
  return loadPlan(file);
}

/** The `--from` report: per-stage changes and why. */
export function replanText(old: Plan, r: TuneResult, ctx: AnalyzerContext, clusterName: string): string {
  const rep = explainReplan(old, r, ctx, clusterName);
  let text = `\nChanges from the earlier plan (${old.model} on ${old.cluster}, batch ${old.globalBatch}, seq ${old.seqLen}):\n`;
  for (const c of rep.planChanges) text += `  ${c}\n`;
  for (const s of rep.stages) text += `  stage ${s.stage}: ${s.changes.join('; ')}\n`;
  if (rep.planChanges.length === 0 && rep.stages.length === 0) text += '  none\n';
  if (rep.carriedEstimate) {
    const e = rep.carriedEstimate;
    const peak = Math.max(...e.stages.map((s: { peakMemoryBytes: number; capacityBytes: number }) => s.peakMemoryBytes / s.capacityBytes));
    text += `  earlier plan in the new setting: ${formatSeconds(e.iterationTimeS)} per iteration, peak memory ${(100 * peak).toFixed(0)} % of capacity\n`;
  }
  return text + `Why: ${rep.summary}\n`;
}
