// The inter-stage problem over stage groups not yet searched, each standing in as one virtual point.
//
// A group's bound minima (bounds.ts SpecMinima: every fitting point has steady >= s0, first >= f0 and
// first + last >= i0) make one point v = (s0, f0, max(0, i0 - f0)) that no real point of the group
// beats in any plan: the objective sum_i first_i + (G - 1) max_i steady_i + max_i last_i
// (inter-stage-instance.ts) with p in place of v changes by
//   first_p - f0 + max(last_p, X) - max(i0 - f0, X) >= 0   (X: the largest other last)
// (first_p >= f0 and first_p + last_p >= i0; likewise for steady). So the exact DP over an instance
// whose unsearched groups are virtual points and whose searched groups carry their real frontiers
// gives a lower bound of every plan at G (a relaxation that refines the layer relaxation of bounds.ts,
// which mixes minima of different groups per layer count and does not tile the devices). When it finds
// nothing faster than the best plan, no plan at G is faster; when its optimum uses searched groups
// only, that optimum is a real plan and the best at G. Otherwise the groups it used are searched and
// it is solved again (tuner.ts: a few rounds, then every group left is searched as before).
import { meshSize } from '@mist/core';
import type { SpecMinima } from './bounds';
import type { StageGroupSpec } from './enumerate';
import { FrontierStoreBuilder, type InterStageInstance, type StageGroup } from './inter-stage-instance';

/** The virtual point of a group, or null when its minima say nothing of it fits. */
export function virtualPoint(m: SpecMinima): { steady: number; first: number; last: number } | null {
  if (!Number.isFinite(m.steady) || !Number.isFinite(m.first) || !Number.isFinite(m.imbalance)) return null;
  return { steady: m.steady, first: m.first, last: Math.max(0, m.imbalance - m.first) };
}

/** A group of `spec` whose every in-flight count has the one frontier `frontier`. */
export function groupWithFrontier(spec: StageGroupSpec, frontier: number): StageGroup {
  return {
    position: spec.position, layers: spec.layers, devices: meshSize(spec.mesh), meshIndex: spec.meshIndex,
    ppMin: spec.ppMin, ppMax: spec.ppMax, inFlightMin: spec.inFlightMin, inFlightMax: spec.inFlightMax,
    frontierByInFlight: new Int32Array(spec.inFlightMax - spec.inFlightMin + 1).fill(frontier),
  };
}

/**
 * The groups of one G as the relaxation sees them: every open spec a virtual point until it is
 * searched, then its real group (or nothing, when no point of it is useful).
 */
export class RelaxedGroups {
  /** Frontiers of the virtual points and of the searched groups (one store: one instance). */
  readonly store = new FrontierStoreBuilder();
  private readonly virtual = new Map<number, StageGroup>();
  private readonly searched = new Map<number, StageGroup | null>();

  /** `open`: indexes into `specs` of the groups that may hold a point of a faster plan. */
  constructor(specs: readonly StageGroupSpec[], private readonly open: readonly number[], minima: readonly SpecMinima[]) {
    for (const s of open) {
      const v = virtualPoint(minima[s]);
      if (!v) continue;
      this.virtual.set(s, groupWithFrontier(specs[s], this.store.add([v.steady], [v.first], [-1], [v.last])));
    }
  }

  /** Records a searched spec: `group` built into `this.store` (null: nothing useful in it). */
  setSearched(s: number, group: StageGroup | null): void {
    this.searched.set(s, group);
  }

  /** The instance of the open groups as they stand, with each instance group's spec index. */
  instance(base: Omit<InterStageInstance, 'groups' | 'frontiers'>): { inst: InterStageInstance; specOf: number[] } {
    const groups: StageGroup[] = [];
    const specOf: number[] = [];
    for (const s of this.open) {
      const g = this.searched.has(s) ? this.searched.get(s) : this.virtual.get(s);
      if (!g) continue;
      groups.push(g);
      specOf.push(s);
    }
    return { inst: { ...base, groups, frontiers: this.store.build() }, specOf };
  }
}
