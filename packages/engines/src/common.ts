// Helpers the exporters and importers share: the plan's single strategy, meshes, catalog lookup.
import {
  type ClusterSpec, type Mesh, type ModelSpec, type Plan, type StageStrategy, modelCatalog, stageLayerCount,
} from '@mist/core';
import { ImportError } from './types';

/** Marker of every value the user must edit before launching. */
export const EDIT_ME = 'EDIT_ME';

/** The one strategy of a plan whose engine has one strategy for all stages (stage 0's). */
export function uniformStrategy(plan: Plan): StageStrategy {
  return plan.stages[0];
}

export function layerCounts(plan: Plan): number[] {
  return plan.stages.map(stageLayerCount);
}

/** The devices the plan uses, laid out as nodes x GPUs per node (stages fill nodes in order). */
export function planNodes(plan: Plan, cluster: ClusterSpec): { nodes: number; gpusPerNode: number } {
  const devices = plan.stages.reduce((n, s) => n + s.mesh.nodes * s.mesh.gpusPerNode, 0);
  if (devices <= cluster.gpusPerNode) return { nodes: 1, gpusPerNode: devices };
  return { nodes: Math.ceil(devices / cluster.gpusPerNode), gpusPerNode: cluster.gpusPerNode };
}

/** The mesh a stage of `devices` GPUs gets on a cluster (within one node when it fits). */
export function stageMesh(devices: number, cluster: ClusterSpec, option: string): Mesh {
  if (devices <= cluster.gpusPerNode) return { nodes: 1, gpusPerNode: devices };
  if (devices % cluster.gpusPerNode !== 0) {
    throw new ImportError(option, `a stage of ${devices} GPUs does not fill whole nodes of ${cluster.gpusPerNode} GPUs`);
  }
  return { nodes: devices / cluster.gpusPerNode, gpusPerNode: cluster.gpusPerNode };
}

/** Layer ranges from per-stage counts. */
export function rangesFromCounts(counts: number[]): [number, number][] {
  let start = 0;
  return counts.map((c) => {
    const r: [number, number] = [start, start + c - 1];
    start += c;
    return r;
  });
}

/** The catalog model with the same architecture (any name), if there is one. */
export function catalogMatch(m: Omit<ModelSpec, 'name'>): ModelSpec | undefined {
  const keys = Object.keys(m).filter((k) => k !== 'name') as (keyof Omit<ModelSpec, 'name'>)[];
  // Nested settings (moe) compare by value; an absent one matches only an absent one.
  const same = (a: unknown, b: unknown): boolean => a === b || (typeof a === 'object' && typeof b === 'object' && JSON.stringify(a) === JSON.stringify(b));
  return modelCatalog().find((c) => keys.every((k) => same(c[k], m[k])));
}

export function positiveInt(value: string | undefined, option: string): number {
  const n = Number(value);
  if (value === undefined || !Number.isInteger(n) || n <= 0) throw new ImportError(option, `got ${JSON.stringify(value)}; expected a positive integer`);
  return n;
}
