// The inter-stage problem as a mixed-integer linear programme, solved by HiGHS (as Mist does,
// EuroSys'25, Sec. 5.2). One MILP per stage count pp (and per mesh when meshes are uniform):
//   x[i,g,p] in {0,1}: stage i uses frontier point p of group g (position and in-flight min(pp - i, G)
//                      fixed by i; only groups that serve depth pp)
//   sum_{g,p} x[i,g,p] = 1                         for every stage i
//   sum layers(g) x[i,g,p] = L,  sum devices(g) x[i,g,p] = D
//   sum_{g,p} steady(p) x[i,g,p] <= t               for every stage i
//   sum_{g,p} last(p) x[i,g,p] <= e                 for every stage i (end-of-step work, run at once)
//   minimise sum first(p) x[i,g,p] + (G - 1) t + e
import { inFlightMicroBatches, stagePosition } from '@mist/analyzer';
import { HighsFailure, solveWithHighs } from './highs';
import {
  type ChosenStage, evaluateSolution, frontierAt, type InterStageInstance, type InterStageSolution,
  subProblems,
} from './inter-stage-instance';

export interface MilpOptions {
  /** Seconds per MILP (HiGHS time_limit); default unlimited. */
  timeLimitS?: number;
  /** Wall seconds per MILP after which the solver's worker is stopped and the solve fails (default 120). */
  deadlineS?: number;
}

const DEFAULT_DEADLINE_S = 120;

export interface MilpStats {
  milpsSolved: number;
  variables: number;
}

function num(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toPrecision(17);
}

/** Appends `terms` to `lines` as one LP expression, a few terms per line. */
function pushTerms(lines: string[], head: string, terms: string[]): void {
  let line = head;
  terms.forEach((t, k) => {
    const signed = k === 0 ? t : t.startsWith('-') ? `- ${t.slice(1)}` : `+ ${t}`;
    if (line.length + signed.length > 200) {
      lines.push(line);
      line = '   ';
    }
    line += ` ${signed}`;
  });
  lines.push(line);
}

/** Solves the instance exactly with HiGHS; null when nothing covers the model on the cluster. */
export async function solveInterStageMilp(inst: InterStageInstance, options: MilpOptions = {}, stats?: MilpStats): Promise<InterStageSolution | null> {
  let best: InterStageSolution | null = null;
  for (const sub of subProblems(inst)) {
    for (let pp = sub.ppMin; pp <= sub.ppMax; pp++) {
      const sol = await solveForStages(inst, sub.allowed, pp, options, stats);
      if (sol && (!best || sol.iterationTimeS < best.iterationTimeS)) best = sol;
    }
  }
  return best;
}

async function solveForStages(
  inst: InterStageInstance, allowed: Uint8Array, pp: number, options: MilpOptions, stats?: MilpStats,
): Promise<InterStageSolution | null> {
  const { start, length, steady, first, last } = inst.frontiers;
  const G = inst.gradAccumSteps;
  const varStage: number[] = [];
  const varGroup: number[] = [];
  const varPoint: number[] = [];
  const perStage: number[][] = [];
  for (let i = 0; i < pp; i++) {
    const position = stagePosition(i, pp);
    const vars: number[] = [];
    inst.groups.forEach((g, gi) => {
      if (!allowed[gi] || g.position !== position || pp < g.ppMin || pp > g.ppMax) return;
      // Every other stage needs at least one layer and one device.
      if (g.layers > inst.layers - (pp - 1) || g.devices > inst.devices - (pp - 1)) return;
      if (pp === 1 && (g.layers !== inst.layers || g.devices !== inst.devices)) return;
      const f = frontierAt(g, inFlightMicroBatches(pp, i, G));
      if (f < 0) return;
      for (let p = start[f]; p < start[f] + length[f]; p++) {
        vars.push(varStage.length);
        varStage.push(i);
        varGroup.push(gi);
        varPoint.push(p);
      }
    });
    if (vars.length === 0) return null;
    perStage.push(vars);
  }
  const name = (k: number): string => `x${k}`;
  const lines: string[] = ['Minimize'];
  const objTerms = varPoint.map((p, k) => `${num(first[p])} ${name(k)}`);
  if (G > 1) objTerms.push(`${num(G - 1)} t`);
  objTerms.push('1 e');
  pushTerms(lines, ' obj:', objTerms);
  lines.push('Subject To');
  perStage.forEach((vars, i) => {
    pushTerms(lines, ` one${i}:`, vars.map((k) => name(k)));
    lines[lines.length - 1] += ' = 1';
  });
  pushTerms(lines, ' layers:', varGroup.map((g, k) => `${inst.groups[g].layers} ${name(k)}`));
  lines[lines.length - 1] += ` = ${inst.layers}`;
  pushTerms(lines, ' devices:', varGroup.map((g, k) => `${inst.groups[g].devices} ${name(k)}`));
  lines[lines.length - 1] += ` = ${inst.devices}`;
  if (G > 1) {
    perStage.forEach((vars, i) => {
      pushTerms(lines, ` bottleneck${i}:`, [...vars.map((k) => `${num(steady[varPoint[k]])} ${name(k)}`), '-1 t']);
      lines[lines.length - 1] += ' <= 0';
    });
  }
  perStage.forEach((vars, i) => {
    pushTerms(lines, ` end${i}:`, [...vars.map((k) => `${num(last[varPoint[k]])} ${name(k)}`), '-1 e']);
    lines[lines.length - 1] += ' <= 0';
  });
  lines.push('Binary');
  for (let k = 0; k < varPoint.length; k += 20) {
    lines.push(' ' + varPoint.slice(k, k + 20).map((_, j) => name(k + j)).join(' '));
  }
  lines.push('End');
  if (stats) {
    stats.milpsSolved++;
    stats.variables += varPoint.length;
  }
  let result;
  try {
    result = await solveWithHighs(lines.join('\n'), {
      mip_rel_gap: 1e-9,
      mip_abs_gap: 1e-12,
      ...(options.timeLimitS !== undefined ? { time_limit: options.timeLimitS } : {}),
    }, options.deadlineS ?? DEFAULT_DEADLINE_S);
  } catch (err) {
    throw new HighsFailure(`HiGHS failed on the inter-stage MILP (pp=${pp}, ${varPoint.length} variables): ${(err as Error).message}`);
  }
  if (result.Status === 'Infeasible') return null;
  if (result.Status !== 'Optimal') {
    throw new HighsFailure(`HiGHS: inter-stage MILP (pp=${pp}) ended with status "${result.Status}"`);
  }
  const stages: ChosenStage[] = new Array<ChosenStage>(pp);
  const columns = result.Columns;
  varPoint.forEach((p, k) => {
    if ((columns[name(k)]?.Primal ?? 0) > 0.5) stages[varStage[k]] = { group: varGroup[k], point: p };
  });
  for (let i = 0; i < pp; i++) {
    if (!stages[i]) throw new Error(`HiGHS: inter-stage MILP (pp=${pp}) returned no choice for stage ${i}`);
  }
  const check = evaluateSolution(inst, stages);
  return { iterationTimeS: check.iterationTimeS, bottleneckS: check.bottleneckS, stages };
}

/**
 * The MILP, or the exact DP when HiGHS fails (it aborts on some models, see highs.ts): both solve the
 * same instance exactly, so the answer is the same; `notes` says that the fallback was taken and why.
 */
export async function solveInterStageMilpOrDp(
  inst: InterStageInstance, dp: () => InterStageSolution | null, notes: string[], options: MilpOptions = {},
): Promise<InterStageSolution | null> {
  try {
    return await solveInterStageMilp(inst, options);
  } catch (err) {
    if (!(err instanceof HighsFailure)) throw err;
    const note = `${err.message}; solved with the exact DP instead`;
    if (!notes.includes(note)) notes.push(note);
    return dp();
  }
}
