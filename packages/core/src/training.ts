// TrainingSpec: what is trained, independent of how it is parallelised.
import { z } from 'zod';
import { parseSpec } from './validation';

export const DTYPES = ['fp32', 'fp16', 'bf16'] as const;
export type Dtype = (typeof DTYPES)[number];

/**
 * fp8 linear layers as NVIDIA Transformer Engine runs them inside `fp8_autocast` (every linear layer
 * of the transformer layers; attention, embedding and LM head stay in the compute dtype):
 * 'delayed' scales each tensor by the amax history of earlier steps (TE's DelayedScaling recipe,
 * amax_history_len 1024 by default), 'current' by the tensor's own amax computed just before the
 * cast (TE's Float8CurrentScaling, Megatron-LM's `--fp8-recipe tensorwise`); 'none' keeps them in
 * the compute dtype. Source: transformer_engine/common/recipe/__init__.py (TE 2.x).
 */
export const FP8_RECIPES = ['none', 'delayed', 'current'] as const;
export type Fp8Recipe = (typeof FP8_RECIPES)[number];
/** The amax history length of delayed scaling: TE DelayedScaling's default amax_history_len. */
export const FP8_AMAX_HISTORY_LEN = 1024;

/** How the loss may read the logits (TrainingSpec.crossEntropy, described there). */
export const CROSS_ENTROPY_MODES = ['fused', 'fp32-logits', 'compute-dtype', 'compiled'] as const;
/** The dtype of the gradient buffer backward accumulates into (TrainingSpec.gradAccumDtype). */
export const GRAD_ACCUM_DTYPES = ['param', 'fp32'] as const;
/** The feature a runner that cannot accumulate gradients in fp32 names when it refuses gradAccumDtype 'fp32'. */
export const FP32_GRAD_ACCUM_FEATURE = 'gradients accumulated in fp32 beside lower-precision weights';
/** What a sequence-parallel column-parallel linear keeps of its all-gathered input (TrainingSpec.sequenceParallelInput). */
export const SEQUENCE_PARALLEL_INPUTS = ['sharded', 'gathered'] as const;
/** The flash-attention kernel a stack runs (TrainingSpec.flashAttentionKernel; core's FLASH_KERNEL_SHARE). */
export const FLASH_ATTENTION_KERNELS = ['flash2', 'flash1', 'triton', 'cudnn'] as const;
export type FlashAttentionKernel = (typeof FLASH_ATTENTION_KERNELS)[number];

export const TrainingSpecSchema = z.strictObject({
  globalBatch: z.number().int().positive(),
  seqLen: z.number().int().positive(),
  /** Dtype of the weights and gradients used in compute (master weights stay fp32 for Adam). */
  paramDtype: z.enum(DTYPES).default('fp16'),
  computeDtype: z.enum(DTYPES).default('fp16'),
  optimizer: z.enum(['adamw']).default('adamw'),
  flashAttention: z.boolean().default(true),
  /**
   * Which flash-attention kernel runs it (with flashAttention): 'flash2' (default: FlashAttention-2,
   * the built-in profiles' attention rate; PyTorch SDPA's flash backend), 'flash1' (FlashAttention v1,
   * CUDA), 'triton' (the Triton FlashAttention of Dao-AILab's flash_attn_triton.py, which llm-foundry's
   * attn_impl 'triton' copies) or 'cudnn' (cuDNN's fused attention, which Transformer Engine selects on
   * Hopper: Megatron-LM and NeMo there, core engineFlashAttentionKernel; its share measured on H100):
   * each at its measured share of FlashAttention-2's rate (hardware-profile.ts FLASH_KERNEL_SHARE).
   */
  flashAttentionKernel: z.enum(FLASH_ATTENTION_KERNELS).default('flash2'),
  /** fp8 linear layers (FP8_RECIPES); specs and plans without it train without fp8. */
  fp8: z.enum(FP8_RECIPES).default('none'),
  /**
   * With fp8 linear layers: their weights' compute copies are kept and all-gathered as fp8, 1 byte an
   * element: Megatron-LM's `--fp8-param-gather` ("Keep the compute param in fp8 ... and perform the
   * param all-gather in fp8"; arguments.py asserts the distributed optimizer or FSDP with it), torchao's
   * enable_fsdp_float8_all_gather under FSDP2 (torchtitan's float8 option of that name). The ZeRO-3
   * weight gathers and the ZeRO-1/2 parameter gather after the step move fp8, the gathered or resident
   * copy is the row-wise fp8 weight (the fp8 workspace keeps only its transpose) and the weights are
   * cast on their shards. The experts of a mixture of experts are not counted. Default false.
   */
  fp8ParamGather: z.boolean().default(false),
  /**
   * The TP collectives of sequence parallelism (the all-gather before the column-parallel QKV / FC1
   * GEMMs and the reduce-scatter after the row-parallel projection / FC2 GEMMs, forward and backward)
   * pipelined with those GEMMs: Megatron-Core's `--tp-comm-overlap` (ModelParallelConfig
   * tp_comm_overlap, Transformer Engine userbuffers; megatron/training/arguments.py asserts sequence
   * parallelism with it). The cost model overlaps them only in stages with sequenceParallel and tp > 1;
   * elsewhere, and for the experts' GEMMs of a mixture of experts (TE's userbuffers are off for expert
   * layers: megatron/core/extensions/transformer_engine.py), it has no effect. Default false: exposed.
   */
  tpCommOverlap: z.boolean().default(false),
  /**
   * The backward collectives of a TP region's entry run asynchronously beside the backward GEMMs of
   * the column-parallel linears it feeds (QKV, FC1): with sequence parallelism the all-gather of the
   * saved sequence shard beside the input-gradient GEMM and the reduce-scatter of the input gradient
   * beside the weight-gradient GEMM; without, the input gradient's all-reduce beside the
   * weight-gradient GEMM. Megatron-LM's LinearWithGradAccumulationAndAsyncCommunication (the
   * all-reduce since 2021-08, cf7efd4, --no-async-tensor-model-parallel-allreduce to turn it off;
   * sequence parallelism since 2022-03, 02bb1f5; megatron/core/tensor_parallel/layers.py, always on
   * today) and NeMo through it. Default false: exposed, as PyTorch's DTensor tensor parallelism
   * (torchtitan) and this executor run them. --tp-comm-overlap's pipelining includes this.
   */
  tpBackwardOverlap: z.boolean().default(false),
  /**
   * The distributed optimizer's (ZeRO-1/2) all-gather of the updated parameters after the optimizer
   * step overlapped with the next step's first forward: Megatron-Core's `--overlap-param-gather`
   * (DistributedDataParallelConfig overlap_param_gather). Default false: the gather ends the step,
   * exposed. (It needs gradReduceOverlap, as Megatron-LM asserts --overlap-grad-reduce with it.)
   */
  paramGatherOverlap: z.boolean().default(false),
  /**
   * The data-parallel gradient reduction at the end of a step (the all-reduce of ZeRO-0, the
   * reduce-scatter of ZeRO-1) started bucket by bucket during the last micro-batch's backward, as its
   * gradients become ready: PyTorch DDP's buckets, Megatron-Core's `--overlap-grad-reduce`
   * (DistributedDataParallelConfig overlap_grad_reduce; NeMo's recipes set it), Megatron-LM's legacy
   * `--DDP-impl torch`, this executor's overlapped reduction. Default true. false: the reduction
   * starts after the backward and is exposed whole: Megatron-Core without `--overlap-grad-reduce` (its
   * default: megatron/training/arguments.py), Megatron-LM's legacy `--DDP-impl local` (its default
   * before Megatron-Core; the SC'21 scripts ran their 18B and larger models with it), DeepSpeed's
   * ZeRO-0 (engine.py allreduce_gradients after backward) and ZeRO-1 without overlap_comm.
   * ZeRO-2/3 reduce every micro-batch's gradients inside its backward phase either way.
   */
  gradReduceOverlap: z.boolean().default(true),
  /**
   * How the loss reads the logits. 'fused' (default): one kernel over the compute-dtype logits that
   * keeps an fp32 buffer of their size (Megatron-LM's fused vocab-parallel cross entropy, this
   * executor's cross-entropy kernel). 'fp32-logits': the logits are copied to fp32 and the loss runs
   * in autograd on the copy, `F.cross_entropy(logits.float(), labels)` (torchtitan's
   * torchtitan/components/loss.py, Hugging Face models): forward holds the compute-dtype logits, the
   * fp32 copy and the fp32 log-softmax it keeps; backward the kept log-softmax, its gradient and the
   * input gradient in fp32 — 12 bytes per logit against 6 with bf16; with TP, over vocabulary-sharded
   * logits under DTensor's loss_parallel (as torchtitan runs it), whose decomposed log-softmax and
   * nll-loss backward hold one more fp32 tensor each way — 16 bytes per logit. 'compute-dtype': the loss runs on
   * the compute-dtype logits themselves, its softmax written in that dtype and turned into the
   * gradient in place (Megatron-LM's --fp16-lm-cross-entropy: vocab_parallel_cross_entropy on the fp16
   * output instead of output.float(); Mist's fp16_lm_cross_entropy): the logits and their softmax in
   * forward, the softmax become the gradient in backward — 2 bytes per logit each way with fp16.
   * 'compiled': the fp32-logits loss under torch.compile (torchtitan compiles it with the model since
   * 2025: components/loss.py build_cross_entropy_loss, at e7c0cae): Inductor fuses the copy, the
   * log-softmax and the loss into its kernels, AOTAutograd's partitioner keeps the compute-dtype logits
   * (and a per-token statistic) instead of an fp32 log-softmax, and one fused backward kernel writes the
   * compute-dtype gradient: the logits in forward, the logits and their gradient in backward — 2 and 4
   * bytes per logit with bf16.
   */
  crossEntropy: z.enum(CROSS_ENTROPY_MODES).default('fused'),
  /**
   * How the layer's element-wise ops run. 'fused' (default): one kernel each, the biases, masks and
   * dropouts inside their neighbours' kernels (Apex / Transformer Engine / Megatron-LM's bias-GeLU,
   * bias-dropout-add and scale-mask-softmax / this executor's kernels). 'eager': as separate PyTorch
   * ops of the model code, without torch.compile (torchtitan's llama3 model: RMSNorm as x.float(), pow,
   * mean, rsqrt, product, type_as and the weight's product; RoPE through fp32 complex numbers; SwiGLU
   * as silu then a product; Megatron-LM of 2020: the causal mask as its own pass before the softmax,
   * dropout then the residual add, a linear's bias added by its own kernel), each kernel reading and
   * writing its tensors (analyzer op-graph.ts EAGER).
   */
  elementwise: z.enum(['fused', 'eager']).default('fused'),
  /**
   * What a column-parallel linear keeps for backward of the input that sequence parallelism all-gathers
   * (the norms' outputs before QKV and FC1, the final norm's before the LM head). 'sharded' (default):
   * this rank's sequence shard, all-gathered again in backward (Megatron-LM's
   * LinearWithGradAccumulationAndAsyncCommunication saves the shard; Korthikanti et al. 2022, Sec. 4.2.2;
   * this executor's block runner). 'gathered': the all-gathered tensor itself, t times larger (PyTorch's
   * tensor parallelism, torchtitan: PrepareModuleInput redistributes Shard(1) to Replicate() and the
   * ColwiseParallel linear's matmul saves that replicated input in autograd). No effect without SP.
   */
  sequenceParallelInput: z.enum(SEQUENCE_PARALLEL_INPUTS).default('sharded'),
  /**
   * The dtype of the gradient buffer backward accumulates into and data parallelism reduces: 'param'
   * (default: paramDtype, the ZeRO paper's 2 + 2 + 12 bytes per parameter; this executor, DeepSpeed,
   * FSDP's sharded totals) or 'fp32': Megatron-LM's and NeMo's main gradients with bf16
   * (megatron/training/arguments.py turns --accumulate-allreduce-grads-in-fp32 on with --bf16 unless
   * --grad-reduce-in-bf16; NeMo's bf16_mixed sets grad_reduce_in_fp32), 2 + 4 + 12 bytes, the
   * gradients not sharded by the distributed optimizer (Megatron-LM core_v0.14.0
   * docs/source/api-guide/dist_optimizer.md: 18 bytes, 6 + 12/d distributed) and reduced in fp32.
   * (With fp16 Megatron-LM's table adds an fp32 gradient copy per optimizer shard, 20 / 4 + 16/d:
   * made at the optimizer step, after backward's peak, so not counted.) No effect in fp32.
   */
  gradAccumDtype: z.enum(GRAD_ACCUM_DTYPES).default('param'),
});
export type TrainingSpec = z.output<typeof TrainingSpecSchema>;
export type TrainingSpecInput = z.input<typeof TrainingSpecSchema>;

export function parseTrainingSpec(data: unknown): TrainingSpec {
  return parseSpec(TrainingSpecSchema, data, 'training spec');
}

export function dtypeBytes(d: Dtype): number {
  return d === 'fp32' ? 4 : 2;
}

/**
 * Bytes of model state per parameter: weights + gradients in paramDtype, and AdamW's fp32 master
 * weights, momentum and variance (12 bytes) in mixed precision — 2+2+12 = 16 (Rajbhandari et al. 2020).
 * In pure fp32 the weights are the master copy: 4 + 4 + 8 = 16 as well. Gradients accumulated in fp32
 * (TrainingSpec.gradAccumDtype, Megatron-LM's bf16 main gradients): 2 + 4 + 12. `grads` is what
 * ZeRO-2/3 shard and data parallelism reduces; `optim` what ZeRO-1 shards.
 */
export function modelStateBytesPerParam(t: TrainingSpec): { weights: number; grads: number; optim: number } {
  const w = dtypeBytes(t.paramDtype);
  if (t.paramDtype === 'fp32') return { weights: w, grads: w, optim: 8 };
  return { weights: w, grads: (t.gradAccumDtype ?? 'param') === 'fp32' ? 4 : w, optim: 12 };
}
