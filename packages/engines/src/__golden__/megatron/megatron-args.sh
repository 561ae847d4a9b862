# pretrain_gpt.py arguments of the Mist plan for gpt3-1.3b (2 x 8 GPUs).
# Written by `mist export --to megatron` for Megatron-LM core_v0.14.0 (megatron/training/arguments.py).
# Sourced by launch-node<N>.sh and slurm.sbatch.

MODEL_ARGS=(
  --num-layers 24
  --hidden-size 2048
  --num-attention-heads 16
  --ffn-hidden-size 8192
  --seq-length 2048
  --max-position-embeddings 2048
  --position-embedding-type learned_absolute
  --normalization LayerNorm
  --attention-dropout 0.1
  --hidden-dropout 0.1
  --vocab-size 50304
  --make-vocab-size-divisible-by 1
)

PARALLEL_ARGS=(
  --tensor-model-parallel-size 2
  --pipeline-model-parallel-size 4
  --decoder-first-pipeline-num-layers 5
  --decoder-last-pipeline-num-layers 5
  --sequence-parallel
  --micro-batch-size 2
  --global-batch-size 16
  --recompute-granularity full
  --recompute-method block
  --recompute-num-layers 3
  --use-distributed-optimizer
  --overlap-grad-reduce
)

PRECISION_ARGS=(
  --bf16
)

# EDIT_ME: data and tokenizer. As written, pretrain_gpt.py trains on synthetic data (--mock-data) with
# NullTokenizer; replace with e.g. --data-path /path/to/corpus_text_document --tokenizer-type
# HuggingFaceTokenizer --tokenizer-model /path/to/tokenizer (the vocabulary then comes from the tokenizer).
DATA_ARGS=(
  --mock-data
  --tokenizer-type NullTokenizer
)

# EDIT_ME: optimizer schedule and run length (not part of the plan).
TRAINING_ARGS=(
  --train-iters 100
  --lr 1.0e-4
  --log-interval 1
)
