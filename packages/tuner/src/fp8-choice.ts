// The fp8 choice of a search (SearchSpace.fp8Choice, the `fp8: auto` knob). fp8 linear layers are one
// global switch (Transformer Engine's fp8_autocast around the whole model), so the exact search over
// it is two searches, one per training spec, keeping the faster plan; the plan records the recipe it
// assumes (Plan.fp8) so that `mist analyze` reproduces its estimate.
import { type AnalyzerContext } from '@mist/analyzer';
import { engineCapabilities, type EngineName, type Fp8Recipe, fp8PeakFlops, type Plan, type TrainingSpec } from '@mist/core';
import type { TuneOptions, TuneResult } from './tuner';

/** What the fp8 choice found: the recipe of the returned plan and its gain over the best plan without fp8. */
export interface Fp8Outcome {
  /** The fp8 recipe of the returned plan ('none': the plan has no fp8 linear layers). */
  used: Fp8Recipe;
  /** Every recipe searched, with its best plan's iteration time (null: nothing fits). */
  tried: { recipe: Fp8Recipe; iterationTimeS: number | null }[];
  /** Iteration time of the best plan without fp8 over the returned plan's (null when either is missing or fp8 was not tried). */
  gainOverNone: number | null;
  /** Why no fp8 recipe was searched, when none was. */
  skipped: string | null;
}

/** The plan field of a training spec's fp8 (absent for 'none', so plans without fp8 stay as they were). */
export function planFp8Field(training: TrainingSpec): Pick<Plan, 'fp8'> {
  return (training.fp8 ?? 'none') === 'none' ? {} : { fp8: training.fp8 };
}

/**
 * The recipes an fp8 choice searches on this context: none, and the training spec's recipe (delayed
 * scaling, TE's default, when the spec has none) where the GPU has fp8 tensor cores, the compute
 * dtype is bf16/fp16 and the engine of the space runs it (else the engine's other recipe, if any).
 */
export function fp8Choices(ctx: AnalyzerContext, engine: EngineName | undefined): { recipes: Fp8Recipe[]; skipped: string | null } {
  const gpu = ctx.profile.cluster.gpu;
  if (fp8PeakFlops(gpu) === null) return { recipes: ['none'], skipped: `the GPU ${gpu.name} has no fp8 tensor cores` };
  if (ctx.training.computeDtype === 'fp32') return { recipes: ['none'], skipped: 'fp8 linear layers need bf16 or fp16 compute, not fp32' };
  const wanted: Fp8Recipe = (ctx.training.fp8 ?? 'none') === 'none' ? 'delayed' : ctx.training.fp8;
  if (engine === undefined) return { recipes: ['none', wanted], skipped: null };
  const caps = engineCapabilities(engine);
  const recipe = caps.fp8.find((r) => r === wanted) ?? caps.fp8[0];
  if (recipe === undefined) return { recipes: ['none'], skipped: `${engine} runs no fp8 linear layers` };
  return { recipes: ['none', recipe], skipped: null };
}

/**
 * Runs `run` (the tuner) once per recipe of fp8Choices and returns the faster result (a tie keeps the
 * plan without fp8) with its Fp8Outcome. The search without fp8 takes the caller's compiled model
 * and incumbent (they describe ctx as given when its spec has no fp8); a time limit is shared, the
 * first search getting half.
 */
export async function tuneFp8Choice(
  ctx: AnalyzerContext, options: TuneOptions, run: (ctx: AnalyzerContext, options: TuneOptions) => Promise<TuneResult>,
): Promise<TuneResult> {
  const started = performance.now();
  const space = options.space ? { ...options.space, fp8Choice: false } : undefined;
  const { recipes, skipped } = fp8Choices(ctx, space?.engine);
  const results: { recipe: Fp8Recipe; r: TuneResult }[] = [];
  for (const [i, recipe] of recipes.entries()) {
    const training: TrainingSpec = { ...ctx.training, fp8: recipe };
    const same = recipe === (ctx.training.fp8 ?? 'none');
    let timeLimitS = options.timeLimitS;
    if (timeLimitS !== undefined) {
      const left = timeLimitS - (performance.now() - started) / 1000;
      timeLimitS = Math.max(1e-3, i < recipes.length - 1 ? left / (recipes.length - i) : left);
    }
    const r = await run({ ...ctx, training }, {
      ...options, space, timeLimitS,
      compiled: same ? options.compiled : undefined,
      incumbent: same ? options.incumbent : undefined,
    });
    results.push({ recipe, r });
  }
  const time = (r: TuneResult): number => r.predicted?.iterationTimeS ?? Infinity;
  const best = results.reduce((a, b) => (time(b.r) < time(a.r) ? b : a));
  const none = results.find((x) => x.recipe === 'none');
  const gainOverNone = results.length > 1 && none && none.r.predicted && best.r.predicted
    ? none.r.predicted.iterationTimeS / best.r.predicted.iterationTimeS
    : null;
  return {
    ...best.r,
    candidatesEvaluated: results.reduce((a, x) => a + x.r.candidatesEvaluated, 0),
    tuningTimeS: (performance.now() - started) / 1000,
    notes: results.flatMap((x) => x.r.notes ?? []),
    fp8: {
      used: best.recipe,
      tried: results.map((x) => ({ recipe: x.recipe, iterationTimeS: x.r.predicted?.iterationTimeS ?? null })),
      gainOverNone,
      skipped,
    },
  };
}
