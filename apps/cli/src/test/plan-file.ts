// A plan file for the CLI tests of training options: gpt3-1.3b as one stage of dp 8, micro-batch 2,
// G 4, ZeRO-1, no recompute, on one node of 8 A100 80GB by default, or on `nodes` nodes of another
// cluster with tensor parallelism `tp` (sequence parallel when tp > 1); written to `dir`.
import * as fs from 'node:fs';
import * as path from 'node:path';

export function writeGpt13bPlan(dir: string, over: { cluster?: string; nodes?: number; tp?: number } = {}): string {
  const { cluster = '1x8-a100-80gb', nodes = 1, tp = 1 } = over;
  const plan = { version: 1, model: 'gpt3-1.3b', cluster, seqLen: 2048, globalBatch: 64, gradAccumSteps: 4,
    stages: [{ layers: [0, 23], mesh: { nodes, gpusPerNode: 8 }, microBatchSize: 2, dp: 8, tp, sequenceParallel: tp > 1, ckptLayers: 0, zero: 1,
      offload: { weights: 0, grads: 0, optim: 0, activations: 0 } }] };
  const file = path.join(dir, 'plan.json');
  fs.writeFileSync(file, JSON.stringify(plan));
  return file;
}
