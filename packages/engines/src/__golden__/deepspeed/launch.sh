#!/usr/bin/env bash
# Written by `mist export --to deepspeed` for DeepSpeed 0.19.6 (ds_config.json keys: deepspeed/runtime/zero/config.py).
# Mist plan for gpt3-1.3b: 2 x 8 GPUs, ZeRO-3, 1 pipeline stage(s).
# EDIT_ME: TRAIN_SCRIPT is your training script (it must call deepspeed.initialize(config=...) and, with
# pp > 1, build a PipelineModule from the "pipeline" section); HOSTFILE lists the nodes ("host slots=N").
set -euo pipefail
DIR="$(dirname "$(readlink -f "$0")")"
deepspeed --num_nodes 2 --num_gpus 8 --master_addr node0.example --master_port 29500 --hostfile "${HOSTFILE:?set HOSTFILE}" "${TRAIN_SCRIPT:?set TRAIN_SCRIPT to your training script}" \
  --deepspeed --deepspeed_config "$DIR/ds_config.json"
