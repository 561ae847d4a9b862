// One transformer layer of a gpt, llama or falcon model, sharded Megatron-style over `tp` ranks.
// What it computes is core's block description (layerBlock: the sequential pre-norm block of gpt
// and llama, falcon's parallel block; see packages/core/src/block/layer-block.ts), the same one the
// analyzer costs: its weights are the layer's parameters, and BlockRunner runs its ops on the native
// kernels. Weights are stored [in, out] so that a projection is y = x W. Activations are
// [tokens, width], tokens = batch * seq, in the order the batch holds them.
import { layerBlock, type ModelSpec } from '@mist/core';
import type { TensorLike } from '@mist/native';
import { cpuDevice } from '../device/cpu-device';
import type { Device } from '../device/device';
import { blockParamDecls } from './block-params';
import type { CpRing } from './context-parallel';
import { type BlockActivations, BlockRunner } from './block-runner';
import { layerDims } from './dims';
import { expandExpertDecls, type ExpertGroup } from './moe';
import type { DropoutDraw } from './dropout';
import type { ParamDecl, ParamStore } from './params';
import { arraysOf, Scratch } from './scratch';
import type { TpHooks } from './tp-hooks';

/**
 * Parameters of layer `index` (full shapes; the store slices them per rank). A mixture of experts'
 * stacked weights are one declaration per expert this rank holds (its expert-parallel group's
 * share, moe.ts), so the parameter count is the rank's, not the model's.
 */
export function layerParamDecls(model: ModelSpec, index: number, experts?: Pick<ExpertGroup, 'ep' | 'rank'>): ParamDecl[] {
  const block = layerBlock(model), prefix = `layers.${index}`;
  const decls = blockParamDecls(model, block, prefix);
  return model.moe ? expandExpertDecls(decls, block, prefix, experts?.ep ?? 1, experts?.rank ?? 0) : decls;
}

/** What a layer keeps between its forward and backward passes. */
export interface LayerSaved<F = Float32Array> {
  batch: number;
  seq: number;
  x: F;
  /** Where the forward's dropout draws came from (the backward and a recompute draw them again); null without dropout. */
  dropout: DropoutDraw | null;
  /** Absent when the layer is checkpointed: the backward recomputes them from x. */
  acts?: BlockActivations<F>;
}

/** F, I: the device's float and int32 tensor types (Float32Array, Int32Array on the CPU). */
export interface LayerOptions<F extends TensorLike = Float32Array, I = Int32Array> {
  model: ModelSpec;
  /** Global layer index. */
  index: number;
  tp: number;
  tpRank: number;
  /** Keep only the input in forward and recompute the rest in backward. */
  checkpoint: boolean;
  /**
   * Selective recompute of the attention core when not checkpointed (BlockRunnerOptions): with the
   * unfused attention it drops the s x s probabilities and recomputes them in backward; a no-op with
   * the fused attention, which keeps no s x s tensor (default false).
   */
  selectiveRecompute?: boolean;
  /** The fused attention kernel (default true) or the unfused core (BlockRunnerOptions.flashAttention). */
  flashAttention?: boolean;
  /** Sequence parallelism: x and y hold this rank's b*s/tp tokens (default false). */
  sequenceParallel?: boolean;
  /** Seed of the dropout streams (default 0). */
  seed?: number;
  hooks?: TpHooks<F>;
  /** Context parallelism: the K/V ring of the stage's CP group (BlockRunnerOptions.ring). */
  ring?: CpRing<F>;
  /** Mixture of experts: the expert-parallel group (BlockRunnerOptions.experts). */
  experts?: ExpertGroup;
  /** Where the layer takes its temporary buffers (shared by a stage's layers); default its own. */
  scratch?: Scratch<F>;
  /** Where the tensors live and the kernels run (default the CPU). */
  device?: Device<F, I>;
}

export class TransformerLayer<F extends TensorLike = Float32Array, I = Int32Array> {
  readonly index: number;
  readonly checkpoint: boolean;
  /** The saved tensors selective recompute drops in this layer (none with the fused attention or when checkpointed). */
  get selectiveDropped(): readonly string[] {
    return this.runner.selective.dropped;
  }
  private readonly scratch: Scratch<F>;
  private readonly runner: BlockRunner<F, I>;
  private readonly device: Device<F, I>;

  constructor(opts: LayerOptions<F, I>, store: ParamStore<F>) {
    const m = opts.model;
    if (m.positional === 'alibi') throw new Error(`not implemented: ALiBi positions (${m.name})`);
    if (opts.tp > 1 && !opts.hooks) throw new Error(`layer ${opts.index}: tp=${opts.tp} needs TP hooks for the all-reduces`);
    layerDims(m, opts.tp); // checks tp against the heads, key/value heads and MLP width
    this.index = opts.index;
    this.checkpoint = opts.checkpoint;
    this.device = opts.device ?? (cpuDevice as unknown as Device<F, I>);
    this.scratch = opts.scratch ?? new Scratch<F>(this.device);
    this.runner = new BlockRunner<F, I>({
      model: m, block: layerBlock(m), index: opts.index, prefix: `layers.${opts.index}`, tp: opts.tp, tpRank: opts.tpRank,
      sequenceParallel: opts.sequenceParallel ?? false, seed: opts.seed ?? 0, hooks: opts.hooks, ring: opts.ring, experts: opts.experts, flashAttention: opts.flashAttention,
      selectiveRecompute: (opts.selectiveRecompute ?? false) && !opts.checkpoint, store, scratch: this.scratch, device: this.device,
    });
  }

  /**
   * y = layer(x) for x [batch * seq, hidden] (with SP this rank's token rows); `save` keeps what
   * backward needs; `dropout` places the micro-batch's draws (null: no dropout, as in evaluation).
   */
  async forward(x: F, batch: number, seq: number, save: boolean, dropout: DropoutDraw | null = null): Promise<{ y: F; saved: LayerSaved<F> | null }> {
    const { y, acts } = await this.runner.forward(x, batch, seq, false, dropout);
    if (!save || this.checkpoint) this.scratch.give(arraysOf(Object.values(acts), this.device).filter((a) => a !== x));
    if (!save) return { y, saved: null };
    return { y, saved: this.checkpoint ? { batch, seq, x, dropout } : { batch, seq, x, dropout, acts } };
  }

  /** dx from dy [batch * seq, hidden]; parameter gradients accumulate into the store. */
  async backward(saved: LayerSaved<F>, dy: F): Promise<F> {
    const { batch, seq, x, dropout } = saved;
    const acts = saved.acts ?? (await this.runner.forward(x, batch, seq, true, dropout)).acts;
    return this.runner.backward(x, acts, dy, batch, seq, dropout);
  }
}
