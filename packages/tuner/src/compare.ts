// Mist against the baselines a person would tune by hand, in one run and one cost model.
import { type AnalyzerContext, type CompiledStageModel, compileStageModel } from '@mist/analyzer';
import { engineCapabilities, fp8Violation } from '@mist/core';
import { deepspeedSpace, megatronSpace, mistSpace, type SearchSpace } from './search-space';
import { planInSpace } from './space-membership';
import { tune, type TuneProgress, type TuneResult } from './tuner';

export interface TuneWithBaselinesOptions {
  /** The space of the main search (default: the full Mist space). */
  space?: SearchSpace;
  megatron?: SearchSpace;
  deepspeed?: SearchSpace;
  clusterName?: string;
  /**
   * Seed the main search with the better baseline plan when it lies in the main space (default true):
   * the search then only looks for strategies that beat it. A baseline plan outside a restricted
   * space never seeds it, so the result always lies in the space asked for.
   */
  seedWithBaselines?: boolean;
  onProgress?: (p: TuneProgress) => void;
  /** Main search: stop after this many seconds (counted from the start of the whole comparison) with the best plan so far. */
  timeLimitS?: number;
  /** Main search: stop when aborted, with the best plan so far. */
  signal?: AbortSignal;
  /** The tune cache folder of every search (tuner.ts TuneOptions.cacheDir; engine-cache.ts for the baselines). */
  cacheDir?: string;
}

export interface BaselineComparison {
  best: TuneResult;
  megatron: TuneResult;
  deepspeed: TuneResult;
  /** Predicted speedup of the main search's plan over each baseline's (null where either has no plan). */
  speedup: { megatron: number | null; deepspeed: number | null };
  tuningTimeS: number;
}

function speedup(main: TuneResult, base: TuneResult): number | null {
  if (!main.predicted || !base.predicted) return null;
  return base.predicted.iterationTimeS / main.predicted.iterationTimeS;
}

/**
 * A baseline engine's search. Where the engine cannot run the training spec's fp8 recipe (DeepSpeed
 * runs none), its plan is searched as the engine runs it, without fp8 linear layers, and a note says
 * so: a baseline tuned by hand on that engine would have none either.
 */
async function tuneBaseline(ctx: AnalyzerContext, common: { compiled: CompiledStageModel; clusterName?: string; onProgress?: (p: TuneProgress) => void; cacheDir?: string },
  space: SearchSpace): Promise<TuneResult> {
  const recipe = ctx.training.fp8 ?? 'none';
  const engine = space.engine;
  const refused = engine && !space.fp8Choice ? fp8Violation(recipe, engineCapabilities(engine), engine) : null;
  if (!refused) return tune(ctx, { ...common, space });
  const without: AnalyzerContext = { ...ctx, training: { ...ctx.training, fp8: 'none', fp8ParamGather: false } };
  const r = await tune(without, { ...common, compiled: compileStageModel(without), space });
  return { ...r, notes: [...(r.notes ?? []), `${refused.feature} is not run by ${engine} (${refused.detail}): its plan is tuned without fp8`] };
}

export async function tuneWithBaselines(ctx: AnalyzerContext, options: TuneWithBaselinesOptions = {}): Promise<BaselineComparison> {
  const started = performance.now();
  const compiled = compileStageModel(ctx);
  const common = { compiled, clusterName: options.clusterName, onProgress: options.onProgress, cacheDir: options.cacheDir };
  const megatron = await tuneBaseline(ctx, common, options.megatron ?? megatronSpace());
  const deepspeed = await tuneBaseline(ctx, common, options.deepspeed ?? deepspeedSpace());
  const space = options.space ?? mistSpace();
  // The better baseline plan that lies in the main space seeds the search's cutoff.
  const seeds = [megatron, deepspeed].filter((r) => r.predicted && r.plan && planInSpace(r.plan, space)).sort((a, b) =>
    (a.predicted?.iterationTimeS ?? Infinity) - (b.predicted?.iterationTimeS ?? Infinity));
  const incumbent = options.seedWithBaselines === false ? undefined : seeds[0]?.plan ?? undefined;
  const left = options.timeLimitS === undefined ? undefined : Math.max(1e-3, options.timeLimitS - (performance.now() - started) / 1000);
  // A main search over exactly a baseline's space (mist tune --target megatron) is that baseline.
  const same = [megatron, deepspeed].find((r, i) => JSON.stringify([options.megatron ?? megatronSpace(), options.deepspeed ?? deepspeedSpace()][i]) === JSON.stringify(space));
  const best = same ?? await tune(ctx, { ...common, space, incumbent, timeLimitS: left, signal: options.signal });
  return {
    best, megatron, deepspeed,
    speedup: { megatron: speedup(best, megatron), deepspeed: speedup(best, deepspeed) },
    tuningTimeS: (performance.now() - started) / 1000,
  };
}
