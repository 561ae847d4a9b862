// Mist against the baselines a person would tune by hand, in one run and one cost model.
import { type AnalyzerContext, compileStageModel } from '@mist/analyzer';
import { deepspeedSpace, megatronSpace, mistSpace, type SearchSpace } from './search-space';
import { tune, type TuneProgress, type TuneResult } from './tuner';

export interface TuneWithBaselinesOptions {
  /** The space of the main search (default: the full Mist space). */
  space?: SearchSpace;
  megatron?: SearchSpace;
  deepspeed?: SearchSpace;
  clusterName?: string;
  /** Seed the main search with the better baseline plan (default true; the baselines lie in the Mist space). */
  seedWithBaselines?: boolean;
  onProgress?: (p: TuneProgress) => void;
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

export async function tuneWithBaselines(ctx: AnalyzerContext, options: TuneWithBaselinesOptions = {}): Promise<BaselineComparison> {
  const started = performance.now();
  const compiled = compileStageModel(ctx);
  const common = { compiled, clusterName: options.clusterName, onProgress: options.onProgress };
  const megatron = await tune(ctx, { ...common, space: options.megatron ?? megatronSpace() });
  const deepspeed = await tune(ctx, { ...common, space: options.deepspeed ?? deepspeedSpace() });
  // The better baseline plan lies in the Mist space too: it seeds the search's cutoff.
  const seeds = [megatron, deepspeed].filter((r) => r.predicted && r.plan).sort((a, b) =>
    (a.predicted?.iterationTimeS ?? Infinity) - (b.predicted?.iterationTimeS ?? Infinity));
  const incumbent = options.seedWithBaselines === false ? undefined : seeds[0]?.plan ?? undefined;
  const best = await tune(ctx, { ...common, space: options.space ?? mistSpace(), incumbent });
  return {
    best, megatron, deepspeed,
    speedup: { megatron: speedup(best, megatron), deepspeed: speedup(best, deepspeed) },
    tuningTimeS: (performance.now() - started) / 1000,
  };
}
