// `mist export --to megatron`: the pretrain_gpt.py arguments of a plan, one torchrun launch script per
// node and a Slurm batch script (Megatron-LM core_v0.14.0).
import { engineCapabilities } from '@mist/core';
import { planNodes } from '../common';
import { assertExpressible, type ExportFile, type ExportInput } from '../types';
import { type ArgLine, megatronArgs } from './args';

function header(what: string): string {
  const v = engineCapabilities('megatron').engineVersion;
  return `# ${what}\n# Written by \`mist export --to megatron\` for ${v} (megatron/training/arguments.py).\n`;
}

function bashArray(name: string, lines: ArgLine[]): string {
  return `${name}=(\n${lines.map((l) => `  ${l.join(' ')}`).join('\n')}\n)\n`;
}

const RUN_ARGS = '"${MODEL_ARGS[@]}" "${PARALLEL_ARGS[@]}" "${PRECISION_ARGS[@]}" "${DATA_ARGS[@]}" "${TRAINING_ARGS[@]}"';

export function exportMegatron(input: ExportInput): ExportFile[] {
  const { plan, model, cluster, dtype, fp8, overlaps, crossEntropy, gradAccumDtype, fp8ParamGather, launch } = input;
  assertExpressible('megatron', plan, model);
  const args = megatronArgs(plan, model, dtype, fp8, overlaps, crossEntropy, gradAccumDtype, fp8ParamGather);
  const { nodes, gpusPerNode } = planNodes(plan, cluster);
  const argsSh =
    header(`pretrain_gpt.py arguments of the Mist plan for ${model.name} (${nodes} x ${gpusPerNode} GPUs).`) +
    '# Sourced by launch-node<N>.sh and slurm.sbatch.\n\n' +
    bashArray('MODEL_ARGS', args.model) + '\n' +
    bashArray('PARALLEL_ARGS', args.parallelism) + '\n' +
    bashArray('PRECISION_ARGS', args.precision) + '\n' +
    `# ${'EDIT_ME'}: data and tokenizer. As written, pretrain_gpt.py trains on synthetic data (--mock-data) with\n` +
    '# NullTokenizer; replace with e.g. --data-path /path/to/corpus_text_document --tokenizer-type\n' +
    '# HuggingFaceTokenizer --tokenizer-model /path/to/tokenizer (the vocabulary then comes from the tokenizer).\n' +
    bashArray('DATA_ARGS', args.data) + '\n' +
    '# EDIT_ME: optimizer schedule and run length (not part of the plan).\n' +
    bashArray('TRAINING_ARGS', [['--train-iters', '100'], ['--lr', '1.0e-4'], ['--log-interval', '1']]);
  const files: ExportFile[] = [
    { path: 'megatron-args.sh', content: argsSh, executable: false },
    {
      path: 'args.txt',
      content: [...args.model, ...args.parallelism, ...args.precision].map((l) => l.join(' ')).join('\n') + '\n',
      executable: false,
    },
  ];
  const torchrun = (rank: string, addr: string): string =>
    `torchrun --nnodes ${nodes} --nproc-per-node ${gpusPerNode} --node-rank ${rank} --master-addr ${addr} --master-port ${launch.masterPort} \\\n` +
    `  pretrain_gpt.py ${RUN_ARGS}`;
  for (let n = 0; n < nodes; n++) {
    files.push({
      path: `launch-node${n}.sh`,
      content: '#!/usr/bin/env bash\n' + header(`Launch on node ${n} of ${nodes}; run it on every node, each with its own script.`) +
        'set -euo pipefail\n' +
        'source "$(dirname "$(readlink -f "$0")")/megatron-args.sh"\n' +
        'cd "${MEGATRON_LM_DIR:?set MEGATRON_LM_DIR to your Megatron-LM checkout}"\n' +
        `${torchrun(String(n), launch.masterAddr)}\n`,
      executable: true,
    });
  }
  files.push({
    path: 'slurm-task.sh',
    content: '#!/usr/bin/env bash\n' + header('One Slurm task per node (started by slurm.sbatch): torchrun with this node\'s rank.') +
      'set -euo pipefail\n' +
      'source "$(dirname "$(readlink -f "$0")")/megatron-args.sh"\n' +
      'cd "${MEGATRON_LM_DIR:?set MEGATRON_LM_DIR to your Megatron-LM checkout}"\n' +
      `${torchrun('"$SLURM_NODEID"', '"$MASTER_ADDR"')}\n`,
    executable: true,
  });
  files.push({
    path: 'slurm.sbatch',
    content: '#!/usr/bin/env bash\n' + header('Slurm batch script; submit it from this directory: sbatch slurm.sbatch') +
      `#SBATCH --nodes=${nodes}\n#SBATCH --ntasks-per-node=1\n#SBATCH --gpus-per-node=${gpusPerNode}\n#SBATCH --exclusive\n` +
      'set -euo pipefail\n' +
      'export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n' +
      'srun --ntasks-per-node=1 "$SLURM_SUBMIT_DIR/slurm-task.sh"\n',
    executable: true,
  });
  return files;
}
