// How the CLI's stage tables write a stage's recomputation: the fully checkpointed layers, and
// `+sel` when the other layers recompute their attention core (selective recomputation), `+op` when
// they run torchtitan's per-op selective checkpointing; and the loss mode of a summary line.
import type { StageStrategy, TrainingSpec } from '@mist/core';

export function recomputeText(s: Pick<StageStrategy, 'ckptLayers' | 'selectiveRecompute' | 'opRecompute'>): string {
  return s.selectiveRecompute ? `${s.ckptLayers} +sel` : s.opRecompute ? `${s.ckptLayers} +op` : String(s.ckptLayers);
}

/** The training spec's loss mode for a summary line (', loss over fp32 logits'), '' for the fused default. */
export function lossText(t: Pick<TrainingSpec, 'crossEntropy'>): string {
  const text: Record<TrainingSpec['crossEntropy'], string> = {
    fused: '', 'fp32-logits': ', loss over fp32 logits', 'compute-dtype': ', loss on the compute-dtype logits', compiled: ', loss compiled (torch.compile)',
  };
  return text[t.crossEntropy];
}

/** The gradient accumulation dtype for a summary line when it is not the weights' (', gradients accumulated and reduced in fp32'). */
export function gradText(t: Pick<TrainingSpec, 'gradAccumDtype' | 'paramDtype'>): string {
  return t.gradAccumDtype === 'fp32' && t.paramDtype !== 'fp32' ? ', gradients accumulated and reduced in fp32' : '';
}

/** How a summary line names a non-default flash-attention kernel. */
const KERNEL_TEXT: Record<TrainingSpec['flashAttentionKernel'], string> = { flash2: 'FlashAttention-2', flash1: 'v1', triton: 'Triton', cudnn: 'cuDNN' };

/** The training spec's engine facts for a summary line: the loss, eager elementwise ops, fp8 weight gathers, SP inputs kept gathered, fp32 gradients. */
export function trainingFactsText(
  t: Pick<TrainingSpec, 'crossEntropy' | 'elementwise' | 'sequenceParallelInput' | 'gradAccumDtype' | 'paramDtype' | 'gradReduceOverlap'> &
    Partial<Pick<TrainingSpec, 'tpBackwardOverlap' | 'flashAttention' | 'flashAttentionKernel' | 'fp8ParamGather'>>,
): string {
  return `${lossText(t)}${t.elementwise === 'eager' ? ', element-wise ops as separate eager PyTorch kernels' : ''}` +
    `${t.fp8ParamGather === true ? ', fp8 weights kept and gathered as fp8' : ''}` +
    `${t.tpBackwardOverlap === true ? ', TP backward collectives beside the backward GEMMs' : ''}` +
    `${t.flashAttention !== false && (t.flashAttentionKernel ?? 'flash2') !== 'flash2' ? `, ${KERNEL_TEXT[t.flashAttentionKernel ?? 'flash2']} flash-attention kernel` : ''}` +
    `${t.sequenceParallelInput === 'gathered' ? ', sequence-parallel linears keep their gathered input' : ''}${gradText(t)}` +
    `${t.gradReduceOverlap === false ? ', gradient reduction after the backward (not overlapped)' : ''}`;
}
