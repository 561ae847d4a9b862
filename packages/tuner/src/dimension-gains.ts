// Which of the newer dimensions of the space a tuned plan uses (context parallelism, interleaved
// 1F1B, selective recompute, expert parallelism), and what each is worth: the same tune with that one dimension turned
// off, and the ratio of the two predicted iteration times. fp8 has its own exact choice
// (fp8-choice.ts) and is reported there.
import type { AnalyzerContext, CompiledStageModel } from '@mist/analyzer';
import type { Plan } from '@mist/core';
import type { SearchSpace } from './search-space';
import { tune, type TuneResult } from './tuner';

export type NewDimension = 'context-parallel' | 'interleaved' | 'selective-recompute' | 'expert-parallel';

export interface DimensionUse {
  dimension: NewDimension;
  /** What the plan does with it, in words (e.g. "cp 2 in stages 0-3"). */
  detail: string;
}

export interface DimensionGain extends DimensionUse {
  /** The best plan's predicted iteration time without the dimension; null when nothing fits without it. */
  withoutS: number | null;
  /** withoutS / the plan's time (>= 1 for an exact search); null when nothing fits without it. */
  gain: number | null;
  /** The best plan of the space without the dimension. */
  planWithout: Plan | null;
}

function stageList(indices: number[]): string {
  if (indices.length === 1) return `stage ${indices[0]}`;
  const contiguous = indices.every((x, i) => i === 0 || x === indices[i - 1] + 1);
  return contiguous ? `stages ${indices[0]}-${indices[indices.length - 1]}` : `stages ${indices.join(', ')}`;
}

/** The newer dimensions the plan uses, in a fixed order. */
export function newDimensionsUsed(plan: Plan): DimensionUse[] {
  const out: DimensionUse[] = [];
  const cps = plan.stages.map((s, i) => [s.cp ?? 1, i] as const).filter(([cp]) => cp > 1);
  if (cps.length > 0) {
    const degrees = [...new Set(cps.map(([cp]) => cp))].join('/');
    out.push({ dimension: 'context-parallel', detail: `cp ${degrees} in ${stageList(cps.map(([, i]) => i))}` });
  }
  const v = plan.virtualStages ?? 1;
  if (v > 1) out.push({ dimension: 'interleaved', detail: `${v} model chunks on each of ${plan.stages.length} ranks` });
  const sel = plan.stages.map((s, i) => [s.selectiveRecompute === true, i] as const).filter(([on]) => on);
  if (sel.length > 0) out.push({ dimension: 'selective-recompute', detail: `in ${stageList(sel.map(([, i]) => i))}` });
  const eps = plan.stages.map((s, i) => [s.ep ?? 1, i] as const).filter(([ep]) => ep > 1);
  if (eps.length > 0) {
    const degrees = [...new Set(eps.map(([ep]) => ep))].join('/');
    out.push({ dimension: 'expert-parallel', detail: `ep ${degrees} in ${stageList(eps.map(([, i]) => i))}` });
  }
  return out;
}

/** The space with one dimension turned off. */
export function spaceWithout(space: SearchSpace, dimension: NewDimension): SearchSpace {
  switch (dimension) {
    case 'context-parallel': return { ...space, maxCp: 1 };
    case 'interleaved': return { ...space, maxVirtualStages: 1 };
    case 'selective-recompute': return { ...space, selectiveRecompute: false };
    case 'expert-parallel': return { ...space, maxEp: 1 };
  }
}

export interface DimensionGainsOptions {
  space: SearchSpace;
  compiled?: CompiledStageModel;
  clusterName?: string;
  cacheDir?: string;
  /** Per re-tune. */
  timeLimitS?: number;
  signal?: AbortSignal;
}

/** For every newer dimension the tuned plan uses, the best plan without it and the gain. */
export async function dimensionGains(ctx: AnalyzerContext, result: TuneResult, options: DimensionGainsOptions): Promise<DimensionGain[]> {
  if (!result.plan || !result.predicted) return [];
  const time = result.predicted.iterationTimeS;
  const out: DimensionGain[] = [];
  for (const use of newDimensionsUsed(result.plan)) {
    const without = await tune(ctx, {
      space: spaceWithout(options.space, use.dimension), compiled: options.compiled, clusterName: options.clusterName,
      cacheDir: options.cacheDir, timeLimitS: options.timeLimitS, signal: options.signal,
    });
    const withoutS = without.predicted ? without.predicted.iterationTimeS : null;
    out.push({ ...use, withoutS, gain: withoutS === null ? null : withoutS / time, planWithout: without.plan });
  }
  return out;
}
