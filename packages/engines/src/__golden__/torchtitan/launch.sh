#!/usr/bin/env bash
# Written by `mist export --to torchtitan` for torchtitan v0.2.2. Run on every node with NODE_RANK set (0..1).
set -euo pipefail
DIR="$(dirname "$(readlink -f "$0")")"
cd "${TORCHTITAN_DIR:?set TORCHTITAN_DIR to your torchtitan checkout}"
torchrun --nnodes 2 --nproc-per-node 8 --node-rank "${NODE_RANK:-0}" --master-addr node0.example --master-port 29500 \
  -m torchtitan.train --job.config_file "$DIR/train.toml"
