# Written by `mist export --to nemo` for NeMo 2.5 (nemo.collections.llm, Megatron-Core core_v0.14.0).
# Mist plan for llama3-8b on 2 x 8 GPUs. Run: python nemo_pretrain.py (uses nemo_run's local executor;
# EDIT_ME: swap in run.SlurmExecutor for a cluster, and MockDataModule for your data module).
import nemo_run as run
from nemo.collections import llm
from nemo.collections.llm.gpt.data.mock import MockDataModule
from nemo.collections.llm.recipes.precision.mixed_precision import bf16_mixed


def mist_recipe():
    recipe = llm.llama3_8b.pretrain_recipe(name="mist", num_nodes=2, num_gpus_per_node=8)
    # The model (llama3-8b).
    recipe.model = run.Config(llm.LlamaModel, config=run.Config(
        llm.Llama3Config,
        num_layers=32, hidden_size=4096, ffn_hidden_size=14336,
        num_attention_heads=32, num_query_groups=8, seq_length=4096,
        normalization="RMSNorm", gated_linear_unit=True,
        position_embedding_type="rope",
        share_embeddings_and_output_weights=False, add_bias_linear=False,
        vocab_size=128256, make_vocab_size_divisible_by=1,
    ))
    # Parallelism (MegatronStrategy).
    strategy = recipe.trainer.strategy
    strategy.tensor_model_parallel_size = 8
    strategy.pipeline_model_parallel_size = 2
    strategy.virtual_pipeline_model_parallel_size = None
    strategy.context_parallel_size = 1
    strategy.sequence_parallel = True
    strategy.num_layers_in_first_pipeline_stage = 15
    # Batch.
    recipe.data = run.Config(MockDataModule, seq_length=4096, micro_batch_size=4, global_batch_size=16)
    # Recompute (Megatron-Core TransformerConfig).
    recipe.model.config.recompute_granularity = "full"
    recipe.model.config.recompute_method = "block"
    recipe.model.config.recompute_num_layers = 17
    # ZeRO-1 = the distributed optimizer.
    recipe.optim.config.use_distributed_optimizer = False
    recipe.trainer.plugins = bf16_mixed()
    recipe.trainer.max_steps = 100  # EDIT_ME: run length is not part of the plan
    return recipe


if __name__ == "__main__":
    run.run(mist_recipe(), executor=run.LocalExecutor(ntasks_per_node=8, launcher="torchrun"))
