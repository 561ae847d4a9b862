// `mist tune --report out.html`: the report file of a tune (its picture, the searches side by side),
// written by @mist/viz from the tune's results. Its folder is checked before the search starts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type PlanEstimate } from '@mist/analyzer';
import { type Plan } from '@mist/core';
import { type BaselineComparison, SEARCH_KNOBS, type TuneResult } from '@mist/tuner';
import { type TuneReportRow, tuneReportHtml } from '@mist/viz';
import { type OptionSpec, type ParsedValues, stringOpt, UsageError } from '../cli/command';

export const TUNE_REPORT_OPTION: Record<string, OptionSpec> = {
  report: {
    type: 'string', valueName: 'FILE.html',
    description: 'write an HTML report: the best plan\'s 1F1B timeline and memory, the baselines side by side with their pictures',
  },
};

/** --report FILE: an .html file in a folder that exists, or undefined without the flag. */
export function reportTarget(values: ParsedValues): string | undefined {
  const file = stringOpt(values, 'report');
  if (file === undefined) return undefined;
  if (!/\.html?$/i.test(file)) throw new UsageError(`--report ${file}: the file name must end in .html`);
  const dir = path.dirname(path.resolve(file));
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UsageError(`--report ${file}: the folder ${dir} does not exist`);
  return file;
}

/** The search flags given on the command line, as typed (the ablations of the main search). */
function searchFlags(values: ParsedValues): string[] {
  return SEARCH_KNOBS.filter((k) => values[k.flag] !== undefined && values[k.flag] !== false)
    .map((k) => (values[k.flag] === true ? `--${k.flag}` : `--${k.flag} ${String(values[k.flag])}`));
}

function row(label: string, r: TuneResult, speedupOfBest: number | null): TuneReportRow {
  return {
    label, plan: r.plan, estimate: r.predicted, speedupOfBest, tuningTimeS: r.tuningTimeS,
    candidatesEvaluated: r.candidatesEvaluated, frontierPoints: r.frontierPoints, stageGroups: r.stageGroups,
  };
}

export interface TuneReportContext {
  title: string;
  values: ParsedValues;
  /** A plan given with --baseline and its estimate. */
  baseline: { file: string; plan: Plan; estimate: PlanEstimate } | null;
}

export function writeTuneReport(file: string, cmp: BaselineComparison, ctx: TuneReportContext): void {
  const best = cmp.best;
  const rows: TuneReportRow[] = [
    row(`${best.space} (best)`, best, null),
    row(cmp.megatron.space, cmp.megatron, cmp.speedup.megatron),
    row(cmp.deepspeed.space, cmp.deepspeed, cmp.speedup.deepspeed),
  ];
  if (ctx.baseline) {
    const b = ctx.baseline;
    rows.push({
      label: `your plan (${path.basename(b.file)})`, plan: b.plan, estimate: b.estimate,
      speedupOfBest: best.predicted ? b.estimate.iterationTimeS / best.predicted.iterationTimeS : null,
    });
  }
  fs.writeFileSync(file, tuneReportHtml({ title: ctx.title, ablations: searchFlags(ctx.values), rows, notes: best.notes ?? [] }));
}
