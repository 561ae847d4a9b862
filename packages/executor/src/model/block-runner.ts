// Runs a block description (core's layerBlock) on the native kernels: the forward walks its ops in
// order, the backward walks them in reverse, each op kind mapped to its kernel calls. Tensors live
// in a map by name; input gradients follow core's rule (inputGradModes): a fresh buffer ('write',
// summed with an earlier gradient of the same tensor by one accumulate kernel), added into the
// residual stream's gradient ('accumulate'), transformed in place ('inplace'), a copy ('copy') or
// the output gradient itself ('alias'). The TP ops call the layer's hooks. This executor runs the
// fused attention kernel (flash-style: it keeps the log-sum-exp, never the s x s scores) and no
// dropout (probability 0), so the description is evaluated with fa = 1 and its masks are not made;
// its tensor-parallel hooks exchange whole activations, so sp = 0.
import { type BlockDescription, type BlockOp, type Dim, type DimEnv, evalDim, headDim, inputGradModes, type ModelSpec } from '@mist/core';
import { NORM_EPS, ROPE_THETA } from './dims';
import { Flow } from './flow';
import type { NormSaved } from './norm';
import type { ParamStore } from './params';
import type { Scratch } from './scratch';
import type { TpHooks, TpPoint } from './tp-hooks';

/** What a block keeps for its backward: saved tensors by name and the norms' statistics by op name, in forward order. */
export type BlockActivations = Record<string, Float32Array | NormSaved>;

export interface BlockRunnerOptions {
  model: ModelSpec;
  block: BlockDescription;
  /** Global index of the layer (for the TP hooks' sites). */
  index: number;
  /** Prefix of the block's weight names in the store (`layers.3`). */
  prefix: string;
  tp: number;
  hooks?: TpHooks;
  store: ParamStore;
  scratch: Scratch;
}

const isStats = (v: Float32Array | NormSaved): v is NormSaved => !(v instanceof Float32Array);

/** The description's sizes evaluated for one micro-batch shape (cached: a layer sees few shapes). */
interface Shapes {
  /** Any size of the description, evaluated (memoised per Dim object). */
  dim(d: Dim): number;
  rows(tensor: string): number;
  width(tensor: string): number;
  size(tensor: string): number;
}

/** Ops a layer never holds here: the unfused attention, dropout (not run), the embedding's and the head's own ops. */
function unsupported(op: BlockOp): Error {
  return new Error(`not implemented: block op ${op.name} (${op.kind}${op.kind === 'linear' ? ', weights stored [out, in]' : ''}) in the layer runner; `
    + 'it runs norm, linear, rope, attention (fused), activation, residual, branchSum, tpEntry and tpExit');
}

export class BlockRunner {
  /** The ops this executor runs (the flash variant of the attention), in forward order. */
  readonly ops: readonly BlockOp[];
  private readonly reversed: readonly BlockOp[];
  /** Tensors kept for backward (besides the block's input). */
  private readonly kept: ReadonlySet<string>;
  private readonly shapeCache = new Map<string, Shapes>();

  constructor(private readonly o: BlockRunnerOptions) {
    this.ops = o.block.ops.filter((op) => op.when !== 'noFlash');
    this.reversed = [...this.ops].reverse();
    this.kept = new Set(this.ops.flatMap((op) => op.saves).filter((t) => t !== o.block.input && o.block.tensors[t]?.dtype !== 'mask'));
  }

  private shapes(batch: number, seq: number): Shapes {
    const key = `${batch}x${seq}`;
    let sh = this.shapeCache.get(key);
    if (sh) return sh;
    if (this.shapeCache.size >= 16) this.shapeCache.clear(); // a few shapes in training; bounded for evaluation at many lengths
    const m = this.o.model;
    const env: DimEnv = { b: batch, s: seq, h: m.hidden, a: m.heads, k: m.kvHeads, f: m.ffnHidden, V: m.vocab, t: this.o.tp, sp: 0, fa: 1 };
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

  private W(name: string): Float32Array {
    return this.o.store.param(`${this.o.prefix}.${name}`);
  }

  private G(name: string): Float32Array {
    return this.o.store.grad(`${this.o.prefix}.${name}`);
  }

  private site(point: TpPoint, recompute: boolean): { layer: number; point: TpPoint; recompute: boolean } {
    return { layer: this.o.index, point, recompute };
  }

  /** y = block(x); `acts` holds what backward reads (its arrays come from the scratch). */
  async forward(x: Float32Array, batch: number, seq: number, recompute: boolean): Promise<{ y: Float32Array; acts: BlockActivations }> {
    const { block, model, scratch } = this.o;
    const sh = this.shapes(batch, seq);
    const { size, rows: rowsOf, width: widthOf, dim } = sh;
    if (x.length !== size(block.input)) {
      throw new Error(`layer ${this.o.index}: input holds ${x.length} floats, expected ${rowsOf(block.input)} x ${widthOf(block.input)}`);
    }
    const fl = new Flow(this.o.hooks, this.o.tp);
    const k = fl.k;
    const tensors = new Map<string, Float32Array>([[block.input, x]]);
    const get = (t: string): Float32Array => {
      const v = tensors.get(t);
      if (!v) throw new Error(`layer ${this.o.index}: tensor ${t} read before it is written`);
      return v;
    };
    const make = (t: string): Float32Array => {
      const v = scratch.take(size(t));
      tensors.set(t, v);
      return v;
    };
    const stats: Record<string, NormSaved> = {};
    const D = headDim(model);
    for (const op of this.ops) {
      switch (op.kind) {
        case 'norm': {
          const [inp] = op.inputs, [out] = op.outputs;
          const rows = rowsOf(inp), h = widthOf(inp);
          const y = make(out), rstd = scratch.take(rows);
          if (op.norm === 'layernorm') {
            const mean = scratch.take(rows);
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
          op.inputs.forEach((t, i) => k.rope(get(t), get(t), rowsOf(t), seq, dim(op.heads[i]), D, ROPE_THETA));
          break;
        case 'attention': {
          const [q, kk, v] = op.inputs.map(get);
          const [out, lse] = op.outputs.map(make);
          k.attention(out, lse, q, kk, v, this.attentionShape(batch, seq, sh));
          break;
        }
        case 'activation': {
          const out = make(op.outputs[0]);
          if (op.fn === 'gelu') k.gelu(out, get(op.inputs[0]));
          else k.swiglu(out, get(op.inputs[0]), get(op.inputs[1]));
          break;
        }
        case 'residual': case 'branchSum': {
          const [a, b] = op.inputs.map(get);
          k.add(make(op.outputs[0]), a, b);
          break;
        }
        case 'tpEntry':
          break; // the forward of a region's entry is the identity without sequence parallelism
        case 'tpExit': {
          const t = get(op.inputs[0]);
          await fl.allReduce(t, this.site(op.point, recompute));
          for (const bias of op.biases) k.biasAdd(t, this.W(bias), rowsOf(op.inputs[0]), widthOf(op.inputs[0]));
          break;
        }
        case 'scores': case 'values': case 'softmax': case 'dropout': case 'embedding': case 'crossEntropy':
          throw unsupported(op);
      }
    }
    await fl.end();
    const y = get(block.output);
    // Saved tensors in forward order, each op's outputs before its statistics.
    const acts: BlockActivations = {};
    for (const op of this.ops) {
      for (const t of op.outputs) if (this.kept.has(t) && !(t in acts)) acts[t] = get(t);
      if (stats[op.name]) acts[op.name] = stats[op.name];
    }
    const keep = new Set<Float32Array>([x, y, ...Object.values(acts).filter((v): v is Float32Array => !isStats(v))]);
    scratch.give([...tensors.values()].filter((t) => !keep.has(t)));
    return { y, acts };
  }

  /** dx from dy; parameter gradients accumulate into the store. Gives back `acts` and its temporaries. */
  async backward(x: Float32Array, acts: BlockActivations, dy: Float32Array, batch: number, seq: number): Promise<Float32Array> {
    const { block, model, scratch } = this.o;
    const sh = this.shapes(batch, seq);
    const { size, rows: rowsOf, width: widthOf, dim } = sh;
    const fl = new Flow(this.o.hooks, this.o.tp);
    const k = fl.k;
    const val = (t: string): Float32Array => {
      const v = t === block.input ? x : acts[t];
      if (!(v instanceof Float32Array)) throw new Error(`layer ${this.o.index}: backward reads ${t}, which the forward did not keep`);
      return v;
    };
    const grads = new Map<string, Float32Array>([[block.output, dy]]);
    const temps: Float32Array[] = [];
    const tmp = (t: string): Float32Array => {
      const v = scratch.take(size(t));
      temps.push(v);
      return v;
    };
    const grad = (t: string): Float32Array => {
      const g = grads.get(t);
      if (!g) throw new Error(`layer ${this.o.index}: no gradient for ${t}`);
      return g;
    };
    /** Stores a freshly written input gradient, summed with the one a later consumer wrote. */
    const written = (t: string, g: Float32Array): void => {
      const earlier = grads.get(t);
      if (earlier) k.accumulate(g, earlier);
      grads.set(t, g);
    };
    const D = headDim(model);
    for (const op of this.reversed) {
      const modes = inputGradModes(op);
      switch (op.kind) {
        case 'residual': {
          if (modes[0] !== 'copy' || modes[1] !== 'alias') throw new Error(`residual ${op.name}: unexpected gradient rule`);
          const g = grad(op.outputs[0]);
          const stream = tmp(op.inputs[0]);
          k.copy(stream, g);
          grads.set(op.inputs[0], stream);
          grads.set(op.inputs[1], g);
          break;
        }
        case 'branchSum':
          for (const t of op.inputs) grads.set(t, grad(op.outputs[0]));
          break;
        case 'tpExit':
          // Without sequence parallelism the exit's backward is the identity; its biases' gradients are taken here.
          for (const bias of op.biases) k.biasGrad(this.G(bias), grad(op.inputs[0]), rowsOf(op.inputs[0]), widthOf(op.inputs[0]));
          break;
        case 'tpEntry':
          await fl.allReduce(grad(op.inputs[0]), this.site(op.point, false));
          break;
        case 'linear': {
          if (op.transposed) throw unsupported(op);
          const rows = dim(op.rows), inner = dim(op.inner);
          const inp = val(op.inputs[0]);
          const dIn = tmp(op.inputs[0]);
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
          if (op.fn === 'gelu') {
            // In place when the output gradient is this layer's own buffer (the next GEMM's input gradient).
            const dIn = temps.includes(dOut) ? dOut : tmp(op.inputs[0]);
            k.geluBackward(dIn, dOut, val(op.inputs[0]));
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
          k.attentionBackward(dq, dk, dv, grad(op.outputs[0]), val(q), val(kk), val(v), val(op.outputs[0]), val(op.outputs[1]), this.attentionShape(batch, seq, sh));
          written(q, dq);
          written(kk, dk);
          written(v, dv);
          break;
        }
        case 'rope':
          op.inputs.forEach((t, i) => k.ropeBackward(grad(t), grad(t), rowsOf(t), seq, dim(op.heads[i]), D, ROPE_THETA));
          break;
        case 'norm': {
          const [inp] = op.inputs;
          const s = acts[op.name];
          if (!s || !isStats(s)) throw new Error(`layer ${this.o.index}: norm ${op.name} has no saved statistics`);
          const dx = grad(inp), dOut = grad(op.outputs[0]), rows = rowsOf(inp), h = widthOf(inp);
          if (op.norm === 'layernorm') {
            if (!s.mean || !op.beta) throw new Error('LayerNorm backward needs the saved mean and a beta');
            k.layerNormBackward(dx, this.G(op.gamma), this.G(op.beta), dOut, val(inp), this.W(op.gamma), s.mean, s.rstd, rows, h, true);
          } else {
            k.rmsNormBackward(dx, this.G(op.gamma), dOut, val(inp), this.W(op.gamma), s.rstd, rows, h, true);
          }
          break;
        }
        case 'scores': case 'values': case 'softmax': case 'dropout': case 'embedding': case 'crossEntropy':
          throw unsupported(op);
      }
    }
    await fl.end();
    const dx = grad(block.input);
    // The activations (saved or recomputed) and temporaries are dead now that the kernels have run;
    // the input and the output gradient belong to the caller.
    const arrays = [...Object.values(acts).flatMap((v) => (isStats(v) ? [v.mean, v.rstd] : [v])), ...temps];
    scratch.give(arrays.filter((t): t is Float32Array => t !== null && t !== dx && t !== x && t !== dy));
    return dx;
  }

  private attentionShape(batch: number, seq: number, sh: Shapes): { batch: number; seq: number; heads: number; kvHeads: number; headDim: number } {
    const z = this.o.block.sizes;
    return { batch, seq, heads: sh.dim(z.headsPerRank), kvHeads: sh.dim(z.kvHeadsPerRank), headDim: sh.dim(z.headDim) };
  }
}
