// How the CLI's stage tables write a stage's recomputation: the fully checkpointed layers, and
// `+sel` when the other layers recompute their attention core (selective recomputation).
import type { StageStrategy } from '@mist/core';

export function recomputeText(s: Pick<StageStrategy, 'ckptLayers' | 'selectiveRecompute'>): string {
  return s.selectiveRecompute ? `${s.ckptLayers} +sel` : String(s.ckptLayers);
}
