// Runs a block description (core's layerBlock) on the native kernels: the forward walks its ops in
// order, the backward walks them in reverse, each op kind mapped to its kernel calls. Tensors live
// in a map by name; input gradients follow core's rule (inputGradModes): a fresh buffer ('write',
// summed with an earlier gradient of the same tensor by one accumulate kernel), added into the
// residual stream's gradient ('accumulate'), transformed in place ('inplace'), a copy ('copy') or
// the output gradient itself ('alias'). The TP ops call the layer's hooks. By default the attention
// is the fused kernel (flash-style: it keeps the log-sum-exp, never the s x s scores, and draws its
// dropout mask again in backward) and the description is evaluated with fa = 1; with
// flashAttention false it runs the unfused core (scores, softmax, dropout of the probabilities,
// values; native unfused_attention.cc) with fa = 0, keeping the s x s probabilities (and the
// dropout's 1-byte mask), and selective recompute drops them and runs the core again at the start
// of the backward (Korthikanti et al. 2022, Sec. 5; core's selectiveSet says what). Residual
// dropout keeps its 1-byte mask (dropout.ts says where the draws come from). With sequence
// parallelism (sp = 1) the norms and residuals hold this rank's b*s/t tokens: a region's entry
// all-gathers them (again in backward for the GEMM that saved its shard), its exit reduce-scatters,
// and the replicated weights' gradients, taken over the rank's tokens, are summed at the end.
import {
  type BlockDescription, type BlockOp, type Dim, type DimEnv, evalDim, headDim, inputGradModes, type ModelSpec, opRuns, selectiveSet, type SelectiveSet,
} from '@mist/core';
import { type AttentionShape, type DropoutStream, type KernelOps, maskFloats, type TensorLike } from '@mist/native';
import { cpuDevice } from '../device/cpu-device';
import type { Device } from '../device/device';
import { contextParallelLayout, type CpRing, globalRuns, type SeqLayout } from './context-parallel';
import { NORM_EPS, ROPE_THETA } from './dims';
import { type DropoutDraw, dropoutStream, sequenceShard } from './dropout';
import { Flow } from './flow';
import { type ExpertGroup, MoeMlp } from './moe';
import type { NormSaved } from './norm';
import { type RingBuffers, ringAttentionBackward, ringAttentionForward } from './ring-attention';
import type { ParamStore } from './params';
import type { Scratch } from './scratch';
import type { TpHooks, TpPoint } from './tp-hooks';

/** What a block keeps for its backward: saved tensors by name and the norms' statistics by op name, in forward order. */
export type BlockActivations<F = Float32Array> = Record<string, F | NormSaved<F>>;

/** F, I: the device's float and int32 tensor types (Float32Array, Int32Array on the CPU). */
export interface BlockRunnerOptions<F extends TensorLike = Float32Array, I = Int32Array> {
  model: ModelSpec;
  block: BlockDescription;
  /** Global index of the layer (for the TP hooks' sites). */
  index: number;
  /** Prefix of the block's weight names in the store (`layers.3`). */
  prefix: string;
  tp: number;
  /** This rank's index in its TP group (its heads and, with SP, its token shard). */
  tpRank: number;
  /** Shard the norm/dropout/residual regions along the tokens (Korthikanti et al. 2022). */
  sequenceParallel: boolean;
  /** Seed of the dropout streams. */
  seed: number;
  /**
   * Selective recompute (core's selectiveSet of the ops this runner runs): drop the attention core's
   * saved tensors and run the core again in backward. With the fused attention the set is empty (the
   * kernel keeps no s x s tensor and recomputes the scores in its backward), so it changes nothing.
   */
  selectiveRecompute?: boolean;
  /** The fused attention kernel (default true), or the unfused core that keeps the s x s probabilities. */
  flashAttention?: boolean;
  hooks?: TpHooks<F>;
  /**
   * Context parallelism (cp > 1): the layer's rows are this rank's two chunks of every sequence
   * (context-parallel.ts), positions are global, and the attention is a K/V ring over the group.
   */
  ring?: CpRing<F>;
  /** Mixture of experts: the stage's expert-parallel group (absent: every expert on this rank). */
  experts?: ExpertGroup;
  store: ParamStore<F>;
  scratch: Scratch<F>;
  /** Where the tensors live and the kernels run (default the CPU). */
  device?: Device<F, I>;
}


/** The description's sizes evaluated for one micro-batch shape (cached: a layer sees few shapes). */
interface Shapes {
  /** Any size of the description, evaluated (memoised per Dim object). */
  dim(d: Dim): number;
  rows(tensor: string): number;
  width(tensor: string): number;
  size(tensor: string): number;
}

/** A CPU-device tensor as moe.ts takes it (MoE layers run on the CPU device only). */
function cpuTensor(t: unknown): Float32Array {
  if (!(t instanceof Float32Array)) throw new Error('not implemented: a mixture-of-experts layer outside the CPU device');
  return t;
}

/** Ops a layer never holds here: the embedding's and the head's own ops. */
function unsupported(op: BlockOp): Error {
  return new Error(`not implemented: block op ${op.name} (${op.kind}${op.kind === 'linear' ? ', weights stored [out, in]' : ''}) in the layer runner; `
    + 'it runs norm, linear, rope, attention (fused, with its dropout), scores, softmax, dropout and values (unfused), activation, '
    + 'residual (with its dropout), branchSum, tpEntry and tpExit, and a mixture of experts\' router, allToAll and expertSum (moe.ts)');
}

/** The ops of the unfused attention core. */
type CoreOp = Extract<BlockOp, { kind: 'scores' | 'softmax' | 'dropout' | 'values' }>;

export class BlockRunner<F extends TensorLike = Float32Array, I = Int32Array> {
  /** The ops this runner runs (the flash or the unfused variant of the attention), in forward order. */
  readonly ops: readonly BlockOp[];
  /** Runs the fused attention kernel (else the unfused core). */
  readonly flash: boolean;
  private readonly reversed: readonly BlockOp[];
  /** Tensors kept for backward (besides the block's input). */
  private readonly kept: ReadonlySet<string>;
  private readonly shapeCache = new Map<string, Shapes>();
  /** Sequence parallelism in effect (tp > 1). */
  private readonly sp: boolean;
  /** Tensors a region's entry gathers (with SP their saved copy is this rank's shard). */
  private readonly entered: ReadonlySet<string>;
  /** Replicated weights whose gradients SP sums over the ranks. */
  private readonly replicated: readonly string[];
  /** What selective recompute drops and reruns here (empty when off, and for the fused attention). */
  readonly selective: SelectiveSet;

  private readonly dev: Device<F, I>;

  constructor(private readonly o: BlockRunnerOptions<F, I>) {
    this.dev = o.device ?? (cpuDevice as unknown as Device<F, I>);
    if (o.model.moe && this.dev.kind !== 'cpu') {
      throw new Error(`not implemented: mixture-of-experts layers on the ${this.dev.kind} device (moe.ts runs on the CPU device only)`);
    }
    this.flash = o.flashAttention ?? true;
    this.ops = o.block.ops.filter((op) => opRuns(op, this.flash));
    this.reversed = [...this.ops].reverse();
    this.selective = o.selectiveRecompute ? selectiveSet(o.block, this.flash) : { ops: [], dropped: [] };
    const dropped = new Set(this.selective.dropped);
    this.kept = new Set(this.ops.flatMap((op) => op.saves).filter((t) => t !== o.block.input && !dropped.has(t)));
    if (!this.flash && o.ring && o.ring.cp > 1) {
      throw new Error(`not implemented: unfused attention (flashAttention false) with context parallelism (cp=${o.ring.cp}) in layer ${o.index}; `
        + 'the ring runs the fused block kernel only');
    }
    this.sp = o.sequenceParallel && o.tp > 1;
    this.entered = new Set(this.sp ? this.ops.flatMap((op) => (op.kind === 'tpEntry' ? [op.inputs[0]] : [])) : []);
    this.moe = o.model.moe
      // The CPU device's tensors are Float32Array (checked above), which is what moe.ts takes.
      ? new MoeMlp({
        model: o.model, block: o.block, index: o.index, prefix: o.prefix, tp: o.tp, sequenceParallel: o.sequenceParallel,
        store: o.store as unknown as ParamStore, scratch: o.scratch as unknown as Scratch, group: o.experts,
      })
      : null;
    const moe = this.moe;
    this.replicated = this.sp
      ? o.block.weights.filter((w) => w.shard === 'none').flatMap((w) => (w.experts !== undefined && moe ? moe.localWeightNames(w.name) : [w.name]))
      : [];
  }

  /** The mixture-of-experts MLP (moe.ts runs the ops from the router's gate to the weighted sum); null for a dense model. */
  private readonly moe: MoeMlp | null;

  /**
   * A zeroed buffer for block tensor t of `elements` elements, of the class its description gives:
   * activations in the compute dtype; fp32 statistics, index tensors and dropout masks (bytes packed
   * 4 per fp32 word) in fp32.
   */
  private takeTensor(t: string, elements: number): F {
    const dtype = this.o.block.tensors[t]?.dtype ?? 'act';
    if (dtype === 'mask') return this.o.scratch.take(maskFloats(elements), 'fp32');
    return this.o.scratch.take(elements, dtype === 'act' ? 'act' : 'fp32');
  }

  private isStats(v: F | NormSaved<F>): v is NormSaved<F> {
    return !this.dev.isTensor(v);
  }

  /** Dropout draws of this micro-batch, or null (evaluation, or a model without dropout). */
  private drawing(draw: DropoutDraw | null): DropoutDraw | null {
    return draw && this.o.model.dropout > 0 ? draw : null;
  }

  /** Context parallelism in effect: the ring, else null. */
  private get ring(): CpRing<F> | null {
    return this.o.ring && this.o.ring.cp > 1 ? this.o.ring : null;
  }

  /** Where a sequence's local rows sit in the whole sequence (null without context parallelism). */
  private layout(seq: number): SeqLayout | null {
    const ring = this.ring;
    if (!ring) return null;
    let l = this.layouts.get(seq);
    if (!l) this.layouts.set(seq, (l = contextParallelLayout(seq * ring.cp, ring.cp, ring.rank)));
    return l;
  }

  private readonly layouts = new Map<number, SeqLayout>();

  /**
   * Residual dropout of this rank's rows in the norm/residual regions: out = a + dropout(b), each
   * element drawing at its row of the whole batch (in runs of rows contiguous there with context
   * parallelism).
   */
  private dropoutAdd(k: KernelOps<F, I>, out: F, mask: F, a: F, b: F, rows: number, width: number,
    draw: DropoutDraw, batch: number, seq: number, stream: DropoutStream): void {
    const first = this.sp ? sequenceShard(batch * seq, this.o.tp, this.o.tpRank).first : 0;
    const layout = this.layout(seq);
    if (!layout) {
      k.dropoutAdd(out, mask, a, b, rows, width, draw.firstSample * seq + first, stream);
      return;
    }
    for (const r of globalRuns(layout, first, rows)) {
      const e0 = (r.row - first) * width, e1 = e0 + r.count * width;
      if (e0 % 4 !== 0) throw new Error(`not implemented: residual dropout of a context-parallel run starting at element ${e0} (masks pack 4 per float; hidden must be a multiple of 4)`);
      const v = (t: F, lo: number, hi: number): F => this.dev.view(t, lo, hi);
      k.dropoutAdd(v(out, e0, e1), v(mask, e0 / 4, e0 / 4 + maskFloats(e1 - e0)), v(a, e0, e1), v(b, e0, e1), r.count, width,
        draw.firstSample * layout.globalSeq + r.globalRow, stream);
    }
  }

  /** RoPE (or its backward) of x [batch * seq, heads * D] in place, at the rows' global positions. */
  private rope(k: KernelOps<F, I>, x: F, rows: number, seq: number, heads: number, backward: boolean): void {
    const D = headDim(this.o.model), layout = this.layout(seq);
    const run = (t: F, n: number, s: number, offset: number): void => {
      if (backward) k.ropeBackward(t, t, n, s, heads, D, ROPE_THETA, offset);
      else k.rope(t, t, n, s, heads, D, ROPE_THETA, offset);
    };
    if (!layout) {
      run(x, rows, seq, 0);
      return;
    }
    const w = heads * D;
    for (let g = 0; g < rows / seq; g++) {
      for (const p of layout.pieces) {
        const r0 = g * seq + p.local;
        run(this.dev.view(x, r0 * w, (r0 + p.length) * w), p.length, p.length, p.global);
      }
    }
  }

  /** The ring's buffers come from and go back to the layer's scratch. */
  private ringBuffers(): RingBuffers<F, I> {
    return { take: (n) => this.o.scratch.take(n), give: (b) => this.o.scratch.give(b), ints: (p) => this.dev.ints(p) };
  }

  private attention(batch: number, seq: number, sh: Shapes, draw: DropoutDraw | null): AttentionShape {
    const shape: AttentionShape = this.attentionShape(batch, seq, sh);
    if (!draw) return shape;
    const m = this.o.model;
    return {
      ...shape,
      dropout: {
        ...dropoutStream(this.o.seed, m.dropout, draw, this.o.index, 'attn.flash'),
        sampleOffset: draw.firstSample, headOffset: this.o.tpRank * shape.heads, totalHeads: m.heads,
      },
    };
  }

  private shapes(batch: number, seq: number): Shapes {
    const key = `${batch}x${seq}`;
    let sh = this.shapeCache.get(key);
    if (sh) return sh;
    if (this.shapeCache.size >= 16) this.shapeCache.clear(); // a few shapes in training; bounded for evaluation at many lengths
    const m = this.o.model;
    if (this.sp) sequenceShard(batch * seq, this.o.tp, this.o.tpRank); // checks the split
    const env: DimEnv = { b: batch, s: seq, h: m.hidden, a: m.heads, k: m.kvHeads, f: m.ffnHidden, V: m.vocab, t: this.o.tp, sp: this.sp ? 1 : 0, fa: this.flash ? 1 : 0 };
    const memo = new Map<Dim, number>();
    const dim = (d: Dim): number => {
      if (typeof d === 'number') return d;
      let v = memo.get(d);
      if (v === undefined) memo.set(d, (v = evalDim(d, env)));
      return v;
    };
    const tensor = (name: string): BlockDescription['tensors'][string] => {
      const t = this.o.block.tensors[name];
      if (!t) throw new Error(`block of layer ${this.o.index}: unknown tensor ${name}`);
      return t;
    };
    sh = {
      dim,
      rows: (t) => dim(tensor(t).rows),
      width: (t) => dim(tensor(t).width),
      size: (t) => dim(tensor(t).rows) * dim(tensor(t).width),
    };
    this.shapeCache.set(key, sh);
    return sh;
  }

  private W(name: string): F {
    return this.o.store.param(`${this.o.prefix}.${name}`);
  }

  private G(name: string): F {
    return this.o.store.grad(`${this.o.prefix}.${name}`);
  }

  private site(point: TpPoint, recompute: boolean): { layer: number; point: TpPoint; recompute: boolean } {
    return { layer: this.o.index, point, recompute };
  }

  /** y = block(x); `acts` holds what backward reads (its arrays come from the scratch). */
  async forward(x: F, batch: number, seq: number, recompute: boolean, dropout: DropoutDraw | null = null): Promise<{ y: F; acts: BlockActivations<F> }> {
    const { block, model, scratch } = this.o;
    const draw = this.drawing(dropout);
    const sh = this.shapes(batch, seq);
    const { size, rows: rowsOf, width: widthOf, dim } = sh;
    if (x.length !== size(block.input)) {
      throw new Error(`layer ${this.o.index}: input holds ${x.length} floats, expected ${rowsOf(block.input)} x ${widthOf(block.input)}`);
    }
    const fl = new Flow<F, I>(this.o.hooks, this.o.tp, this.dev);
    const k = fl.k;
    const tensors = new Map<string, F>([[block.input, x]]);
    const get = (t: string): F => {
      const v = tensors.get(t);
      if (!v) throw new Error(`layer ${this.o.index}: tensor ${t} read before it is written`);
      return v;
    };
    const make = (t: string): F => {
      const v = this.takeTensor(t, size(t));
      tensors.set(t, v);
      return v;
    };
    const stats: Record<string, NormSaved<F>> = {};
    /** SP: the shard of each gathered tensor (what is saved), and buffers dead after a collective. */
    const shards = new Map<string, F>();
    const dead: F[] = [];
    const tokensSp = dim(block.sizes.tokensSp);
    let moeSaved: Record<string, F> = {};
    for (const op of this.ops) {
      if (this.moe?.names.has(op.name)) {
        if (op.kind === 'router') {
          const { dispatch, sum } = this.moe.ops;
          // moe.ts takes the CPU device's Float32Array tensors (the constructor refused any other device).
          const r = await this.moe.forward(fl as unknown as Flow, cpuTensor(get(dispatch.inputs[0])), cpuTensor(get(op.inputs[0])), rowsOf(dispatch.inputs[0]), recompute);
          tensors.set(sum.outputs[0], r.out as unknown as F);
          moeSaved = r.saved as unknown as Record<string, F>;
        }
        continue;
      }
      switch (op.kind) {
        case 'norm': {
          const [inp] = op.inputs, [out] = op.outputs;
          const rows = rowsOf(inp), h = widthOf(inp);
          const y = make(out), rstd = scratch.take(rows, 'fp32');
          if (op.norm === 'layernorm') {
            const mean = scratch.take(rows, 'fp32');
            k.layerNorm(y, mean, rstd, get(inp), this.W(op.gamma), this.W(op.beta as string), rows, h, NORM_EPS);
            stats[op.name] = { mean, rstd };
          } else {
            k.rmsNorm(y, rstd, get(inp), this.W(op.gamma), rows, h, NORM_EPS);
            stats[op.name] = { mean: null, rstd };
          }
          break;
        }
        case 'linear': {
          if (op.transposed) throw unsupported(op);
          const rows = dim(op.rows), inner = dim(op.inner);
          const outs = op.outputs.map(make);
          op.weights.forEach((w, i) => {
            const n = dim(op.cols[i]);
            k.matmul({ c: outs[i], a: get(op.inputs[0]), b: this.W(w), m: rows, n, k: inner });
            if (op.biasAt === 'gemm' && op.biases[i]) k.biasAdd(outs[i], this.W(op.biases[i]), rows, n);
          });
          break;
        }
        case 'rope':
          op.inputs.forEach((t, i) => this.rope(k, get(t), rowsOf(t), seq, dim(op.heads[i]), false));
          break;
        case 'attention': {
          const [q, kk, v] = op.inputs.map(get);
          const [out, lse] = op.outputs.map(make);
          const ring = this.ring;
          if (ring) await ringAttentionForward(fl, ring, this.ringBuffers(), out, lse, q, kk, v, this.attention(batch, seq, sh, draw), this.layout(seq) as SeqLayout);
          else k.attention(out, lse, q, kk, v, this.attention(batch, seq, sh, draw));
          break;
        }
        case 'activation': {
          const out = make(op.outputs[0]);
          if (op.fn === 'gelu') k.gelu(out, get(op.inputs[0]));
          else if (op.fn === 'squared-relu') k.squaredRelu(out, get(op.inputs[0]));
          else k.swiglu(out, get(op.inputs[0]), get(op.inputs[1]));
          break;
        }
        case 'residual': case 'branchSum': {
          const [a, b] = op.inputs.map(get);
          if (op.kind === 'residual' && op.dropout && draw) {
            const [out, mask] = op.outputs;
            this.dropoutAdd(k, make(out), make(mask), a, b, rowsOf(out), widthOf(out), draw, batch, seq,
              dropoutStream(this.o.seed, model.dropout, draw, this.o.index, op.name));
          } else {
            k.add(make(op.outputs[0]), a, b);
          }
          break;
        }
        case 'tpEntry': {
          // The identity without sequence parallelism; with it, the all-gather of the ranks' tokens.
          if (!this.sp) break;
          const t = op.inputs[0], shard = get(t), full = scratch.take(dim(op.elements));
          await fl.allGather(shard, full, this.site(op.point, recompute));
          shards.set(t, shard);
          tensors.set(t, full);
          break;
        }
        case 'tpExit': {
          const name = op.inputs[0];
          let t = get(name), rows = rowsOf(name);
          if (this.sp) {
            const shard = scratch.take(tokensSp * widthOf(name));
            await fl.reduceScatter(t, shard, this.site(op.point, recompute));
            dead.push(t);
            tensors.set(name, shard);
            t = shard;
            rows = tokensSp;
          } else {
            await fl.allReduce(t, this.site(op.point, recompute));
          }
          for (const bias of op.biases) k.biasAdd(t, this.W(bias), rows, widthOf(name));
          break;
        }
        case 'scores': case 'values': case 'softmax': case 'dropout':
          this.coreForward(k, op, get, make, tensors, batch, seq, sh, draw);
          break;
        case 'embedding': case 'crossEntropy':
        case 'router': case 'allToAll': case 'expertSum':
          throw unsupported(op);
      }
    }
    await fl.end();
    const y = get(block.output);
    // Saved tensors in forward order, each op's outputs before its statistics.
    const acts: BlockActivations<F> = {};
    for (const op of this.ops) {
      for (const t of op.outputs) if (this.kept.has(t) && !(t in acts) && tensors.has(t)) acts[t] = shards.get(t) ?? get(t);
      if (stats[op.name]) acts[op.name] = stats[op.name];
    }
    Object.assign(acts, moeSaved);
    const keep = new Set<F>([x, y, ...Object.values(acts).filter((v): v is F => !this.isStats(v))]);
    scratch.give([...tensors.values(), ...shards.values(), ...dead].filter((t) => !keep.has(t)));
    return { y, acts };
  }

  /** dx from dy; parameter gradients accumulate into the store. Gives back `acts` and its temporaries. */
  async backward(x: F, acts: BlockActivations<F>, dy: F, batch: number, seq: number, dropout: DropoutDraw | null = null): Promise<F> {
    const { block, model, scratch } = this.o;
    const draw = this.drawing(dropout);
    const sh = this.shapes(batch, seq);
    const { size, rows: rowsOf, width: widthOf, dim } = sh;
    const fl = new Flow<F, I>(this.o.hooks, this.o.tp, this.dev);
    const k = fl.k;
    const val = (t: string): F => {
      const v = t === block.input ? x : acts[t];
      if (!this.dev.isTensor(v)) throw new Error(`layer ${this.o.index}: backward reads ${t}, which the forward did not keep`);
      return v;
    };
    const grads = new Map<string, F>([[block.output, dy]]);
    const temps: F[] = [];
    if (this.selective.dropped.length > 0) this.recomputeSelective(k, acts, x, batch, seq, sh, draw, temps);
    const tmpN = (n: number): F => {
      const v = scratch.take(n);
      temps.push(v);
      return v;
    };
    const tmp = (t: string): F => tmpN(size(t));
    const tokensSp = dim(block.sizes.tokensSp);
    // SP: the saved shard of a gathered tensor is gathered again for the GEMM that reads it.
    const gathered = new Map<string, F>();
    const full = async (t: string): Promise<F> => {
      if (!this.entered.has(t)) return val(t);
      let v = gathered.get(t);
      if (!v) {
        v = tmpN(tokensSp * this.o.tp * widthOf(t));
        await fl.allGather(val(t), v, this.site(this.entryPoint(t), true));
        gathered.set(t, v);
      }
      return v;
    };
    // SP: the replicated weights' gradients of this pass start from zero and are summed over the ranks at the end.
    const earlier = this.replicated.map((w) => {
      const g = this.G(w), copy = scratch.take(g.length);
      k.copy(copy, g);
      k.fill(g, 0);
      return copy;
    });
    const grad = (t: string): F => {
      const g = grads.get(t);
      if (!g) throw new Error(`layer ${this.o.index}: no gradient for ${t}`);
      return g;
    };
    /** Stores a freshly written input gradient, summed with the one a later consumer wrote. */
    const written = (t: string, g: F): void => {
      const earlier = grads.get(t);
      if (earlier) k.accumulate(g, earlier);
      grads.set(t, g);
    };
    for (const op of this.reversed) {
      if (this.moe?.names.has(op.name)) {
        if (op.kind === 'expertSum') {
          const { dispatch, gate } = this.moe.ops;
          const r = await this.moe.backward(fl as unknown as Flow, acts as unknown as BlockActivations, cpuTensor(grad(op.outputs[0])), rowsOf(dispatch.inputs[0]));
          const dLogits = r.dLogits as unknown as F, dH2 = r.dH2 as unknown as F;
          temps.push(dLogits, dH2);
          written(gate.inputs[0], dLogits);
          written(dispatch.inputs[0], dH2);
        }
        continue;
      }
      const modes = inputGradModes(op);
      switch (op.kind) {
        case 'residual': {
          if (modes[0] !== 'copy' || modes[1] !== (op.dropout ? 'write' : 'alias')) throw new Error(`residual ${op.name}: unexpected gradient rule`);
          const g = grad(op.outputs[0]);
          const stream = tmpN(g.length);
          k.copy(stream, g);
          grads.set(op.inputs[0], stream);
          const mask = op.dropout && draw ? acts[op.outputs[1]] : undefined;
          if (mask !== undefined && this.dev.isTensor(mask)) {
            const branch = tmpN(g.length);
            k.dropoutBackward(branch, mask, g, model.dropout);
            grads.set(op.inputs[1], branch);
          } else {
            grads.set(op.inputs[1], g);
          }
          break;
        }
        case 'branchSum':
          for (const t of op.inputs) grads.set(t, grad(op.outputs[0]));
          break;
        case 'tpExit': {
          // The exit's backward: the identity, or with SP the all-gather of the ranks' token
          // gradients; its biases' gradients are taken here (with SP over this rank's tokens).
          const t = op.inputs[0], g = grad(t), rows = this.sp ? tokensSp : rowsOf(t);
          for (const bias of op.biases) k.biasGrad(this.G(bias), g, rows, widthOf(t));
          if (this.sp) {
            const whole = tmpN(dim(op.elements));
            await fl.allGather(g, whole, this.site(op.point, false));
            grads.set(t, whole);
          }
          break;
        }
        case 'tpEntry': {
          const t = op.inputs[0];
          if (this.sp) {
            const shard = tmpN(tokensSp * widthOf(t));
            await fl.reduceScatter(grad(t), shard, this.site(op.point, false));
            grads.set(t, shard);
          } else {
            await fl.allReduce(grad(t), this.site(op.point, false));
          }
          break;
        }
        case 'linear': {
          if (op.transposed) throw unsupported(op);
          const rows = dim(op.rows), inner = dim(op.inner);
          const inp = await full(op.inputs[0]);
          const dIn = tmpN(rows * inner);
          // Per GEMM out = inp W: dW += inp^T dout, (dbias += sum dout), dinp (+)= dout W^T.
          op.weights.forEach((w, i) => {
            const n = dim(op.cols[i]);
            const dOut = grad(op.outputs[i]);
            k.matmul({ c: this.G(w), a: inp, b: dOut, m: inner, n, k: rows, transA: true, accumulate: true });
            if (op.biasAt === 'gemm' && op.biases[i]) k.biasGrad(this.G(op.biases[i]), dOut, rows, n);
            k.matmul({ c: dIn, a: dOut, b: this.W(w), m: rows, n: inner, k: n, transB: true, accumulate: i > 0 });
          });
          written(op.inputs[0], dIn);
          break;
        }
        case 'activation': {
          const dOut = grad(op.outputs[0]);
          if (op.fn === 'gelu' || op.fn === 'squared-relu') {
            // In place when the output gradient is this layer's own buffer (the next GEMM's input gradient).
            const dIn = temps.includes(dOut) ? dOut : tmp(op.inputs[0]);
            if (op.fn === 'gelu') k.geluBackward(dIn, dOut, val(op.inputs[0]));
            else k.squaredReluBackward(dIn, dOut, val(op.inputs[0]));
            written(op.inputs[0], dIn);
          } else {
            const [gate, up] = op.inputs;
            const dGate = tmp(gate), dUp = tmp(up);
            k.swigluBackward(dGate, dUp, dOut, val(gate), val(up));
            written(gate, dGate);
            written(up, dUp);
          }
          break;
        }
        case 'attention': {
          const [q, kk, v] = op.inputs;
          const [dq, dk, dv] = op.inputs.map(tmp);
          const ring = this.ring, shape = this.attention(batch, seq, sh, draw);
          if (ring) {
            await ringAttentionBackward(fl, ring, this.ringBuffers(), dq, dk, dv, grad(op.outputs[0]), val(q), val(kk), val(v), val(op.outputs[0]), val(op.outputs[1]),
              shape, this.layout(seq) as SeqLayout);
          } else {
            k.attentionBackward(dq, dk, dv, grad(op.outputs[0]), val(q), val(kk), val(v), val(op.outputs[0]), val(op.outputs[1]), shape);
          }
          written(q, dq);
          written(kk, dk);
          written(v, dv);
          break;
        }
        case 'rope':
          op.inputs.forEach((t, i) => this.rope(k, grad(t), rowsOf(t), seq, dim(op.heads[i]), true));
          break;
        case 'norm': {
          const [inp] = op.inputs;
          const s = acts[op.name];
          if (!s || !this.isStats(s)) throw new Error(`layer ${this.o.index}: norm ${op.name} has no saved statistics`);
          const dx = grad(inp), dOut = grad(op.outputs[0]), rows = rowsOf(inp), h = widthOf(inp);
          if (op.norm === 'layernorm') {
            if (!s.mean || !op.beta) throw new Error('LayerNorm backward needs the saved mean and a beta');
            k.layerNormBackward(dx, this.G(op.gamma), this.G(op.beta), dOut, val(inp), this.W(op.gamma), s.mean, s.rstd, rows, h, true);
          } else {
            k.rmsNormBackward(dx, this.G(op.gamma), dOut, val(inp), this.W(op.gamma), s.rstd, rows, h, true);
          }
          break;
        }
        case 'values': {
          const [p, v] = op.inputs;
          const shape = this.attentionShape(batch, seq, sh), dOut = grad(op.outputs[0]);
          const dP = tmp(p), dV = tmp(v);
          k.attentionValuesGradProbs(dP, dOut, val(v), shape);
          k.attentionValuesGradV(dV, dOut, val(p), shape);
          written(p, dP);
          written(v, dV);
          break;
        }
        case 'dropout': {
          const [p] = op.inputs, mask = acts[op.outputs[1]];
          const g = grad(op.outputs[0]);
          if (mask !== undefined && this.dev.isTensor(mask)) {
            const dP = tmp(p);
            k.dropoutBackward(dP, mask, g, model.dropout);
            written(p, dP);
          } else {
            written(p, g);
          }
          break;
        }
        case 'softmax': {
          const [sc] = op.inputs, [p] = op.outputs;
          const dS = tmp(sc);
          k.causalSoftmaxBackward(dS, grad(p), val(p), rowsOf(sc), seq);
          written(sc, dS);
          break;
        }
        case 'scores': {
          const [q, kk] = op.inputs;
          const shape = this.attentionShape(batch, seq, sh), dS = grad(op.outputs[0]);
          const dq = tmp(q), dk = tmp(kk);
          k.attentionScoresGradQ(dq, dS, val(kk), shape);
          k.attentionScoresGradK(dk, dS, val(q), shape);
          written(q, dq);
          written(kk, dk);
          break;
        }
        case 'embedding': case 'crossEntropy':
        case 'router': case 'allToAll': case 'expertSum':
          throw unsupported(op);
      }
    }
    await fl.end();
    if (this.replicated.length > 0) {
      const sizes = this.replicated.map((w) => this.G(w).length);
      const packed = scratch.take(sizes.reduce((a, n) => a + n, 0));
      let at = 0;
      for (const w of this.replicated) {
        const g = this.G(w);
        k.copy(this.dev.view(packed, at, at + g.length), g);
        at += g.length;
      }
      await fl.allReduce(packed, this.site('sp-grads', false));
      at = 0;
      this.replicated.forEach((w, i) => {
        const g = this.G(w);
        k.add(g, earlier[i], this.dev.view(packed, at, at + g.length));
        at += g.length;
      });
      await fl.end();
      scratch.give([packed, ...earlier]);
    }
    const dx = grad(block.input);
    // The activations (saved or recomputed) and temporaries are dead now that the kernels have run;
    // the input and the output gradient belong to the caller.
    const arrays = [...Object.values(acts).flatMap((v) => (this.isStats(v) ? [v.mean, v.rstd] : [v])), ...temps];
    scratch.give(arrays.filter((t): t is F => t !== null && t !== dx && t !== x && t !== dy));
    return dx;
  }

  /**
   * Forward of one op of the unfused attention core: scores = scale q k^T (causal), softmax,
   * dropout of the probabilities (the fused kernel's draws; without draws the probabilities pass
   * through), values = probs v.
   */
  private coreForward(
    k: KernelOps<F, I>, op: CoreOp, get: (t: string) => F, make: (t: string) => F, tensors: Map<string, F>,
    batch: number, seq: number, sh: Shapes, draw: DropoutDraw | null,
  ): void {
    const shape = this.attentionShape(batch, seq, sh);
    switch (op.kind) {
      case 'scores':
        k.attentionScores(make(op.outputs[0]), get(op.inputs[0]), get(op.inputs[1]), shape);
        break;
      case 'softmax':
        k.causalSoftmax(make(op.outputs[0]), get(op.inputs[0]), sh.rows(op.inputs[0]), seq);
        break;
      case 'dropout': {
        const a = this.attention(batch, seq, sh, draw);
        if (a.dropout) k.attentionProbsDropout(make(op.outputs[0]), make(op.outputs[1]), get(op.inputs[0]), { ...a, dropout: a.dropout });
        else tensors.set(op.outputs[0], get(op.inputs[0]));
        break;
      }
      case 'values':
        k.attentionValues(make(op.outputs[0]), get(op.inputs[0]), get(op.inputs[1]), shape);
        break;
    }
  }

  /**
   * Selective recompute: runs the selective ops again from their kept inputs (q, k, v) into `acts`,
   * for the tensors the forward dropped; an op none of whose outputs is dropped or read by such a
   * rerun (the values) is not rerun. What it makes beyond the dropped tensors goes to `temps`
   * (given back after the backward).
   */
  private recomputeSelective(
    k: KernelOps<F, I>, acts: BlockActivations<F>, x: F, batch: number, seq: number, sh: Shapes, draw: DropoutDraw | null, temps: F[],
  ): void {
    const { block, scratch } = this.o;
    const dropped = new Set(this.selective.dropped);
    const local = new Map<string, F>();
    const get = (t: string): F => {
      const v = local.get(t) ?? (t === block.input ? x : acts[t]);
      if (!this.dev.isTensor(v)) throw new Error(`layer ${this.o.index}: selective recompute reads ${t}, which the forward did not keep`);
      return v;
    };
    const make = (t: string): F => {
      const v = this.takeTensor(t, sh.size(t));
      local.set(t, v);
      return v;
    };
    for (const op of this.ops) {
      if (!this.selective.ops.includes(op.name) || !op.outputs.some((t) => dropped.has(t) || this.needs(t, dropped))) continue;
      this.coreForward(k, op as CoreOp, get, make, local, batch, seq, sh, draw);
    }
    for (const [t, v] of local) {
      if (dropped.has(t)) acts[t] = v;
      else if (!temps.includes(v) && !Object.values(acts).includes(v)) temps.push(v);
    }
  }

  /** Whether a selective op that writes a dropped tensor (or feeds one that does) reads t. */
  private needs(t: string, dropped: ReadonlySet<string>): boolean {
    return this.ops.some((o) => this.selective.ops.includes(o.name) && o.inputs.includes(t) && o.outputs.some((u) => dropped.has(u) || this.needs(u, dropped)));
  }

  /** The entry point that gathers tensor t (SP). */
  private entryPoint(t: string): TpPoint {
    const op = this.ops.find((o) => o.kind === 'tpEntry' && o.inputs[0] === t);
    if (!op || op.kind !== 'tpEntry') throw new Error(`layer ${this.o.index}: no region entry gathers ${t}`);
    return op.point;
  }

  private attentionShape(batch: number, seq: number, sh: Shapes): { batch: number; seq: number; heads: number; kvHeads: number; headDim: number } {
    const z = this.o.block.sizes;
    return { batch, seq, heads: sh.dim(z.headsPerRank), kvHeads: sh.dim(z.kvHeadsPerRank), headDim: sh.dim(z.headDim) };
  }
}
