// `mist export --to torchtitan`: a train.toml for torchtitan v0.2.2 (torchtitan/config/job_config.py).
import { engineCapabilities, stageCp } from '@mist/core';
import { EDIT_ME, planNodes, uniformStrategy } from '../common';
import { type TomlValue, writeToml } from '../toml';
import { assertExpressible, type ExportFile, type ExportInput, InexpressiblePlanError } from '../types';

/** Catalog models that are torchtitan llama3 flavors (torchtitan/models/llama3/__init__.py). */
export const TORCHTITAN_FLAVORS: Record<string, string> = { 'llama3-8b': '8B', 'llama3-70b': '70B' };

/** FQNs of each pipeline stage's modules (torchtitan llama3: tok_embeddings, layers.N, norm, output). */
export function stageModuleFqns(ranges: [number, number][]): string[][] {
  return ranges.map(([a, b], i) => {
    const fqns: string[] = [];
    if (i === 0) fqns.push('tok_embeddings');
    for (let l = a; l <= b; l++) fqns.push(`layers.${l}`);
    if (i === ranges.length - 1) fqns.push('norm', 'output');
    return fqns;
  });
}

export function exportTorchtitan(input: ExportInput): ExportFile[] {
  const { plan, model, cluster, dtype, fp8, fp8ParamGather, crossEntropy, launch } = input;
  assertExpressible('torchtitan', plan, model);
  if (dtype !== 'bf16') {
    throw new InexpressiblePlanError('torchtitan', [{
      feature: 'fp16 mixed precision', field: 'dtype', detail: 'torchtitan\'s training.mixed_precision_param allows bfloat16 or float32',
    }]);
  }
  const s = uniformStrategy(plan);
  const pp = plan.stages.length;
  const G = plan.gradAccumSteps;
  // With pp > 1 the G micro-batches of a step are the pipeline's micro-batches (local batch b * G, no
  // further accumulation); with pp = 1 torchtitan accumulates global / (local * dp) = G micro-batches.
  const local = pp > 1 ? s.microBatchSize * G : s.microBatchSize;
  // FSDP shards over dp_shard * cp (parallelize.py), Mist's ZeRO-2/3 over dp * cp.
  const cp = stageCp(s);
  const sharded = s.dp * cp > 1;
  const shard = s.dp > 1 && s.zero >= 2 ? s.dp : 1;
  const replicate = s.dp > 1 && s.zero < 2 ? s.dp : 1;
  const reshard = sharded && s.zero === 3 ? 'always' : sharded && s.zero === 2 ? 'never' : 'default';
  const flavor = TORCHTITAN_FLAVORS[model.name];
  const modelEntries: [string, TomlValue, string?][] = [
    ['name', 'llama3'],
    ['flavor', flavor ?? EDIT_ME, flavor ? undefined :
      `${EDIT_ME}: register a llama3 flavor with dim ${model.hidden}, n_layers ${model.layers}, n_heads ${model.heads}, ` +
      `n_kv_heads ${model.kvHeads}, vocab_size ${model.vocab}\n(ffn hidden ${model.ffnHidden}) in torchtitan/models/llama3/__init__.py and name it here.`],
    ['hf_assets_path', `./assets/hf/${EDIT_ME}`, `${EDIT_ME}: the tokenizer directory (python scripts/download_hf_assets.py ...)`],
  ];
  // torchao's Float8Linear: the export's format, or the plan's current scaling as the per-tensor
  // "tensorwise" recipe (delayed scaling is refused by the capability table).
  const float8 = plan.fp8 === 'current' ? 'tensorwise' : fp8 ? (fp8 === 'e4m3' ? 'tensorwise' : 'rowwise') : undefined;
  if (float8) modelEntries.push(['converters', ['quantize.linear.float8']]);
  const parallelism: [string, TomlValue, string?][] = [
    ['data_parallel_replicate_degree', replicate],
    ['data_parallel_shard_degree', shard],
    ['fsdp_reshard_after_forward', reshard, 'Mist ZeRO-3 = "always", ZeRO-2 = "never"'],
    ['tensor_parallel_degree', s.tp],
    ['pipeline_parallel_degree', pp],
    ['context_parallel_degree', cp],
  ];
  if (pp > 1) {
    parallelism.push(
      ['pipeline_parallel_schedule', '1F1B'],
      ['pipeline_parallel_microbatch_size', s.microBatchSize],
      ['module_fqns_per_model_part', stageModuleFqns(plan.stages.map((x) => x.layers))],
    );
  }
  const sections: [string, [string, TomlValue, string?][]][] = [
    ['job', [['dump_folder', './outputs'], ['description', `Mist plan for ${model.name} on ${cluster.name}`]]],
    ['model', modelEntries],
    ['training', [
      ['local_batch_size', local],
      ['global_batch_size', plan.globalBatch],
      ['seq_len', plan.seqLen],
      ['enable_cpu_offload', s.offload.optim === 1],
      ['mixed_precision_param', 'bfloat16'],
      ['steps', 100, `${EDIT_ME}: run length and dataset are not part of the plan`],
      ['dataset', 'c4_test'],
    ]],
    ['parallelism', parallelism],
    // torchtitan's one mode for every block: full (whole layers), selective with the per-op policy
    // (the plan's opRecompute), or none (job_config.py ActivationCheckpoint).
    ['activation_checkpoint', s.opRecompute === true
      ? [['mode', 'selective'], ['selective_ac_option', 'op']]
      : [['mode', s.ckptLayers > 0 ? 'full' : 'none']]],
    // torch.compile as the prediction assumed it: on (the model and the loss, v0.2.2's default components)
    // when it costed the compiled loss (TrainingSpec.crossEntropy 'compiled', mist tune --compile), else off.
    ['compile', crossEntropy === 'compiled'
      ? [['enable', true, 'Mist predicted torch.compile: fused element-wise kernels and the compiled loss'], ['components', ['model', 'loss']]]
      : [['enable', false, 'torch.compile is off: Mist predicts eager execution']]],
  ];
  // The fp8 weights gathered as fp8 (TrainingSpec.fp8ParamGather): torchao's FSDP float8 all-gather with
  // the scales precomputed once per step; torchtitan asserts no recipe_name with it (tensorwise is the
  // config's default: components/quantization/float8.py at v0.2.2).
  // The output layer stays in bf16, as the analyzer predicts it (v0.2.2's filter_fqns default is empty).
  if (float8 && fp8ParamGather === true) {
    sections.push(['quantize.linear.float8', [['enable_fsdp_float8_all_gather', true], ['precompute_float8_dynamic_scale_for_fsdp', true], ['filter_fqns', ['output']]]]);
  } else if (float8) sections.push(['quantize.linear.float8', [['recipe_name', float8], ['filter_fqns', ['output']]]]);
  const { nodes, gpusPerNode } = planNodes(plan, cluster);
  const version = engineCapabilities('torchtitan').engineVersion;
  const toml = `# Written by \`mist export --to torchtitan\` for ${version} (torchtitan/config/job_config.py).\n` +
    `# Mist plan for ${model.name}: ${nodes} x ${gpusPerNode} GPUs, dp ${s.dp} (ZeRO-${s.zero}), tp ${s.tp}, pp ${pp}, ` +
    `micro-batch ${s.microBatchSize} x ${G}.\n\n` + writeToml(sections);
  const launchSh = '#!/usr/bin/env bash\n' +
    `# Written by \`mist export --to torchtitan\` for ${version}. Run on every node with NODE_RANK set (0..${nodes - 1}).\n` +
    'set -euo pipefail\n' +
    'DIR="$(dirname "$(readlink -f "$0")")"\n' +
    'cd "${TORCHTITAN_DIR:?set TORCHTITAN_DIR to your torchtitan checkout}"\n' +
    `torchrun --nnodes ${nodes} --nproc-per-node ${gpusPerNode} --node-rank "\${NODE_RANK:-0}" --master-addr ${launch.masterAddr} ` +
    `--master-port ${launch.masterPort} \\\n  -m torchtitan.train --job.config_file "$DIR/train.toml"\n`;
  return [
    { path: 'train.toml', content: toml, executable: false },
    { path: 'launch.sh', content: launchSh, executable: true },
  ];
}
