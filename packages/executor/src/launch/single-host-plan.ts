// A plan for one host from a compact sketch of its stages (dp, tp, cp, zero, ckpt, offload per stage;
// the micro-batch follows from globalBatch / (dp * G)), validated with core's parsePlan. Used with
// launchLocal / runInProcess, by the equivalence tests and by the analyzer-vs-executor memory test.
import { NO_OFFLOAD, type Offload, type Plan, parsePlan, type ModelSpec, type StageStrategy } from '@mist/core';

export interface StageSketch {
  layers: [number, number];
  dp?: number;
  tp?: number;
  zero?: 0 | 1 | 2 | 3;
  ckpt?: number;
  offload?: Partial<Offload>;
  sp?: boolean;
  /** Context parallelism (default 1): the mesh holds dp * cp * tp ranks. */
  cp?: number;
  selectiveRecompute?: boolean;
}

export function singleHostPlan(model: ModelSpec, o: { seq: number; globalBatch: number; G: number; flashAttention?: boolean }, stages: StageSketch[]): Plan {
  const st: StageStrategy[] = stages.map((s) => {
    const dp = s.dp ?? 1, tp = s.tp ?? 1, cp = s.cp ?? 1;
    return {
      layers: s.layers, mesh: { nodes: 1, gpusPerNode: dp * tp * cp }, microBatchSize: o.globalBatch / (dp * o.G), dp, tp,
      sequenceParallel: s.sp ?? false, ckptLayers: s.ckpt ?? 0, zero: s.zero ?? 0, offload: { ...NO_OFFLOAD, ...s.offload },
      ...(cp > 1 ? { cp } : {}), ...(s.selectiveRecompute ? { selectiveRecompute: true } : {}),
    };
  });
  const flash = o.flashAttention === undefined ? {} : { flashAttention: o.flashAttention };
  return parsePlan({ version: 1, model: model.name, seqLen: o.seq, globalBatch: o.globalBatch, gradAccumSteps: o.G, stages: st, ...flash }, { model });
}
