// Column layout of the batch API (`CompiledStageModel.evaluateBatch`): one candidate per row of
// INPUT_WIDTH numbers, OUTPUT_WIDTH numbers per result row. Kept stable for the tuner.

/** Input columns. POSITION: 0 first, 1 middle, 2 last, 3 only. SP: 0|1. Offload ratios in [0, 1]. */
export const IN = {
  LAYERS: 0,
  POSITION: 1,
  IN_FLIGHT: 2,
  PP: 3,
  MESH_NODES: 4,
  MESH_GPUS_PER_NODE: 5,
  MICRO_BATCH: 6,
  GRAD_ACCUM: 7,
  DP: 8,
  TP: 9,
  SP: 10,
  CKPT: 11,
  ZERO: 12,
  OFF_WEIGHTS: 13,
  OFF_GRADS: 14,
  OFF_OPTIM: 15,
  OFF_ACT: 16,
  /** Context-parallel degree (1: none). */
  CP: 17,
  /** Selective recompute of the attention core in the layers not fully checkpointed (0|1). */
  SELECTIVE: 18,
  /** Expert-parallel degree (mixture of experts; 1: none, and 0 reads as 1). */
  EP: 19,
  /** torchtitan's per-op selective checkpointing in the layers not fully checkpointed (0|1). */
  OP_RECOMPUTE: 20,
} as const;
export const INPUT_WIDTH = 21;

/**
 * Output columns: the contract's four first, then the breakdowns (bytes / seconds) and FITS (0|1:
 * the device peak AND the host memory fit), then the host memory columns (appended later, so the
 * earlier indices are unchanged). Time breakdown columns are raw durations before overlap:
 * forward/backward/recompute/tpComm/ppComm per micro-batch; dpComm, offload and optimizer per
 * iteration (see stage-model.ts). Host columns are bytes per GPU: HOST_MEMORY the offloaded states
 * and activations, HOST_CAPACITY the GPU's usable share of its node's host memory,
 * HOST_ACTIVATIONS the offloaded activations of all in-flight micro-batches (part of HOST_MEMORY);
 * FITS_DEVICE / FITS_HOST (0|1) the two halves of FITS. MEM_PEAK_LIVE (appended last) is the peak of
 * the tensors live at one time (torch.cuda.max_memory_allocated): PEAK_MEMORY, which the fit test
 * reads, adds the head's backward transient to a layer's, as the caching allocator's reserved bytes do.
 */
export const OUT = {
  STEADY: 0,
  FIRST: 1,
  LAST: 2,
  PEAK_MEMORY: 3,
  MEM_WEIGHTS: 4,
  MEM_GRADS: 5,
  MEM_OPTIM: 6,
  MEM_ACTIVATIONS: 7,
  MEM_TRANSIENT: 8,
  MEM_PEAK_FORWARD: 9,
  MEM_PEAK_BACKWARD: 10,
  T_FORWARD: 11,
  T_BACKWARD: 12,
  T_RECOMPUTE: 13,
  T_TP_COMM: 14,
  T_DP_COMM: 15,
  T_PP_COMM: 16,
  T_OFFLOAD: 17,
  T_OPTIMIZER: 18,
  FITS: 19,
  HOST_MEMORY: 20,
  HOST_CAPACITY: 21,
  HOST_ACTIVATIONS: 22,
  FITS_DEVICE: 23,
  FITS_HOST: 24,
  MEM_PEAK_LIVE: 25,
} as const;
export const OUTPUT_WIDTH = 26;

export type StagePosition = 'first' | 'middle' | 'last' | 'only';
export const POSITION_CODE: Readonly<Record<StagePosition, number>> = { first: 0, middle: 1, last: 2, only: 3 };

/** Position of stage `index` in a pipeline of `pp` stages. */
export function stagePosition(index: number, pp: number): StagePosition {
  if (pp === 1) return 'only';
  if (index === 0) return 'first';
  return index === pp - 1 ? 'last' : 'middle';
}
