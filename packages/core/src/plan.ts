// Plan: the tuner's output and the coordinator's input — how every stage of the pipeline runs.
// Layer indices count transformer layers only (inclusive ranges); the embedding belongs to the
// first stage, the final norm, LM head and loss to the last.
import { z } from 'zod';
import { type ClusterSpec } from './cluster';
import { type ModelSpec } from './model';
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
  sequenceParallel: z.boolean(),
  ckptLayers: z.number().int().nonnegative(),
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
  stages: z.array(StageStrategySchema).min(1),
});
export type Plan = z.output<typeof PlanSchema>;

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
  return out;
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
    const devices = meshSize(s.mesh);
    if (s.dp * s.tp !== devices) {
      add(`${at}.dp`, s.dp, `dp * tp (${s.dp} * ${s.tp}) must equal the mesh size ${s.mesh.nodes}x${s.mesh.gpusPerNode} = ${devices}`);
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
    const c = ctx.cluster;
    if (c) {
      if (s.mesh.gpusPerNode > c.gpusPerNode) {
        add(`${at}.mesh.gpusPerNode`, s.mesh.gpusPerNode, `must be at most the cluster's ${c.gpusPerNode} GPUs per node`);
      }
      if (s.mesh.nodes > c.nodes) add(`${at}.mesh.nodes`, s.mesh.nodes, `must be at most the cluster's ${c.nodes} nodes`);
    }
  });
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
  model: z.string(),
  stages: z.array(
    z.object({
      layers: z.tuple([z.number(), z.number()]),
      mesh: z.object({ nodes: z.number(), gpusPerNode: z.number() }),
      microBatchSize: z.number(),
      dp: z.number(),
      tp: z.number(),
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
