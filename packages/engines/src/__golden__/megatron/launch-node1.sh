#!/usr/bin/env bash
# Launch on node 1 of 2; run it on every node, each with its own script.
# Written by `mist export --to megatron` for Megatron-LM core_v0.14.0 (megatron/training/arguments.py).
set -euo pipefail
source "$(dirname "$(readlink -f "$0")")/megatron-args.sh"
cd "${MEGATRON_LM_DIR:?set MEGATRON_LM_DIR to your Megatron-LM checkout}"
torchrun --nnodes 2 --nproc-per-node 8 --node-rank 1 --master-addr node0.example --master-port 29500 \
  pretrain_gpt.py "${MODEL_ARGS[@]}" "${PARALLEL_ARGS[@]}" "${PRECISION_ARGS[@]}" "${DATA_ARGS[@]}" "${TRAINING_ARGS[@]}"
