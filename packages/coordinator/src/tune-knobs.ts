// The search knobs of a tuning request (a job's tune options, a Tuner service call): TuneOptions'
// fields 1-4 and its knobs_json, read through @mist/tuner's one knob schema (search-knobs.ts), so the
// coordinator accepts exactly the knobs `mist tune` and the job file do, with the same errors.
import { type ModelSpec, SpecError } from '@mist/core';
import type { SearchSpace__Output, TuneOptions__Output } from '@mist/rpc';
import { mergeSearchKnobs, parseSearchKnobs, type SearchKnobs, type SearchSpace, spaceFromKnobs, type SpaceName } from '@mist/tuner';

const SPACES: Record<SearchSpace__Output, SpaceName | undefined> = {
  SEARCH_SPACE_UNSPECIFIED: undefined, SEARCH_SPACE_MIST: 'mist', SEARCH_SPACE_MEGATRON: 'megatron', SEARCH_SPACE_DEEPSPEED: 'deepspeed',
};

/** The knobs TuneOptions' typed fields carry (unset fields carry none). */
function typedKnobs(o: TuneOptions__Output): SearchKnobs {
  const k: SearchKnobs = {};
  const space = SPACES[o.space];
  if (space) k.space = space;
  if (o.solver === 'SOLVER_MILP') k.solver = 'milp';
  if (o.solver === 'SOLVER_DP') k.solver = 'dp';
  if (o.maxStages > 0) k.maxStages = o.maxStages;
  if (o.timeLimit > 0) k.timeLimit = o.timeLimit;
  return k;
}

/**
 * Every knob of the options; throws a SpecError naming `tune.knobsJson` (or one of its keys) when the
 * JSON is not valid or disagrees with a typed field.
 */
export function knobsFromOptions(options: TuneOptions__Output | null | undefined): SearchKnobs {
  if (!options) return {};
  const typed = typedKnobs(options);
  if (!options.knobsJson) return typed;
  let doc: unknown;
  try {
    doc = JSON.parse(options.knobsJson);
  } catch (err) {
    throw new SpecError('tune options', [{ field: 'tune.knobsJson', value: options.knobsJson, message: `not JSON (${(err as Error).message})` }]);
  }
  const json = parseSearchKnobs(doc, 'tune.knobsJson');
  for (const [key, v] of Object.entries(typed)) {
    const other = json[key as keyof SearchKnobs];
    if (other !== undefined && JSON.stringify(other) !== JSON.stringify(v)) {
      throw new SpecError('tune options', [{ field: `tune.knobsJson.${key}`, value: other, message: `disagrees with tune.${key} = ${JSON.stringify(v)}` }]);
    }
  }
  return mergeSearchKnobs(typed, json);
}

/** The tuner's search space for the options of a request; unset knobs keep the space's defaults. */
export function tunerSpaceFromOptions(options: TuneOptions__Output | null | undefined, model: ModelSpec): SearchSpace {
  return spaceFromKnobs(knobsFromOptions(options), model);
}
