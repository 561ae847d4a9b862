// One transformer layer of a gpt, llama or falcon model, with explicit forward and backward passes
// built from the native kernels, sharded Megatron-style over `tp` ranks:
//   attention: Wq, Wk, Wv column-parallel (whole heads per rank), Wo row-parallel
//   MLP:       W1 (gelu) or Wgate, Wup (swiglu) column-parallel, W2 / Wdown row-parallel
// Sequential block (gpt, llama; pre-norm, Radford et al. 2019 / Touvron et al. 2023):
//   x1 = x + Attn(N1(x)),  y = x1 + MLP(N2(x1))
// Parallel block (falcon, `parallelAttention`; Wang & Komatsuzaki 2021, GPT-J):
//   y = x + Attn(N1(x)) + MLP(N1(x))  (or N2(x) with `parallelAttentionTwoNorms`)
// Weights are stored [in, out] so that a projection is y = x W. Activations are [tokens, width],
// tokens = batch * seq, in the order the batch holds them.
import type { ModelSpec } from '@mist/core';
import { type LayerDims, INIT_STD, ROPE_THETA, layerDims } from './dims';
import { Flow } from './flow';
import { type NormSaved, normBackwardAccumulate, normDecls, normForward } from './norm';
import type { ParamDecl, ParamStore } from './params';
import { arraysOf, Scratch } from './scratch';
import type { TpHooks, TpPoint } from './tp-hooks';

/** Parameters of layer `index` (full shapes; the store slices them per rank). */
export function layerParamDecls(model: ModelSpec, index: number): ParamDecl[] {
  const p = `layers.${index}`;
  const h = model.hidden, d = h / model.heads, q = model.heads * d, kv = model.kvHeads * d, f = model.ffnHidden;
  // Output projections are scaled by 1/sqrt(2 * layers) (GPT-2, Radford et al. 2019, section 2.3).
  const outStd = INIT_STD / Math.sqrt(2 * model.layers);
  const w = (name: string, shape: [number, number], shard: 'cols' | 'rows', std = INIT_STD): ParamDecl =>
    ({ name: `${p}.${name}`, shape, shard, init: { kind: 'normal', std }, weightDecay: true });
  const b = (name: string, n: number, shard: 'cols' | 'none'): ParamDecl =>
    ({ name: `${p}.${name}`, shape: [n], shard, init: { kind: 'const', value: 0 }, weightDecay: false });
  const decls: ParamDecl[] = [...normDecls(model, `${p}.norm1`)];
  if (!model.parallelAttention || model.parallelAttentionTwoNorms) decls.push(...normDecls(model, `${p}.norm2`));
  decls.push(w('attn.wq', [h, q], 'cols'), w('attn.wk', [h, kv], 'cols'), w('attn.wv', [h, kv], 'cols'), w('attn.wo', [q, h], 'rows', outStd));
  if (model.bias) decls.push(b('attn.bq', q, 'cols'), b('attn.bk', kv, 'cols'), b('attn.bv', kv, 'cols'), b('attn.bo', h, 'none'));
  if (model.activation === 'gelu') {
    decls.push(w('mlp.w1', [h, f], 'cols'), w('mlp.w2', [f, h], 'rows', outStd));
    if (model.bias) decls.push(b('mlp.b1', f, 'cols'), b('mlp.b2', h, 'none'));
  } else {
    decls.push(w('mlp.wg', [h, f], 'cols'), w('mlp.wu', [h, f], 'cols'), w('mlp.wd', [f, h], 'rows', outStd));
    if (model.bias) decls.push(b('mlp.bg', f, 'cols'), b('mlp.bu', f, 'cols'), b('mlp.bd', h, 'none'));
  }
  return decls;
}

/** What a layer keeps between its forward and backward passes. */
export interface LayerSaved {
  batch: number;
  seq: number;
  x: Float32Array;
  /** Absent when the layer is checkpointed: the backward recomputes them from x. */
  acts?: LayerActivations;
}

interface LayerActivations {
  h1: Float32Array;
  n1: NormSaved;
  q: Float32Array; // after RoPE
  k: Float32Array; // after RoPE
  v: Float32Array;
  attn: Float32Array;
  lse: Float32Array;
  x1: Float32Array; // input of the MLP branch's residual (x for a parallel block)
  h2: Float32Array; // MLP input (h1 for a one-norm parallel block)
  n2: NormSaved | null;
  mlpPre: Float32Array[]; // gelu: [u]; swiglu: [gate, up]
  mlpAct: Float32Array; // gelu(u) or silu(gate) * up
}

export interface LayerOptions {
  model: ModelSpec;
  /** Global layer index. */
  index: number;
  tp: number;
  tpRank: number;
  /** Keep only the input in forward and recompute the rest in backward. */
  checkpoint: boolean;
  hooks?: TpHooks;
  /** Where the layer takes its temporary buffers (shared by a stage's layers); default its own. */
  scratch?: Scratch;
}

export class TransformerLayer {
  readonly index: number;
  readonly checkpoint: boolean;
  private readonly model: ModelSpec;
  private readonly dims: LayerDims;
  private readonly p: string;
  private readonly scratch: Scratch;

  constructor(private readonly opts: LayerOptions, private readonly store: ParamStore) {
    const m = opts.model;
    if (m.positional === 'alibi') throw new Error(`not implemented: ALiBi positions (${m.name})`);
    if (opts.tp > 1 && !opts.hooks) throw new Error(`layer ${opts.index}: tp=${opts.tp} needs TP hooks for the all-reduces`);
    this.model = m;
    this.index = opts.index;
    this.checkpoint = opts.checkpoint;
    this.dims = layerDims(m, opts.tp);
    this.p = `layers.${opts.index}`;
    this.scratch = opts.scratch ?? new Scratch();
  }

  private W(name: string): Float32Array {
    return this.store.param(`${this.p}.${name}`);
  }
  private G(name: string): Float32Array {
    return this.store.grad(`${this.p}.${name}`);
  }
  private flow(): Flow {
    return new Flow(this.opts.hooks, this.opts.tp);
  }
  private site(point: TpPoint, recompute: boolean): { layer: number; point: TpPoint; recompute: boolean } {
    return { layer: this.index, point, recompute };
  }

  /** y = layer(x) for x [batch * seq, hidden]; `save` keeps what backward needs. */
  async forward(x: Float32Array, batch: number, seq: number, save: boolean): Promise<{ y: Float32Array; saved: LayerSaved | null }> {
    const { y, acts } = await this.run(x, batch, seq, false);
    if (!save || this.checkpoint) this.scratch.give(arraysOf(Object.values(acts)).filter((a) => a !== x));
    if (!save) return { y, saved: null };
    return { y, saved: this.checkpoint ? { batch, seq, x } : { batch, seq, x, acts } };
  }

  private async run(x: Float32Array, batch: number, seq: number, recompute: boolean): Promise<{ y: Float32Array; acts: LayerActivations }> {
    const m = this.model, { hidden: H, headDim: D, heads, kvHeads, ffn: F } = this.dims;
    const T = batch * seq, Q = heads * D, KV = kvHeads * D;
    if (x.length !== T * H) throw new Error(`layer ${this.index}: input holds ${x.length} floats, expected ${T} x ${H}`);
    const fl = this.flow();
    const k = fl.k;
    const buf = (n: number): Float32Array => this.scratch.take(n);
    const proj = (out: Float32Array, inp: Float32Array, w: string, bias: string | null, n: number, kk: number): void => {
      k.matmul({ c: out, a: inp, b: this.W(w), m: T, n, k: kk });
      if (bias && m.bias) k.biasAdd(out, this.W(bias), T, n);
    };
    const h1 = buf(T * H);
    const n1 = normForward(k, m, this.store, `${this.p}.norm1`, h1, x, T, buf);
    const q = buf(T * Q), kt = buf(T * KV), v = buf(T * KV);
    proj(q, h1, 'attn.wq', 'attn.bq', Q, H);
    proj(kt, h1, 'attn.wk', 'attn.bk', KV, H);
    proj(v, h1, 'attn.wv', 'attn.bv', KV, H);
    if (m.positional === 'rope') {
      k.rope(q, q, T, seq, heads, D, ROPE_THETA);
      k.rope(kt, kt, T, seq, kvHeads, D, ROPE_THETA);
    }
    const attn = buf(T * Q), lse = buf(batch * heads * seq);
    k.attention(attn, lse, q, kt, v, { batch, seq, heads, kvHeads, headDim: D });
    const o = buf(T * H);
    k.matmul({ c: o, a: attn, b: this.W('attn.wo'), m: T, n: H, k: Q });

    let x1 = x, h2 = h1, n2: NormSaved | null = null;
    if (!m.parallelAttention) {
      await fl.allReduce(o, this.site('attn-out', recompute));
      if (m.bias) k.biasAdd(o, this.W('attn.bo'), T, H);
      x1 = buf(T * H);
      k.add(x1, x, o);
      h2 = buf(T * H);
      n2 = normForward(k, m, this.store, `${this.p}.norm2`, h2, x1, T, buf);
    } else if (m.parallelAttentionTwoNorms) {
      h2 = buf(T * H);
      n2 = normForward(k, m, this.store, `${this.p}.norm2`, h2, x, T, buf);
    }

    const mo = buf(T * H);
    let mlpPre: Float32Array[], mlpAct: Float32Array;
    if (m.activation === 'gelu') {
      const u = buf(T * F);
      proj(u, h2, 'mlp.w1', 'mlp.b1', F, H);
      mlpAct = buf(T * F);
      k.gelu(mlpAct, u);
      mlpPre = [u];
      k.matmul({ c: mo, a: mlpAct, b: this.W('mlp.w2'), m: T, n: H, k: F });
    } else {
      const gate = buf(T * F), up = buf(T * F);
      proj(gate, h2, 'mlp.wg', 'mlp.bg', F, H);
      proj(up, h2, 'mlp.wu', 'mlp.bu', F, H);
      mlpAct = buf(T * F);
      k.swiglu(mlpAct, gate, up);
      mlpPre = [gate, up];
      k.matmul({ c: mo, a: mlpAct, b: this.W('mlp.wd'), m: T, n: H, k: F });
    }
    const outBias = m.activation === 'gelu' ? 'mlp.b2' : 'mlp.bd';
    const y = buf(T * H);
    if (!m.parallelAttention) {
      await fl.allReduce(mo, this.site('mlp-out', recompute));
      if (m.bias) k.biasAdd(mo, this.W(outBias), T, H);
      k.add(y, x1, mo);
    } else {
      k.add(mo, mo, o); // one all-reduce for both branches
      await fl.allReduce(mo, this.site('parallel-out', recompute));
      if (m.bias) {
        k.biasAdd(mo, this.W('attn.bo'), T, H);
        k.biasAdd(mo, this.W(outBias), T, H);
      }
      k.add(y, x, mo);
    }
    await fl.end();
    this.scratch.give([o, mo]);
    return { y, acts: { h1, n1, q, k: kt, v, attn, lse, x1, h2, n2, mlpPre, mlpAct } };
  }

  /** dx from dy [batch * seq, hidden]; parameter gradients accumulate into the store. */
  async backward(saved: LayerSaved, dy: Float32Array): Promise<Float32Array> {
    const m = this.model, { hidden: H, headDim: D, heads, kvHeads, ffn: F } = this.dims;
    const { batch, seq, x } = saved;
    const T = batch * seq, Q = heads * D, KV = kvHeads * D;
    const a = saved.acts ?? (await this.run(x, batch, seq, true)).acts;
    const fl = this.flow();
    const k = fl.k;
    const buf = (n: number): Float32Array => this.scratch.take(n);
    const temps: Float32Array[] = [];
    const tmp = (n: number): Float32Array => {
      const t = buf(n);
      temps.push(t);
      return t;
    };
    // d(out) -> d(in) of a projection out = inp W: dW += inp^T dout, (dbias += sum dout), dinp (+)= dout W^T.
    const projBack = (dinp: Float32Array, accumulate: boolean, inp: Float32Array, dout: Float32Array, w: string, bias: string | null, n: number, kk: number): void => {
      k.matmul({ c: this.G(w), a: inp, b: dout, m: kk, n, k: T, transA: true, accumulate: true });
      if (bias && m.bias) k.biasGrad(this.G(bias), dout, T, n);
      k.matmul({ c: dinp, a: dout, b: this.W(w), m: T, n: kk, k: n, transB: true, accumulate });
    };

    // MLP branch: its output gradient is dy (residual).
    const outBias = m.activation === 'gelu' ? 'mlp.b2' : 'mlp.bd';
    const dAct = tmp(T * F);
    const dh2 = tmp(T * H);
    if (m.activation === 'gelu') {
      projBack(dAct, false, a.mlpAct, dy, 'mlp.w2', outBias, H, F);
      k.geluBackward(dAct, dAct, a.mlpPre[0]);
      projBack(dh2, false, a.h2, dAct, 'mlp.w1', 'mlp.b1', F, H);
    } else {
      projBack(dAct, false, a.mlpAct, dy, 'mlp.wd', outBias, H, F);
      const dGate = tmp(T * F), dUp = tmp(T * F);
      k.swigluBackward(dGate, dUp, dAct, a.mlpPre[0], a.mlpPre[1]);
      projBack(dh2, false, a.h2, dGate, 'mlp.wg', 'mlp.bg', F, H);
      projBack(dh2, true, a.h2, dUp, 'mlp.wu', 'mlp.bu', F, H);
    }

    // Gradient at the attention output.
    let dO = dy;
    let dx1: Float32Array | null = null;
    if (!m.parallelAttention) {
      await fl.allReduce(dh2, this.site('mlp-in-grad', false));
      dx1 = tmp(T * H);
      k.copy(dx1, dy);
      normBackwardAccumulate(k, m, this.store, `${this.p}.norm2`, dx1, dh2, a.x1, a.n2 as NormSaved, T);
      dO = dx1;
    }
    const dAttn = tmp(T * Q);
    projBack(dAttn, false, a.attn, dO, 'attn.wo', 'attn.bo', H, Q);
    const dq = tmp(T * Q), dk = tmp(T * KV), dv = tmp(T * KV);
    k.attentionBackward(dq, dk, dv, dAttn, a.q, a.k, a.v, a.attn, a.lse, { batch, seq, heads, kvHeads, headDim: D });
    if (m.positional === 'rope') {
      k.ropeBackward(dq, dq, T, seq, heads, D, ROPE_THETA);
      k.ropeBackward(dk, dk, T, seq, kvHeads, D, ROPE_THETA);
    }
    const dh1 = tmp(T * H);
    projBack(dh1, false, a.h1, dq, 'attn.wq', 'attn.bq', Q, H);
    projBack(dh1, true, a.h1, dk, 'attn.wk', 'attn.bk', KV, H);
    projBack(dh1, true, a.h1, dv, 'attn.wv', 'attn.bv', KV, H);

    const dx = buf(T * H);
    if (!m.parallelAttention) {
      await fl.allReduce(dh1, this.site('attn-in-grad', false));
      k.copy(dx, dx1 as Float32Array);
      normBackwardAccumulate(k, m, this.store, `${this.p}.norm1`, dx, dh1, x, a.n1, T);
    } else if (!m.parallelAttentionTwoNorms) {
      k.accumulate(dh1, dh2);
      await fl.allReduce(dh1, this.site('parallel-in-grad', false));
      k.copy(dx, dy);
      normBackwardAccumulate(k, m, this.store, `${this.p}.norm1`, dx, dh1, x, a.n1, T);
    } else {
      await fl.allReduce(dh1, this.site('attn-in-grad', false));
      await fl.allReduce(dh2, this.site('mlp-in-grad', false));
      k.copy(dx, dy);
      normBackwardAccumulate(k, m, this.store, `${this.p}.norm1`, dx, dh1, x, a.n1, T);
      normBackwardAccumulate(k, m, this.store, `${this.p}.norm2`, dx, dh2, x, a.n2 as NormSaved, T);
    }
    await fl.end();
    // The layer's activations (saved or recomputed) and temporaries are dead now that its kernels
    // have run. Its input and the output gradient belong to the caller.
    this.scratch.give(arraysOf([...Object.values(a), ...temps]).filter((t) => t !== dx && t !== x && t !== dy));
    return dx;
  }
}
