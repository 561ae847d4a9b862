// Plan: the tuner's output and the coordinator's input — how every stage of the pipeline runs.
// Layer indices count transformer layers only (inclusive ranges); the embedding belongs to the
// first stage, the final norm, LM head and loss to the last.
import { z } from 'zod';
import { type ClusterSpec } from './cluster';
import { type ModelSpec } from './model';
import { FP8_RECIPES } from './training';
import { type SpecIssue, SpecError, zodIssues } from './validation';

const ratio = z.number().min(0).max(1);

export const OffloadSchema = z.strictObject({
  weights: ratio,
  grads: ratio,
  optim: ratio,
  activations: ratio,
});
export type Offload = z.output<typeof OffloadSchema>;
export const NO_OFFLOAD: Offload = Object.freeze({ weights: 0, grads: 0, optim: 0, activations: 0 });

export const MeshSchema = z.strictObject({
  nodes: z.number().int().positive(),
  gpusPerNode: z.number().int().positive(),
});
export type Mesh = z.output<typeof MeshSchema>;

export const ZERO_LEVELS = [0, 1, 2, 3] as const;
export type ZeroLevel = (typeof ZERO_LEVELS)[number];

export const StageStrategySchema = z.strictObject({
  layers: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
  mesh: MeshSchema,
  microBatchSize: z.number().int().positive(),
  dp: z.number().int().positive(),
  tp: z.number().int().positive(),
  /**
   * Context parallelism (Megatron-Core --context-parallel-size): the sequence split over cp ranks
   * in 2*cp load-balanced causal chunks, attention as a K/V ring. Absent: 1.
   */
  cp: z.number().int().positive().optional(),
  /**
   * Expert parallelism (mixture-of-experts models; Megatron-Core --expert-model-parallel-size): each
   * layer's experts split over ep ranks carved out of the stage's dp * cp ranks, tokens sent to
   * their experts and back by all-to-all; expert tensor parallelism is tp. ep divides dp * cp and
   * the model's experts. Absent: 1.
   */
  ep: z.number().int().positive().optional(),
  sequenceParallel: z.boolean(),
  ckptLayers: z.number().int().nonnegative(),
  /**
   * Selective activation recomputation (Korthikanti et al. 2022, Sec. 5) of the stage's layers that
   * are not fully checkpointed: the attention core (QK^T, softmax, its dropout, attention over V)
   * keeps nothing and runs again in backward; the linear layers' outputs stay. With flash attention
   * it changes nothing (the kernel keeps no s x s tensor): accepted as a no-op. Absent: false.
   */
  selectiveRecompute: z.boolean().optional(),
  /**
   * torchtitan's per-op selective activation checkpointing (`selective_ac_option = "op"`) of the
   * stage's layers that are not fully checkpointed (core's opCheckpointSet): the outputs of every
   * other GEMM (the 1st, 3rd, ... of a layer, in forward order) and of the attention kernel are kept,
   * the rest of the layer runs again in backward. One policy per layer: excludes selectiveRecompute.
   * Absent: false.
   */
  opRecompute: z.boolean().optional(),
  zero: z.literal([0, 1, 2, 3]),
  offload: OffloadSchema,
});
export type StageStrategy = z.output<typeof StageStrategySchema>;

export const PLAN_VERSION = 1;

export const PlanSchema = z.strictObject({
  version: z.literal(PLAN_VERSION),
  model: z.string().min(1),
  /** Optional cluster shorthand the plan was tuned for, e.g. `1x8-l4`. */
  cluster: z.string().optional(),
  seqLen: z.number().int().positive(),
  globalBatch: z.number().int().positive(),
  gradAccumSteps: z.number().int().positive(),
  flashAttention: z.boolean().optional(),
  /**
   * Model chunks per pipeline rank for Megatron-LM's interleaved 1F1B schedule (Narayanan et al.
   * 2021, Sec. 2.2; --virtual-pipeline-model-parallel-size). Absent or 1: plain 1F1B. See
   * rankChunkLayers for how the stages' layer ranges read when it is above 1.
   */
  virtualStages: z.number().int().positive().optional(),
  /** fp8 linear layers the plan assumes (training.ts FP8_RECIPES); absent: as the training spec says (default none). */
  fp8: z.enum(FP8_RECIPES).optional(),
  stages: z.array(StageStrategySchema).min(1),
});
export type Plan = z.output<typeof PlanSchema>;

/** The plan's model chunks per pipeline rank (1 when the field is absent). */
export function planVirtualStages(p: Pick<Plan, 'virtualStages'>): number {
  return p.virtualStages ?? 1;
}

/**
 * The layer ranges rank `stage` holds, one per model chunk, in chunk order.
 *
 * With v = virtualStages > 1 the plan still has one entry in `stages` per pipeline rank (its mesh,
 * dp, tp, ZeRO, offload and checkpoint count are properties of the rank's devices, which hold all
 * of its chunks), and stages[i].layers keeps the contiguous range it would have at v = 1. The rules
 * require every rank to hold the same number of layers n, divisible by v, so those ranges only
 * carry the rank's layer count, which is all the stage cost model, the tuner and the coverage rule
 * read. The layers a rank really holds follow Megatron-LM's layout: the model splits into pp * v
 * chunks of n / v layers in pipeline order, chunk j on rank j % pp, so rank i holds chunks i,
 * i + pp, i + 2 pp, ... Only code that places layers (the executor, pictures, engine export) needs
 * this function; keeping pp entries keeps planDevices, placement and every per-stage reader as is.
 */
export function rankChunkLayers(plan: Plan, stage: number): Array<[number, number]> {
  const pp = plan.stages.length;
  if (!(Number.isInteger(stage) && stage >= 0 && stage < pp)) {
    throw new RangeError(`stage ${stage} is outside the pipeline of ${pp} stages`);
  }
  const v = planVirtualStages(plan);
  const s = plan.stages[stage];
  if (v === 1) return [[s.layers[0], s.layers[1]]];
  const per = stageLayerCount(s) / v;
  return Array.from({ length: v }, (_, c) => {
    const start = (c * pp + stage) * per;
    return [start, start + per - 1];
  });
}

/**
 * Why `tp` cannot split `model` Megatron-style (whole attention heads per rank, key/value heads split
 * or replicated, the MLP's hidden width split evenly); empty when it can. The one rule for plan
 * validation and the tuner's enumeration.
 */
export function tensorParallelProblems(model: ModelSpec, tp: number): string[] {
  const out: string[] = [];
  if (model.heads % tp !== 0) out.push(`must divide the model's ${model.heads} attention heads`);
  else if (model.kvHeads % tp !== 0 && tp % model.kvHeads !== 0) {
    out.push(`must divide the model's ${model.kvHeads} key/value heads or be a multiple of them`);
  }
  if (model.ffnHidden % tp !== 0) out.push(`must divide the model's ffnHidden ${model.ffnHidden}`);
  const expertFfn = model.moe?.ffnHidden;
  if (expertFfn !== undefined && expertFfn % tp !== 0) out.push(`must divide the model's moe.ffnHidden ${expertFfn} (expert tensor parallelism is tp)`);
  return out;
}

/** Whether a stage selectively recomputes its attention core (false when the field is absent). */
export function stageSelectiveRecompute(s: Pick<StageStrategy, 'selectiveRecompute'>): boolean {
  return s.selectiveRecompute ?? false;
}

/** Whether a stage runs torchtitan's per-op selective checkpointing (false when the field is absent). */
export function stageOpRecompute(s: Pick<StageStrategy, 'opRecompute'>): boolean {
  return s.opRecompute ?? false;
}

/** A stage's expert-parallel degree (1 when the field is absent). */
export function stageEp(s: Pick<StageStrategy, 'ep'>): number {
  return s.ep ?? 1;
}

/**
 * Why `ep` cannot split the experts of `model` on a stage of dp * cp data-parallel ranks (Megatron-Core:
 * the expert grid tp x ep x edp covers the stage's tp x cp x dp ranks, parallel_state.py
 * initialize_model_parallel; arguments.py: num_experts a multiple of expert_model_parallel_size);
 * empty when it can. The one rule for plan validation and the tuner's enumeration.
 */
export function expertParallelProblems(model: ModelSpec | undefined, ep: number, dpcp: number): string[] {
  if (ep === 1) return [];
  const out: string[] = [];
  if (dpcp % ep !== 0) out.push(`must divide dp * cp (${dpcp}): the expert-parallel ranks are carved out of the data-parallel ones (allowed: divisors of dp * cp)`);
  if (model && !model.moe) out.push(`must be 1: ${model.name} has no mixture of experts`);
  else if (model?.moe && model.moe.experts % ep !== 0) out.push(`must divide the model's ${model.moe.experts} experts`);
  return out;
}

/** A stage's context-parallel degree (1 when the field is absent). */
export function stageCp(s: Pick<StageStrategy, 'cp'>): number {
  return s.cp ?? 1;
}

export function stageLayerCount(s: StageStrategy): number {
  return s.layers[1] - s.layers[0] + 1;
}

export function meshSize(m: Mesh): number {
  return m.nodes * m.gpusPerNode;
}

export function planDevices(p: Plan): number {
  return p.stages.reduce((n, s) => n + meshSize(s.mesh), 0);
}

/** Every cross-field rule of a structurally valid plan; empty when the plan is consistent. */
export function planRuleIssues(plan: Plan, ctx: { model?: ModelSpec; cluster?: ClusterSpec } = {}): SpecIssue[] {
  const issues: SpecIssue[] = [];
  const add = (field: string, value: unknown, message: string): void => {
    issues.push({ field, value, message });
  };
  let expectedStart = 0;
  plan.stages.forEach((s, i) => {
    const at = `stages[${i}]`;
    const [start, end] = s.layers;
    if (end < start) add(`${at}.layers`, s.layers, 'the end must not be before the start');
    if (start !== expectedStart) {
      add(`${at}.layers`, s.layers, `must start at layer ${expectedStart} (stages cover the layers in order, once)`);
    }
    expectedStart = end + 1;
    const count = end - start + 1;
    if (s.ckptLayers > count) add(`${at}.ckptLayers`, s.ckptLayers, `must be between 0 and the stage's ${count} layers`);
    if (s.opRecompute === true && s.selectiveRecompute === true) {
      add(`${at}.opRecompute`, true, 'excludes selectiveRecompute (a layer has one recompute policy: set one of the two)');
    }
    const devices = meshSize(s.mesh);
    const cp = stageCp(s);
    if (s.dp * s.tp * cp !== devices) {
      add(`${at}.dp`, s.dp, `dp * tp * cp (${s.dp} * ${s.tp} * ${cp}) must equal the mesh size ${s.mesh.nodes}x${s.mesh.gpusPerNode} = ${devices}`);
    }
    if (cp > 1 && plan.seqLen % (2 * cp) !== 0) {
      add(`${at}.cp`, cp, `seqLen ${plan.seqLen} must be divisible by 2 * cp = ${2 * cp} (the sequence splits into 2*cp load-balanced chunks; allowed: 1 or a cp with seqLen % (2*cp) == 0)`);
    }
    if (s.mesh.gpusPerNode % s.tp !== 0) {
      add(`${at}.tp`, s.tp, `must divide mesh.gpusPerNode (${s.mesh.gpusPerNode}): TP stays inside a node`);
    }
    const samples = s.microBatchSize * s.dp * plan.gradAccumSteps;
    if (samples !== plan.globalBatch) {
      add(`${at}.microBatchSize`, s.microBatchSize,
        `microBatchSize * dp * gradAccumSteps (${s.microBatchSize} * ${s.dp} * ${plan.gradAccumSteps} = ${samples}) must equal globalBatch ${plan.globalBatch}`);
    }
    const m = ctx.model;
    if (m) for (const why of tensorParallelProblems(m, s.tp)) add(`${at}.tp`, s.tp, why);
    for (const why of expertParallelProblems(m, stageEp(s), s.dp * cp)) add(`${at}.ep`, stageEp(s), why);
    const c = ctx.cluster;
    if (c) {
      if (s.mesh.gpusPerNode > c.gpusPerNode) {
        add(`${at}.mesh.gpusPerNode`, s.mesh.gpusPerNode, `must be at most the cluster's ${c.gpusPerNode} GPUs per node`);
      }
      if (s.mesh.nodes > c.nodes) add(`${at}.mesh.nodes`, s.mesh.nodes, `must be at most the cluster's ${c.nodes} nodes`);
    }
  });
  const v = plan.virtualStages;
  if (v !== undefined && v > 1) {
    // Megatron-LM's interleaved schedule: the uniform split of --num-layers-per-virtual-pipeline-stage,
    // micro-batches in groups of pp (microbatch_group_size_per_vp_stage defaults to pp and the last
    // group may not be smaller), and the last rank's chunk sends its activations to the first rank,
    // so the ranks must agree on the activation shape.
    const pp = plan.stages.length;
    if (pp < 2) add('virtualStages', v, 'must be 1 for a pipeline of one stage (allowed: 1, or an integer above 1 with 2 or more stages)');
    const n = stageLayerCount(plan.stages[0]);
    plan.stages.forEach((s, i) => {
      const count = stageLayerCount(s);
      if (count !== n) {
        add(`stages[${i}].layers`, s.layers, `must hold ${n} layers like stages[0]: virtualStages ${v} needs the same layer count on every stage`);
      }
      const s0 = plan.stages[0];
      if (s.microBatchSize !== s0.microBatchSize || s.tp !== s0.tp || s.sequenceParallel !== s0.sequenceParallel || stageCp(s) !== stageCp(s0)) {
        add(`stages[${i}]`, `microBatchSize ${s.microBatchSize}, tp ${s.tp}, cp ${stageCp(s)}, sequenceParallel ${s.sequenceParallel}`,
          `must equal stages[0]'s microBatchSize, tp, cp and sequenceParallel when virtualStages is ${v} (the last stage sends activations to the first)`);
      }
    });
    if (n % v !== 0) add('virtualStages', v, `must divide every stage's ${n} layers (allowed: 1 or a divisor of the layers per stage)`);
    if (plan.gradAccumSteps % pp !== 0) {
      add('gradAccumSteps', plan.gradAccumSteps, `must be a multiple of the ${pp} pipeline stages when virtualStages is ${v} (Megatron-LM's interleaved schedule)`);
    }
  }
  const m = ctx.model;
  if (m) {
    if (plan.model !== m.name) add('model', plan.model, `the plan is checked against model ${m.name}`);
    if (expectedStart !== m.layers) {
      add(`stages[${plan.stages.length - 1}].layers`, plan.stages[plan.stages.length - 1].layers,
        `stages must cover layers 0..${m.layers - 1} of ${m.name}; they end at ${expectedStart - 1}`);
    }
    if (m.positional === 'learned' && plan.seqLen > m.maxSeq) {
      add('seqLen', plan.seqLen, `must be at most ${m.maxSeq} (learned positions of ${m.name})`);
    }
  }
  const c = ctx.cluster;
  if (c) {
    const used = planDevices(plan);
    if (used > c.nodes * c.gpusPerNode) {
      add('stages', `${used} devices`, `the plan needs ${used} devices; the cluster ${c.name} has ${c.nodes * c.gpusPerNode}`);
    }
  }
  return issues;
}

// The same shape with no range checks, so that the cross-field rules can still be checked (and
// reported together) when some values are out of range.
const LenientPlanSchema = z.object({
  seqLen: z.number(),
  globalBatch: z.number(),
  gradAccumSteps: z.number(),
  virtualStages: z.number().optional(),
  model: z.string(),
  stages: z.array(
    z.object({
      layers: z.tuple([z.number(), z.number()]),
      mesh: z.object({ nodes: z.number(), gpusPerNode: z.number() }),
      microBatchSize: z.number(),
      dp: z.number(),
      tp: z.number(),
      cp: z.number().optional(),
      ep: z.number().optional(),
      ckptLayers: z.number(),
    }),
  ).min(1),
});

/** All problems of a plan document: schema problems, then every cross-field rule that can be checked. */
export function planIssues(data: unknown, ctx: { model?: ModelSpec; cluster?: ClusterSpec } = {}): SpecIssue[] {
  const res = PlanSchema.safeParse(data);
  if (res.success) return planRuleIssues(res.data, ctx);
  const issues = zodIssues(res.error, data);
  const lenient = LenientPlanSchema.safeParse(data);
  if (lenient.success) {
    for (const rule of planRuleIssues(lenient.data as unknown as Plan, ctx)) {
      if (!issues.some((i) => i.field === rule.field && i.message === rule.message)) issues.push(rule);
    }
  }
  return issues;
}

/** Parses and validates a plan; throws a SpecError listing every broken rule. */
export function parsePlan(data: unknown, ctx: { model?: ModelSpec; cluster?: ClusterSpec } = {}): Plan {
  const issues = planIssues(data, ctx);
  if (issues.length > 0) throw new SpecError('plan', issues);
  return PlanSchema.parse(data);
}

/** The plan file format as a JSON Schema (draft 2020-12), for editors and other tools. */
export function planJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(PlanSchema) as Record<string, unknown>;
}
