// `mist export --to deepspeed`: ds_config.json and a launcher line for DeepSpeed 0.19.6
// (keys from deepspeed/runtime/config.py, runtime/zero/config.py and runtime/zero/offload_config.py).
// DeepSpeed reads no model dimensions, tensor or pipeline sizes from its config: the user's script builds
// the model (a PipelineModule when pp > 1). The "pipeline" section carries Mist's stage count, partition
// method and checkpoint interval under DeepSpeed's own keys (runtime/config.py get_pipeline_config) for
// the script to pass to PipelineModule(num_stages=..., partition_method=..., activation_checkpoint_interval=...).
import { engineCapabilities, FP32_GRAD_ACCUM_FEATURE } from '@mist/core';
import { planNodes, uniformStrategy } from '../common';
import { assertExpressible, type ExportFile, type ExportInput, InexpressiblePlanError } from '../types';

export type DsConfig = Record<string, unknown>;

export function deepspeedConfig(input: ExportInput): DsConfig {
  const { plan, dtype } = input;
  const s = uniformStrategy(plan);
  const pp = plan.stages.length;
  const zero: Record<string, unknown> = { stage: s.zero };
  // ZeRO-1/2 reduce gradients in the backward's hooks; overlap_comm (default false below ZeRO-3:
  // runtime/zero/config.py) runs them beside it, as the analyzer costs them: ZeRO-2 every micro-batch
  // inside its backward phase, ZeRO-1 the last one's beside the last backward unless the prediction
  // put it after (TrainingSpec.gradReduceOverlap false). ZeRO-0 reduces after the backward whatever the
  // config (engine.py allreduce_gradients); ZeRO-3 overlaps by default.
  if (s.zero === 1 || s.zero === 2) zero.overlap_comm = s.zero === 2 || input.overlaps?.gradReduceOverlap !== false;
  if (s.offload.weights === 1) zero.offload_param = { device: 'cpu', pin_memory: true };
  if (s.offload.optim > 0) {
    zero.offload_optimizer = { device: 'cpu', pin_memory: true, ...(s.offload.optim < 1 ? { ratio: s.offload.optim } : {}) };
  }
  const cfg: DsConfig = {
    train_batch_size: plan.globalBatch,
    train_micro_batch_size_per_gpu: s.microBatchSize,
    gradient_accumulation_steps: plan.gradAccumSteps,
    [dtype]: { enabled: true },
    zero_optimization: zero,
    // Gradients accumulated in fp32 (TrainingSpec.gradAccumDtype; DeepSpeed's default is the model's dtype).
    ...(input.gradAccumDtype === 'fp32' ? { data_types: { grad_accum_dtype: 'fp32' } } : {}),
  };
  const ckpt = s.ckptLayers > 0;
  if (pp > 1) cfg.pipeline = { stages: pp, partition: 'uniform', activation_checkpoint_interval: ckpt ? 1 : 0 };
  // deepspeed.checkpointing.configure() reads this section; the script checkpoints every layer when it exists.
  if (ckpt) cfg.activation_checkpointing = { partition_activations: false, cpu_checkpointing: false, contiguous_memory_optimization: false };
  return cfg;
}

/**
 * Whether DeepSpeed runs fp32 gradient accumulation (data_types.grad_accum_dtype) beside the weights:
 * with bf16, ZeRO-1 and no CPU offload only (its BF16_Optimizer; runtime/engine.py
 * _do_optimizer_sanity_check raises NotImplementedError or ignores it otherwise). Read by the export
 * and the import.
 */
export function deepspeedRunsFp32Grads(bf16: boolean, zero: number, offload: { weights: number; optim: number }): boolean {
  return bf16 && zero === 1 && offload.weights === 0 && offload.optim === 0;
}

export function exportDeepspeed(input: ExportInput): ExportFile[] {
  const { plan, model, cluster, fp8, launch } = input;
  assertExpressible('deepspeed', plan, model);
  if (fp8) {
    throw new InexpressiblePlanError('deepspeed', [{ feature: 'FP8 training', field: 'fp8', detail: 'ds_config.json has no FP8 GEMM setting' }]);
  }
  const s = uniformStrategy(plan);
  if (input.gradAccumDtype === 'fp32' && !deepspeedRunsFp32Grads(input.dtype === 'bf16', s.zero, s.offload)) {
    throw new InexpressiblePlanError('deepspeed', [{
      feature: FP32_GRAD_ACCUM_FEATURE, field: 'training.gradAccumDtype',
      detail: `got fp32 with ${input.dtype}, ZeRO-${s.zero}${s.offload.optim > 0 || s.offload.weights > 0 ? ' and CPU offload' : ''}; DeepSpeed runs it with bf16, ZeRO-1 and no offload only`,
    }]);
  }
  const { nodes, gpusPerNode } = planNodes(plan, cluster);
  const version = engineCapabilities('deepspeed').engineVersion;
  const launchSh = '#!/usr/bin/env bash\n' +
    `# Written by \`mist export --to deepspeed\` for ${version} (ds_config.json keys: deepspeed/runtime/zero/config.py).\n` +
    `# Mist plan for ${model.name}: ${nodes} x ${gpusPerNode} GPUs, ZeRO-${s.zero}, ${plan.stages.length} pipeline stage(s).\n` +
    '# EDIT_ME: TRAIN_SCRIPT is your training script (it must call deepspeed.initialize(config=...) and, with\n' +
    '# pp > 1, build a PipelineModule from the "pipeline" section); HOSTFILE lists the nodes ("host slots=N").\n' +
    'set -euo pipefail\n' +
    'DIR="$(dirname "$(readlink -f "$0")")"\n' +
    `deepspeed --num_nodes ${nodes} --num_gpus ${gpusPerNode} --master_addr ${launch.masterAddr} --master_port ${launch.masterPort} ` +
    (nodes > 1 ? '--hostfile "${HOSTFILE:?set HOSTFILE}" ' : '') +
    '"${TRAIN_SCRIPT:?set TRAIN_SCRIPT to your training script}" \\\n  --deepspeed --deepspeed_config "$DIR/ds_config.json"\n';
  return [
    { path: 'ds_config.json', content: JSON.stringify(deepspeedConfig(input), null, 2) + '\n', executable: false },
    { path: 'launch.sh', content: launchSh, executable: true },
  ];
}
