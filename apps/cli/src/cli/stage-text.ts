// How the CLI's stage tables write a stage's recomputation: the fully checkpointed layers, and
// `+sel` when the other layers recompute their attention core (selective recomputation), `+op` when
// they run torchtitan's per-op selective checkpointing.
import type { StageStrategy } from '@mist/core';

export function recomputeText(s: Pick<StageStrategy, 'ckptLayers' | 'selectiveRecompute' | 'opRecompute'>): string {
  return s.selectiveRecompute ? `${s.ckptLayers} +sel` : s.opRecompute ? `${s.ckptLayers} +op` : String(s.ckptLayers);
}
