#!/usr/bin/env bash
# One Slurm task per node (started by slurm.sbatch): torchrun with this node's rank.
# Written by `mist export --to megatron` for Megatron-LM core_v0.14.0 (megatron/training/arguments.py).
set -euo pipefail
source "$(dirname "$(readlink -f "$0")")/megatron-args.sh"
cd "${MEGATRON_LM_DIR:?set MEGATRON_LM_DIR to your Megatron-LM checkout}"
torchrun --nnodes 2 --nproc-per-node 8 --node-rank "$SLURM_NODEID" --master-addr "$MASTER_ADDR" --master-port 29500 \
  pretrain_gpt.py "${MODEL_ARGS[@]}" "${PARALLEL_ARGS[@]}" "${PRECISION_ARGS[@]}" "${DATA_ARGS[@]}" "${TRAINING_ARGS[@]}"
