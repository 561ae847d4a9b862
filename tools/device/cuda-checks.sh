#!/usr/bin/env bash
# The CUDA backend's checks on a GPU host, in one go and under 8 minutes; builds nothing there.
# Prepare on the build machine (which has nvcc):
#   node tools/scripts/build-native.js && node tools/device/pack-test-runtime.js
# then run from the repository root on the GPU host with these carried (the device tool's carry):
#   packages/native/build/Release/mist_native.node  packages/native/build/Release/cuda-kernels  .device
#   bash tools/device/cuda-checks.sh          (writes to $OUT, or /tmp/mist-cuda-checks)
# It runs the CUDA vitest files (every op against the CPU kernel; they skip without a GPU), the
# executor's GPU training check (losses of 200 steps against the CPU executor, fp32 and bf16/fp16),
# GPT-3 350M's measured memory and step time against the analyzer (apps/cli/src/gpu-checks), then
# tools/device/cuda-report.js, which writes $OUT/cuda-report.json: per-op max error vs the CPU,
# GEMM TFLOP/s per shape and path, allocator accounting, copy bandwidth.
set -uo pipefail
OUT="${OUT:-/tmp/mist-cuda-checks}"
mkdir -p "$OUT"
started=$(date +%s)
echo "[cuda-checks] $(date -u +%FT%TZ) on $(hostname)"
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader 2>&1 | tee "$OUT/nvidia-smi.txt"
ldconfig -p 2>/dev/null | grep -E 'libcuda\.so|libcublasLt|libcublas\.so|libnccl|libcudart' | tee "$OUT/libraries.txt"
node --version
if [ ! -d node_modules/vitest ]; then
  [ -f .device/test-runtime.tar.gz ] || { echo "[cuda-checks] .device/test-runtime.tar.gz is missing: run node tools/device/pack-test-runtime.js on the build machine and carry .device"; exit 2; }
  tar xzf .device/test-runtime.tar.gz
fi
export MIST_CUDA_REPORT="$OUT/kernel-errors.jsonl"
rm -f "$MIST_CUDA_REPORT"
node -e "const a=require('bindings')({bindings:'mist_native',module_root:require('path').resolve('packages/native')});const p=a.cudaProbe();console.log(JSON.stringify({available:p.available,reason:p.reason,devices:p.devices,cublasLt:p.cublasLt,kernels:p.kernels.files.length}))" | tee "$OUT/probe.json"
(cd packages/native && timeout 150 node ../../node_modules/vitest/vitest.mjs run --config ../../vitest.config.ts src/cuda 2>&1 | tail -60)
cp packages/native/.test-results/vitest.json "$OUT/vitest-cuda.json" 2>/dev/null
# Training on the GPU against the CPU executor (fp32, 200 steps of gpt-tiny and llama-tiny).
export MIST_CUDA_REPORT_TRAIN="$OUT/train.jsonl" MIST_CUDA_TRAIN_STEPS=200
rm -f "$MIST_CUDA_REPORT_TRAIN"
(cd packages/executor && timeout 90 node ../../node_modules/vitest/vitest.mjs run --config ../../vitest.config.ts src/train/cuda-train.test.ts 2>&1 | tail -20)
cp packages/executor/.test-results/vitest.json "$OUT/vitest-train.json" 2>/dev/null
# The profiler on the GPU (mist profile --device cuda's code): the smoke grid in bf16 and fp32, and a
# quick bf16 profile kept for the plan check below.
export MIST_CUDA_PROFILE_OUT="$OUT/h200-profile.json"
(cd packages/profiler && timeout 120 node ../../node_modules/vitest/vitest.mjs run --config ../../vitest.config.ts src/profile-cuda.test.ts 2>&1 | tail -20)
cp packages/profiler/.test-results/vitest.json "$OUT/vitest-profile.json" 2>/dev/null
# GPT-3 350M under four plans and the tuned one: measured memory and step time against the analyzer
# (with the measured profile when the profiler wrote one, else the datasheet profile).
export MIST_GPU_PLAN_CHECK=1 MIST_CUDA_REPORT_PLANS="$OUT/plans.jsonl"
[ -s "$MIST_CUDA_PROFILE_OUT" ] && export MIST_CUDA_PROFILE="$MIST_CUDA_PROFILE_OUT"
rm -f "$MIST_CUDA_REPORT_PLANS"
(cd apps/cli && NODE_OPTIONS=--expose-gc timeout 120 node ../../node_modules/vitest/vitest.mjs run --config ../../vitest.config.ts src/gpu-checks 2>&1 | tail -30)
cp apps/cli/.test-results/vitest.json "$OUT/vitest-plans.json" 2>/dev/null
timeout 60 node tools/device/cuda-report.js "$OUT"
status=$?
echo "[cuda-checks] finished in $(( $(date +%s) - started )) s, status $status; report: $OUT/cuda-report.json"
exit $status
