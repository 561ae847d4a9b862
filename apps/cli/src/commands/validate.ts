// `mist validate plan.json`: checks a plan file against the schema and every cross-field rule.
import { type ClusterSpec, formatIssue, loadCluster, loadModel, type ModelSpec, planIssues, planJsonSchema, readSpecFile,
  resolveModelName } from '@mist/core';
import { type Command, JSON_OPTION, stringOpt, UsageError } from '../cli/command';
import { optionalPlanArgument } from '../cli/plan-argument';

/** Whether a plan's "model" names a catalog model (however spelt); a plan may name a model file's model. */
function isModelName(name: string): boolean {
  try {
    resolveModelName(name);
    return true;
  } catch {
    return false;
  }
}

export const validateCommand: Command = {
  name: 'validate',
  summary: 'check a plan file: schema, layer coverage, dp*tp = mesh, batch arithmetic, TP divisibility',
  usage: 'mist validate PLAN.json|--plan PLAN.json [--model NAME|FILE] [--cluster SHORTHAND|FILE] [--json] | mist validate --schema',
  examples: [
    'mist validate plan.json',
    'mist validate plan.json --cluster 1x2-l4 --json',
    'mist validate --schema > plan.schema.json',
  ],
  positionals: { min: 0, max: 1, names: 'one plan file (or --plan FILE)' },
  options: {
    plan: { type: 'string', valueName: 'FILE', description: 'the plan to check (JSON or YAML; or give it as the argument)' },
    model: { type: 'string', valueName: 'NAME|FILE', description: 'model to check against (default: the plan\'s "model" when it is a catalog name)' },
    cluster: { type: 'string', valueName: 'SHORTHAND|FILE', description: 'cluster to check against, e.g. 2x8-a100-40gb (default: the plan\'s "cluster")' },
    schema: { type: 'boolean', description: 'print the plan JSON Schema and exit' },
    ...JSON_OPTION,
  },
  async run(values, positionals, io) {
    if (values.schema) {
      io.stdout(JSON.stringify(planJsonSchema(), null, 2) + '\n');
      return 0;
    }
    const file = optionalPlanArgument(values, positionals);
    if (!file) throw new UsageError('expects a plan file: PLAN.json or --plan PLAN.json (or --schema)');
    const data = readSpecFile(file);
    const doc = (data && typeof data === 'object' ? data : {}) as { model?: unknown; cluster?: unknown };
    const modelRef = stringOpt(values, 'model') ?? (typeof doc.model === 'string' && isModelName(doc.model) ? doc.model : undefined);
    const model: ModelSpec | undefined = modelRef ? loadModel(modelRef) : undefined;
    const clusterRef = stringOpt(values, 'cluster') ?? (typeof doc.cluster === 'string' ? doc.cluster : undefined);
    const cluster: ClusterSpec | undefined = clusterRef ? loadCluster(clusterRef) : undefined;
    const issues = planIssues(data, { model, cluster });
    if (values.json) {
      io.stdout(JSON.stringify({ valid: issues.length === 0, file, model: model?.name ?? null, cluster: cluster?.name ?? null, issues }, null, 2) + '\n');
      return issues.length === 0 ? 0 : 2;
    }
    const against = [model ? `model ${model.name}` : 'no model (pass --model to check heads/layers)', cluster ? `cluster ${cluster.name}` : null]
      .filter(Boolean)
      .join(', ');
    if (issues.length === 0) {
      io.stdout(`${file}: valid plan (checked against ${against})\n`);
      return 0;
    }
    io.stderr(`${file}: ${issues.length} problem${issues.length > 1 ? 's' : ''} (checked against ${against}):\n`);
    for (const issue of issues) io.stderr(`  - ${formatIssue(issue)}\n`);
    return 2;
  },
};
