// `mist export --to nemo`: a NeMo 2 recipe script (nemo.collections.llm + nemo_run) whose overrides set
// the plan. Names from NeMo v2.5: nemo/lightning/pytorch/strategies/megatron_strategy.py (MegatronStrategy
// fields), nemo/collections/llm/gpt/model/base.py (GPTConfig), recipes/llama3_8b.py (pretrain_recipe);
// mixture of experts and squared ReLU from gpt/model/mixtral.py (MixtralConfig: num_moe_experts,
// moe_router_topk, moe_token_dispatcher_type "alltoall"), gpt/model/nemotron.py (NemotronConfig:
// activation_func squared_relu from nemo/collections/llm/fn/activation.py) and MegatronStrategy's
// expert_model_parallel_size.
import { engineCapabilities, engineGradAccumDtype, FP8_AMAX_HISTORY_LEN, type ModelSpec, planVirtualStages, stageCp, stageEp } from '@mist/core';
import { megatronParallelArgs } from '../megatron/args';
import { planNodes, uniformStrategy, layerCounts } from '../common';
import { assertExpressible, type ExportFile, type ExportInput } from '../types';

const py = (b: boolean): string => (b ? 'True' : 'False');

/** NeMo 2's recipe module, model class and config class for a model family. */
function nemoClasses(model: ModelSpec): { recipe: string; model: string; config: string } {
  switch (model.family) {
    case 'llama': return { recipe: 'llama3_8b', model: 'LlamaModel', config: 'Llama3Config' };
    case 'mixtral': return { recipe: 'mixtral_8x7b', model: 'MixtralModel', config: 'MixtralConfig' };
    case 'nemotron': return { recipe: 'gpt3_175b', model: 'NemotronModel', config: 'NemotronConfig' };
    default: return { recipe: 'gpt3_175b', model: 'GPTModel', config: 'GPTConfig' };
  }
}

export function exportNemo(input: ExportInput): ExportFile[] {
  const { plan, model, cluster, dtype, fp8, gradAccumDtype, overlaps } = input;
  assertExpressible('nemo', plan, model);
  megatronParallelArgs(plan); // same expressibility rules as Megatron-LM
  const s = uniformStrategy(plan);
  const pp = plan.stages.length;
  const counts = layerCounts(plan);
  const { nodes, gpusPerNode } = planNodes(plan, cluster);
  // MegatronStrategy.virtual_pipeline_model_parallel_size: v model chunks per rank (interleaved 1F1B);
  // recompute_num_layers counts the layers of one chunk, as Megatron-LM's --recompute-num-layers.
  const v = planVirtualStages(plan);
  const n = Math.max(...plan.stages.map((x) => x.ckptLayers)) / v;
  const cls = nemoClasses(model);
  const moe = model.moe
    ? [`        num_moe_experts=${model.moe.experts}, moe_router_topk=${model.moe.topK}, moe_token_dispatcher_type="alltoall",`
      + (model.moe.ffnHidden !== undefined ? ` moe_ffn_hidden_size=${model.moe.ffnHidden},` : '')]
    : [];
  const squaredRelu = model.activation === 'squared-relu';
  const lines: string[] = [
    `# Written by \`mist export --to nemo\` for ${engineCapabilities('nemo').engineVersion}.`,
    `# Mist plan for ${model.name} on ${nodes} x ${gpusPerNode} GPUs. Run: python nemo_pretrain.py (uses nemo_run's local executor;`,
    '# EDIT_ME: swap in run.SlurmExecutor for a cluster, and MockDataModule for your data module).',
    'import nemo_run as run',
    'from nemo.collections import llm',
    'from nemo.collections.llm.gpt.data.mock import MockDataModule',
    ...(squaredRelu ? ['from nemo.collections.llm.fn.activation import squared_relu'] : []),
    `from nemo.collections.llm.recipes.precision.mixed_precision import ${dtype === 'bf16' ? 'bf16_mixed' : 'fp16_mixed'}`,
    '',
    '',
    'def mist_recipe():',
    `    recipe = llm.${cls.recipe}.pretrain_recipe(name="mist", num_nodes=${nodes}, num_gpus_per_node=${gpusPerNode})`,
    `    # The model (${model.name}).`,
    `    recipe.model = run.Config(llm.${cls.model}, config=run.Config(`,
    `        llm.${cls.config},`,
    `        num_layers=${model.layers}, hidden_size=${model.hidden}, ffn_hidden_size=${model.ffnHidden},`,
    `        num_attention_heads=${model.heads}, num_query_groups=${model.kvHeads}, seq_length=${plan.seqLen},`,
    `        normalization="${model.norm === 'rmsnorm' ? 'RMSNorm' : 'LayerNorm'}", gated_linear_unit=${py(model.activation === 'swiglu')},`,
    `        position_embedding_type="${model.positional === 'rope' ? 'rope' : 'learned_absolute'}",`,
    `        share_embeddings_and_output_weights=${py(model.tiedEmbeddings)}, add_bias_linear=${py(model.bias)},`,
    `        vocab_size=${model.vocab}, make_vocab_size_divisible_by=1,`,
    ...(squaredRelu ? ['        activation_func=squared_relu,'] : []),
    ...moe,
    '    ))',
    '    # Parallelism (MegatronStrategy).',
    '    strategy = recipe.trainer.strategy',
    `    strategy.tensor_model_parallel_size = ${s.tp}`,
    `    strategy.pipeline_model_parallel_size = ${pp}`,
    `    strategy.virtual_pipeline_model_parallel_size = ${v > 1 ? v : 'None'}`,
    `    strategy.context_parallel_size = ${stageCp(s)}`,
    ...(model.moe ? [`    strategy.expert_model_parallel_size = ${stageEp(s)}`] : []),
    `    strategy.sequence_parallel = ${py(s.sequenceParallel)}`,
  ];
  if (pp > 1 && counts[0] !== counts[1]) lines.push(`    strategy.num_layers_in_first_pipeline_stage = ${counts[0]}`);
  if (pp > 2 && counts[pp - 1] !== counts[1]) lines.push(`    strategy.num_layers_in_last_pipeline_stage = ${counts[pp - 1]}`);
  lines.push(
    '    # Batch.',
    `    recipe.data = run.Config(MockDataModule, seq_length=${plan.seqLen}, micro_batch_size=${s.microBatchSize}, global_batch_size=${plan.globalBatch})`,
    '    # Recompute (Megatron-Core TransformerConfig).',
  );
  if (n > 0) {
    lines.push(
      '    recipe.model.config.recompute_granularity = "full"',
      '    recipe.model.config.recompute_method = "block"',
      `    recipe.model.config.recompute_num_layers = ${n}`,
    );
  } else if (plan.stages.some((x) => x.selectiveRecompute === true)) {
    // Megatron-Core's selective recompute of the attention core (recompute_modules defaults to core_attn).
    lines.push('    recipe.model.config.recompute_granularity = "selective"');
  } else lines.push('    recipe.model.config.recompute_granularity = None');
  lines.push(
    '    # ZeRO-1 = the distributed optimizer.',
    `    recipe.optim.config.use_distributed_optimizer = ${py(s.zero === 1)}`,
    `    recipe.trainer.plugins = ${dtype === 'bf16' ? 'bf16_mixed' : 'fp16_mixed'}()`,
  );
  // The gradients' dtype where it differs from the recipe's default (core's engineGradAccumDtype:
  // bf16_mixed grad_reduce_in_fp32 True, fp16_mixed False; nemo/collections/llm/recipes/precision/mixed_precision.py).
  if (gradAccumDtype !== undefined && gradAccumDtype !== (engineGradAccumDtype('nemo', dtype) ?? 'param')) {
    lines.push(`    recipe.trainer.plugins.grad_reduce_in_fp32 = ${py(gradAccumDtype === 'fp32')}`);
  }
  // The recipes' DistributedDataParallelConfig overlaps the gradient reduction and the parameter
  // gather (overlap_grad_reduce=True, overlap_param_gather=True: nemo/collections/llm/recipes/llama3_8b.py);
  // a prediction with the reduction after the backward turns both off (the gather overlap needs it).
  if (overlaps?.gradReduceOverlap === false) {
    lines.push(
      '    # The gradient reduction after the backward, as predicted (TrainingSpec.gradReduceOverlap false).',
      '    recipe.trainer.strategy.ddp.overlap_grad_reduce = False',
      '    recipe.trainer.strategy.ddp.overlap_param_gather = False',
    );
  }
  // fp8: the export's format, or hybrid when the plan assumes a recipe (MegatronMixedPrecision of
  // NeMo v2.5: fp8, fp8_recipe "delayed" | "tensorwise", the amax history of delayed scaling, and
  // fp8_param_gather as the prediction assumed (TrainingSpec.fp8ParamGather): off, the weights stay in
  // the compute dtype beside TE's fp8 copies; on, they are kept and gathered as fp8).
  const recipe = plan.fp8 ?? 'none';
  const format = fp8 ?? (recipe === 'none' ? undefined : 'hybrid');
  if (format) lines.push(`    recipe.trainer.plugins.fp8 = "${format}"`);
  if (recipe !== 'none') {
    lines.push(`    recipe.trainer.plugins.fp8_recipe = "${recipe === 'delayed' ? 'delayed' : 'tensorwise'}"`);
    if (recipe === 'delayed') {
      lines.push(`    recipe.trainer.plugins.fp8_amax_history_len = ${FP8_AMAX_HISTORY_LEN}`, '    recipe.trainer.plugins.fp8_amax_compute_algo = "max"');
    }
    lines.push(`    recipe.trainer.plugins.fp8_param_gather = ${input.fp8ParamGather === true ? 'True' : 'False'}`);
  }
  if (plan.flashAttention === false) lines.push('    # The plan assumes unfused attention: set recipe.model.config.attention_backend to AttnBackend.unfused.');
  lines.push(
    '    recipe.trainer.max_steps = 100  # EDIT_ME: run length is not part of the plan',
    '    return recipe',
    '',
    '',
    'if __name__ == "__main__":',
    `    run.run(mist_recipe(), executor=run.LocalExecutor(ntasks_per_node=${gpusPerNode}, launcher="torchrun"))`,
    '',
  );
  return [{ path: 'nemo_pretrain.py', content: lines.join('\n'), executable: false }];
}
