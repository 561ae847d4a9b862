// From a group's Pareto set (steady, first, last, maxInFlight) to the per-in-flight frontiers the
// inter-stage step uses, each sampled to at most K points (Mist, EuroSys'25, Sec. 5.1).
import type { StageGroupSpec } from './enumerate';
import { type FrontierStoreBuilder, type StageGroup } from './inter-stage-instance';
import { type StagePareto, sampleFrontier } from './pareto';

/**
 * Adds the group's frontiers to `store` (one per in-flight value it serves, shared between
 * consecutive values when identical) and returns the group for the inter-stage instance, or null when
 * nothing fits at any in-flight count. Point refs are the set's strategy refs. With a cutoff, only the
 * points with first + last + (G - 1) * steady below it are kept.
 */
export function stageGroupFromSet(
  spec: StageGroupSpec, devices: number, set: StagePareto, frontierSize: number, store: FrontierStoreBuilder, G = 1, cutoffS = Infinity,
): StageGroup | null {
  const byF = new Int32Array(spec.inFlightMax - spec.inFlightMin + 1).fill(-1);
  // A set read from the frontier cache may hold points beyond this search's cutoff (searched for a
  // larger one): they are left out as the search would have, so that sampling sees the same points.
  const useful = (p: number): boolean => set.first[p] + set.last[p] + (G - 1) * set.steady[p] < cutoffS;
  let previous: Int32Array | null = null;
  let previousId = -1;
  let any = false;
  for (let f = spec.inFlightMin; f <= spec.inFlightMax; f++) {
    const all = set.frontierAt(f);
    const idx = Number.isFinite(cutoffS) ? all.filter(useful) : all;
    if (idx.length === 0) break; // fewer points fit at every larger f
    if (previous && sameIndices(previous, idx)) {
      byF[f - spec.inFlightMin] = previousId;
      continue;
    }
    const steady = new Float64Array(idx.length);
    const first = new Float64Array(idx.length);
    const last = new Float64Array(idx.length);
    idx.forEach((p, k) => {
      steady[k] = set.steady[p];
      first[k] = set.first[p];
      last[k] = set.last[p];
    });
    const keep = sampleFrontier(steady, [first, last], frontierSize);
    const id = store.add(
      Float64Array.from(keep, (k) => steady[k]),
      Float64Array.from(keep, (k) => first[k]),
      Int32Array.from(keep, (k) => set.ref[idx[k]]),
      Float64Array.from(keep, (k) => last[k]),
    );
    byF[f - spec.inFlightMin] = id;
    previous = idx;
    previousId = id;
    any = true;
  }
  if (!any) return null;
  return {
    position: spec.position,
    layers: spec.layers,
    devices,
    meshIndex: spec.meshIndex,
    ppMin: spec.ppMin,
    ppMax: spec.ppMax,
    inFlightMin: spec.inFlightMin,
    inFlightMax: spec.inFlightMax,
    frontierByInFlight: byF,
  };
}

function sameIndices(a: Int32Array, b: Int32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
