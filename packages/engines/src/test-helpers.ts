// Shared fixtures of the engines tests (not exported from the package).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'vitest';
import { type ClusterSpec, type ModelSpec, type Plan, type StageStrategy, parsePlan } from '@mist/core';
import { type ExportFile, type ExportInput } from './types';

export function stage(layers: [number, number], over: Partial<StageStrategy>): StageStrategy {
  return {
    layers, mesh: { nodes: 1, gpusPerNode: 8 }, microBatchSize: 1, dp: 8, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 0,
    offload: { weights: 0, grads: 0, optim: 0, activations: 0 }, ...over,
  };
}

export function makePlan(model: ModelSpec, cluster: ClusterSpec, globalBatch: number, gradAccumSteps: number, stages: StageStrategy[], seqLen = 2048): Plan {
  return parsePlan({ version: 1, model: model.name, cluster: cluster.name, seqLen, globalBatch, gradAccumSteps, stages }, { model, cluster });
}

export function input(plan: Plan, model: ModelSpec, cluster: ClusterSpec): ExportInput {
  return { plan, model, cluster, dtype: 'bf16', launch: { masterAddr: 'node0.example', masterPort: 29500 } };
}

/** Compares every exported file with its golden copy; MIST_UPDATE_GOLDEN=1 rewrites them. */
export function expectGolden(dir: string, files: ExportFile[]): void {
  const root = path.join(__dirname, '__golden__', dir);
  const update = process.env.MIST_UPDATE_GOLDEN === '1';
  if (update) fs.mkdirSync(root, { recursive: true });
  for (const f of files) {
    const file = path.join(root, f.path);
    if (update) fs.writeFileSync(file, f.content);
    expect(f.content, `golden ${dir}/${f.path}`).toBe(fs.readFileSync(file, 'utf8'));
  }
  expect(fs.readdirSync(root).sort()).toEqual(files.map((f) => f.path).sort());
}
