// The mixture-of-experts MLP of core's block description (layerBlock with model.moe), run from the
// router's gate to the probability-weighted sum, following Megatron-Core's MoELayer with the
// all-to-all token dispatcher:
//   gate      per token, the top `topK` of the router's logits and a softmax over those topK
//             (megatron/core/transformer/moe/moe_utils.py topk_routing_with_score_function with
//             use_pre_softmax false, Megatron's default --moe-router-pre-softmax off; Mixtral,
//             Jiang et al. 2024, Sec. 2.1, Eq. 1 gates the same way). Ties go to the lower expert index.
//   dispatch  each token's topK copies sorted by expert (stable: token order inside an expert,
//             moe_utils.py permute), the experts' rows sent to the expert-parallel rank holding
//             them, counts exchanged first (token_dispatcher.py MoEAlltoAllTokenDispatcher), the
//             received rows regrouped by local expert (moe_utils.py sort_chunks_by_idxs).
//   experts   each local expert's MLP (the model's activation, stacked weights: one parameter per
//             expert) on however many rows it received: dropless, no capacity factor; with tp > 1
//             the experts are tensor-parallel like the dense MLP (column- then row-parallel: expert
//             tensor parallelism = tp). Without sequence parallelism the TP ranks route the same
//             tokens and the region all-reduces the output and the input gradient; with it each TP
//             rank routes its own tokens, and the region all-gathers the TP ranks' received rows
//             (their counts first; each rank's rows padded to one capacity) and reduce-scatters the
//             outputs back (token_dispatcher.py dispatch_postprocess / combine_preprocess, which
//             gather and scatter over TP with per-rank split sizes, output_splits_tp).
//   combine   the reverse: rows regrouped by source rank, sent back, restored to token order.
//   sum       out[token] = sum over its topK copies of probability * expert output.
// The backward runs all of it in reverse, including the gradient into the router's logits through
// the gate probabilities. No auxiliary load-balancing loss is added: Megatron's --moe-aux-loss-coeff
// defaults to 0 (megatron/training/arguments.py), and with it 0 the router adds none (router.py).
// Everything that touches float data runs on the native kernels through the layer's kernel batch: the
// gate (moeTopK), the permutations (moeGatherRows, moeScatterRows, and copies of whole chunks for the
// regrouping), the weighted sum and its backward (moeCombine, moeGateBackward), the GEMMs, biases and
// activations. Only the routing's bookkeeping stays here: the counting sort of the send positions
// and the row counts, which the all-to-all needs on the host anyway (the batch is run before a
// collective or an exchange reads or writes a buffer, and before buffers go back to the scratch).
import type { BlockDescription, BlockOp, ModelSpec } from '@mist/core';
import type { KernelOps } from '@mist/native';
import type { Flow } from './flow';
import type { ParamDecl, ParamStore } from './params';
import type { Scratch } from './scratch';
import type { TpPoint } from './tp-hooks';

/**
 * A stage's expert-parallel group as the executor provides it: ep ranks holding experts/ep experts
 * each; allToAll sends send[p] to group rank p and receives recv[p] from it (the lengths agreed
 * beforehand; this rank's own part is copied).
 */
export interface ExpertGroup {
  ep: number;
  rank: number;
  allToAll(send: readonly Float32Array[], recv: readonly Float32Array[]): Promise<void>;
}

/** The store's name of expert `e`'s slice of a stacked expert weight. */
export function expertParamName(name: string, e: number): string {
  return `${name}.expert${e}`;
}

/** True for one expert's slice of a stacked expert weight (its gradient syncs over the expert-data-parallel group). */
export function isExpertParam(name: string): boolean {
  return /\.expert\d+$/.test(name);
}

/** The experts rank `rank` of `ep` holds: experts/ep consecutive ones (Megatron-Core's local experts). */
export function localExperts(experts: number, ep: number, rank: number): { first: number; count: number } {
  if (!Number.isInteger(ep) || ep < 1 || experts % ep !== 0) throw new Error(`ep: got ${ep}; allowed: a divisor of the model's ${experts} experts`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= ep) throw new RangeError(`expert-parallel rank: got ${rank}; allowed: 0..${ep - 1}`);
  const count = experts / ep;
  return { first: rank * count, count };
}

/**
 * Parameter declarations of a layer whose stacked expert weights (BlockWeight.experts) become one
 * declaration per local expert, named by its global index, so that its values come from the same
 * stream whatever ep is (params.ts keys the initialisation by name).
 */
export function expandExpertDecls(decls: readonly ParamDecl[], block: BlockDescription, prefix: string, ep: number, rank: number): ParamDecl[] {
  const stacked = new Map(block.weights.filter((w) => w.experts !== undefined).map((w) => [`${prefix}.${w.name}`, w.experts as number]));
  return decls.flatMap((d) => {
    const experts = stacked.get(d.name);
    if (experts === undefined) return [d];
    const { first, count } = localExperts(experts, ep, rank);
    return Array.from({ length: count }, (_, i): ParamDecl => ({ ...d, name: expertParamName(d.name, first + i) }));
  });
}

type Op<K extends BlockOp['kind']> = Extract<BlockOp, { kind: K }>;

/** The MoE ops of a block description, in forward order. */
interface MoeOps {
  gate: Op<'router'>;
  dispatch: Op<'allToAll'>;
  entry: Op<'tpEntry'>;
  fc1: Op<'linear'>;
  act: Op<'activation'>;
  fc2: Op<'linear'>;
  exit: Op<'tpExit'>;
  combine: Op<'allToAll'>;
  sum: Op<'expertSum'>;
}

function moeOps(block: BlockDescription): { ops: MoeOps; names: Set<string> } {
  const start = block.ops.findIndex((o) => o.kind === 'router');
  const end = block.ops.findIndex((o) => o.kind === 'expertSum');
  if (start < 0 || end < start) throw new Error('mixture of experts: the block has no router ... expertSum region');
  const region = block.ops.slice(start, end + 1);
  const kinds = region.map((o) => o.kind).join(',');
  if (kinds !== 'router,allToAll,tpEntry,linear,activation,linear,tpExit,allToAll,expertSum') {
    throw new Error(`not implemented: mixture-of-experts region ${kinds}; the layer runner runs router, allToAll, tpEntry, linear, activation, linear, tpExit, allToAll, expertSum`);
  }
  const [gate, dispatch, entry, fc1, act, fc2, exit, combine, sum] = region as [
    Op<'router'>, Op<'allToAll'>, Op<'tpEntry'>, Op<'linear'>, Op<'activation'>, Op<'linear'>, Op<'tpExit'>, Op<'allToAll'>, Op<'expertSum'>,
  ];
  return { ops: { gate, dispatch, entry, fc1, act, fc2, exit, combine, sum }, names: new Set(region.map((o) => o.name)) };
}

/** Where each of a micro-batch's token copies goes: computed from the gate's expert indices alone. */
interface Routing {
  /** Copy c = token * topK + j sits at row sendPos[c] of the send buffer (sorted by expert, stable). */
  sendPos: Int32Array;
  /** Rows sent to each expert-parallel rank (its experts' copies), and received from each. */
  sendRows: number[];
  recvRows: number[];
  /** recvCounts[p * local + le]: rows rank p sends for local expert le. */
  recvCounts: Float32Array;
  /** The received rows regrouped expert-major: each local expert's row count and first row. */
  own: Segment;
}

export interface MoeOptions {
  model: ModelSpec;
  block: BlockDescription;
  index: number;
  prefix: string;
  tp: number;
  sequenceParallel: boolean;
  store: ParamStore;
  scratch: Scratch;
  /** Expert parallelism (absent: every expert on this rank). */
  group?: ExpertGroup;
}

/** The saved tensor holding the rows each rank sent this rank per local expert, and (SP) that of every TP rank. */
const COUNTS = 'moe.recvCounts';
const TP_COUNTS = 'moe.tpRecvCounts';

/** One TP rank's received rows in the experts' buffer: per local expert, its row count and first row. */
interface Segment {
  rows: number[];
  start: number[];
  total: number;
}

export class MoeMlp {
  /** The ops this class runs (the router's gate to the weighted sum). */
  readonly names: ReadonlySet<string>;
  readonly ops: MoeOps;
  private readonly experts: number;
  private readonly topK: number;
  private readonly ep: number;
  private readonly epRank: number;
  private readonly local: { first: number; count: number };
  private readonly hidden: number;
  /** One expert's MLP width on this TP rank. */
  private readonly ffn: number;
  /** Sequence parallelism (tp > 1): the TP ranks route different tokens; the experts' region gathers them. */
  private readonly sp: boolean;

  constructor(private readonly o: MoeOptions) {
    const moe = o.model.moe;
    if (!moe) throw new Error(`${o.model.name}: no mixture of experts (model.moe)`);
    this.sp = o.sequenceParallel && o.tp > 1;
    const m = moeOps(o.block);
    this.ops = m.ops;
    this.names = m.names;
    this.experts = moe.experts;
    this.topK = moe.topK;
    this.ep = o.group?.ep ?? 1;
    this.epRank = o.group?.rank ?? 0;
    this.local = localExperts(moe.experts, this.ep, this.epRank);
    this.hidden = o.model.hidden;
    const f = moe.ffnHidden ?? o.model.ffnHidden;
    if (f % o.tp !== 0) throw new Error(`moe.ffnHidden ${f}: not divisible by tp=${o.tp}`);
    this.ffn = f / o.tp;
  }

  /** The names of a stacked weight's slices this rank holds, relative to the layer's prefix. */
  localWeightNames(name: string): string[] {
    return Array.from({ length: this.local.count }, (_, i) => expertParamName(name, this.local.first + i));
  }

  private W(name: string, e: number): Float32Array {
    return this.o.store.param(expertParamName(`${this.o.prefix}.${name}`, e));
  }

  private G(name: string, e: number): Float32Array {
    return this.o.store.grad(expertParamName(`${this.o.prefix}.${name}`, e));
  }

  /** Capacity of a buffer of `rows` variable rows: rounded up to 1/8 of the micro-batch's copies, so the scratch sees few lengths. */
  private capacity(rows: number, copies: number): number {
    const g = Math.max(1, Math.ceil(copies / 8));
    return Math.max(1, Math.ceil(rows / g)) * g;
  }

  /** The send side of the routing (sorted by expert) from the gate's indices. */
  private sendSide(index: Int32Array): { sendPos: Int32Array; sendCounts: number[] } {
    const E = this.experts;
    const sendCounts = new Array<number>(E).fill(0);
    for (let c = 0; c < index.length; c++) sendCounts[index[c]]++;
    const next = new Array<number>(E).fill(0);
    for (let e = 1; e < E; e++) next[e] = next[e - 1] + sendCounts[e - 1];
    const sendPos = new Int32Array(index.length);
    for (let c = 0; c < index.length; c++) sendPos[c] = next[index[c]]++;
    return { sendPos, sendCounts };
  }

  private routing(index: Int32Array, recvCounts: Float32Array): Routing {
    const { sendPos, sendCounts } = this.sendSide(index);
    const L = this.local.count;
    const sendRows = Array.from({ length: this.ep }, (_, p) => sendCounts.slice(p * L, (p + 1) * L).reduce((a, b) => a + b, 0));
    const recvRows = Array.from({ length: this.ep }, (_, p) => Array.from(recvCounts.subarray(p * L, (p + 1) * L)).reduce((a, b) => a + b, 0));
    return { sendPos, sendRows, recvRows, recvCounts, own: this.segment(recvCounts, 0) };
  }

  /** Exchanges rows of width w: send[p] = rows sendRows[p] of `from` (in rank order) to rank p, into `to` likewise. */
  private async exchange(from: Float32Array, sendRows: readonly number[], to: Float32Array, recvRows: readonly number[], w: number): Promise<void> {
    const cut = (a: Float32Array, rows: readonly number[]): Float32Array[] => {
      let at = 0;
      return rows.map((r) => a.subarray(at * w, (at += r) * w));
    };
    const send = cut(from, sendRows), recv = cut(to, recvRows);
    if (!this.o.group) {
      recv[0].set(send[0]);
      return;
    }
    await this.o.group.allToAll(send, recv);
  }

  /**
   * Rows received source-major (rank p's rows for local experts 0..L-1, rank by rank) to
   * expert-major (local expert le's rows from ranks 0..ep-1), or back when `back`: recorded on k as
   * one copy per chunk (moe_utils.py sort_chunks_by_idxs).
   */
  private regroup(k: KernelOps, r: Routing, src: Float32Array, dst: Float32Array, w: number, back: boolean): void {
    const L = this.local.count;
    let s = 0;
    for (let p = 0; p < this.ep; p++) {
      for (let le = 0; le < L; le++) {
        const n = r.recvCounts[p * L + le];
        let e = r.own.start[le];
        for (let q = 0; q < p; q++) e += r.recvCounts[q * L + le];
        if (n > 0) {
          if (back) k.copy(dst.subarray(s * w, (s + n) * w), src.subarray(e * w, (e + n) * w));
          else k.copy(dst.subarray(e * w, (e + n) * w), src.subarray(s * w, (s + n) * w));
        }
        s += n;
      }
    }
  }

  private site(point: TpPoint, recompute: boolean): { layer: number; point: TpPoint; recompute: boolean } {
    return { layer: this.o.index, point, recompute };
  }

  /** Experts' rows of one TP rank's received rows (its segment of the gathered buffer), from its counts. */
  private segment(counts: Float32Array, base: number): Segment {
    const L = this.local.count;
    const rows = Array.from({ length: L }, (_, le) => {
      let n = 0;
      for (let p = 0; p < this.ep; p++) n += counts[p * L + le];
      return n;
    });
    const start = rows.map((_, le) => base + rows.slice(0, le).reduce((a, b) => a + b, 0));
    return { rows, start, total: rows.reduce((a, b) => a + b, 0) };
  }

  /**
   * The experts' rows on this rank: its own received rows, or with sequence parallelism those of
   * every TP rank (segment t at rows t * cap), each padded to the same capacity.
   */
  private layout(r: Routing, copies: number, tpCounts: Float32Array | null): { segments: Segment[]; cap: number } {
    if (!tpCounts) return { segments: [r.own], cap: this.capacity(r.own.total, copies) };
    const n = this.ep * this.local.count;
    const totals = Array.from({ length: this.o.tp }, (_, t) => this.segment(tpCounts.subarray(t * n, (t + 1) * n), 0).total);
    const cap = this.capacity(Math.max(...totals), copies);
    return { segments: totals.map((_, t) => this.segment(tpCounts.subarray(t * n, (t + 1) * n), t * cap)), cap };
  }

  /** Runs fn for every local expert's rows of every segment (skipping empty ones). */
  private each(segments: readonly Segment[], fn: (e: number, start: number, rows: number) => void): void {
    for (const sg of segments) {
      for (let le = 0; le < this.local.count; le++) if (sg.rows[le] > 0) fn(this.local.first + le, sg.start[le], sg.rows[le]);
    }
  }

  /**
   * out = the MoE MLP of h2 [tokens, hidden], given the router's logits [tokens, experts]. Returns
   * the output (a scratch buffer of tokens * hidden) and what backward reads, by tensor name.
   */
  async forward(fl: Flow, h2: Float32Array, logits: Float32Array, tokens: number, recompute: boolean): Promise<{ out: Float32Array; saved: Record<string, Float32Array> }> {
    const { scratch } = this.o;
    const { fc1, act, fc2, exit, entry, gate } = this.ops;
    const K = this.topK, E = this.experts, H = this.hidden, F = this.ffn, L = this.local.count, copies = tokens * K, tp = this.o.tp;
    const k = fl.k;
    const [probsName, indexName] = gate.outputs;
    // Gate: each token's experts and their probabilities; the routing reads the experts on the host.
    const probs = scratch.take(copies), chosen = new Int32Array(copies);
    k.moeTopK(chosen, probs, logits, tokens, E, K);
    await k.run();
    // The saved index tensor (the block's moe.index) holds the expert indices as floats.
    const index = scratch.take(copies);
    index.set(chosen);
    // Dispatch: counts first (with SP every TP rank's too), then the token rows sorted by expert.
    const { sendPos, sendCounts } = this.sendSide(chosen);
    const recvCounts = scratch.take(this.ep * L);
    await this.exchange(Float32Array.from(sendCounts), new Array<number>(this.ep).fill(L), recvCounts, new Array<number>(this.ep).fill(L), 1);
    const r = this.routing(chosen, recvCounts);
    let tpCounts: Float32Array | null = null;
    if (this.sp) {
      tpCounts = scratch.take(tp * this.ep * L);
      await fl.allGather(recvCounts, tpCounts, this.site(entry.point, recompute));
    }
    const { segments, cap } = this.layout(r, copies, tpCounts);
    const xs = scratch.take(copies * H);
    k.moeGatherRows(xs, h2, sendPos, null, tokens, K, H);
    await k.run();
    const recvd = scratch.take(cap * H);
    await this.exchange(xs, r.sendRows, recvd, r.recvRows, H);
    const xe = scratch.take(cap * H);
    this.regroup(k, r, recvd, xe, H, false);
    // The MLP's TP region: with SP every TP rank's rows, gathered.
    const rows = segments.length * cap;
    let xeAll = xe;
    if (this.sp) {
      xeAll = scratch.take(rows * H);
      await fl.allGather(xe, xeAll, this.site(entry.point, recompute));
    }
    const fcOut = fc1.outputs.map(() => scratch.take(rows * F));
    const a = scratch.take(rows * F);
    const yeAll = scratch.take(rows * H);
    this.each(segments, (e, s, n) => fc1.weights.forEach((w, i) => {
      const out = fcOut[i].subarray(s * F, (s + n) * F);
      k.matmul({ c: out, a: xeAll.subarray(s * H, (s + n) * H), b: this.W(w, e), m: n, n: F, k: H });
      if (fc1.biases[i]) k.biasAdd(out, this.W(fc1.biases[i], e), n, F);
    }));
    // Padding rows hold zeros (or the bias's activation): no GEMM reads or writes them further.
    if (act.fn === 'gelu') k.gelu(a, fcOut[0]);
    else if (act.fn === 'squared-relu') k.squaredRelu(a, fcOut[0]);
    else k.swiglu(a, fcOut[0], fcOut[1]);
    this.each(segments, (e, s, n) => k.matmul({ c: yeAll.subarray(s * H, (s + n) * H), a: a.subarray(s * F, (s + n) * F), b: this.W(fc2.weights[0], e), m: n, n: H, k: F }));
    let ye = yeAll;
    if (this.sp) {
      ye = scratch.take(cap * H);
      await fl.reduceScatter(yeAll, ye, this.site(exit.point, recompute));
    } else {
      await fl.allReduce(yeAll.subarray(0, r.own.total * H), this.site(exit.point, recompute));
    }
    for (const bias of exit.biases) this.each([r.own], (e, s, n) => k.biasAdd(ye.subarray(s * H, (s + n) * H), this.W(bias, e), n, H));
    // Combine: back to the source ranks, then token order, then the weighted sum.
    this.regroup(k, r, ye, recvd, H, true);
    await k.run();
    await this.exchange(recvd, r.recvRows, xs, r.sendRows, H);
    const yc = scratch.take(copies * H);
    k.moeScatterRows(yc, xs, sendPos, tokens, K, H);
    const out = scratch.take(tokens * H);
    k.moeCombine(out, yc, probs, null, tokens, K, H);
    await k.run(); // the buffers given back below are free only once the kernels reading them have run
    scratch.give([xs, recvd, yeAll, ye, ...(this.sp ? [xeAll] : [])]);
    // With SP the experts' input is kept as this rank's rows and gathered again in backward.
    const saved: Record<string, Float32Array> = {
      [probsName]: probs, [indexName]: index, [COUNTS]: recvCounts, [fc1.inputs[0]]: xe, [fc2.inputs[0]]: a, [this.ops.sum.inputs[0]]: yc,
    };
    if (tpCounts) saved[TP_COUNTS] = tpCounts;
    fc1.outputs.forEach((t, i) => (saved[t] = fcOut[i]));
    return { out, saved };
  }

  /**
   * From the gradient of the output [tokens, hidden]: the gradients of the router's logits and of
   * h2 (fresh scratch buffers) and, accumulated into the store, of the local experts' weights.
   */
  async backward(fl: Flow, saved: Readonly<Record<string, Float32Array | unknown>>, dOut: Float32Array, tokens: number): Promise<{ dLogits: Float32Array; dH2: Float32Array }> {
    const { scratch } = this.o;
    const { fc1, act, fc2, exit, entry, gate } = this.ops;
    const K = this.topK, E = this.experts, H = this.hidden, F = this.ffn, copies = tokens * K;
    const val = (t: string): Float32Array => {
      const v = saved[t];
      if (!(v instanceof Float32Array)) throw new Error(`layer ${this.o.index}: the mixture of experts' backward reads ${t}, which the forward did not keep`);
      return v;
    };
    const probs = val(gate.outputs[0]), yc = val(this.ops.sum.inputs[0]);
    const index = Int32Array.from(val(gate.outputs[1]));
    const r = this.routing(index, val(COUNTS));
    const { segments, cap } = this.layout(r, copies, this.sp ? val(TP_COUNTS) : null);
    const rows = segments.length * cap;
    const k = fl.k;
    // Weighted sum: the router logits' gradient through the gate (dp_j = <copy, dOut[token]>, then
    // the top-k softmax's), and d(copy) = p * dOut[token] written straight into send order.
    const dLogits = scratch.take(tokens * E);
    const ds = scratch.take(copies * H);
    k.moeGateBackward(dLogits, dOut, yc, probs, index, tokens, E, K, H);
    k.moeGatherRows(ds, dOut, r.sendPos, probs, tokens, K, H);
    await k.run();
    // Combine's backward: the copies' gradients go to the experts' ranks.
    const recvd = scratch.take(cap * H);
    await this.exchange(ds, r.sendRows, recvd, r.recvRows, H);
    const dye = scratch.take(cap * H);
    this.regroup(k, r, recvd, dye, H, false);
    // The exit's backward: its biases over this rank's rows (summed over TP with SP by the runner), then the gather.
    for (const bias of exit.biases) this.each([r.own], (e, s, n) => k.biasGrad(this.G(bias, e), dye.subarray(s * H, (s + n) * H), n, H));
    let dyeAll = dye, xe = val(fc1.inputs[0]);
    if (this.sp) {
      dyeAll = scratch.take(rows * H);
      await fl.allGather(dye, dyeAll, this.site(exit.point, false));
      const gathered = scratch.take(rows * H);
      await fl.allGather(xe, gathered, this.site(entry.point, true));
      xe = gathered;
    }
    const a = val(fc2.inputs[0]);
    const dA = scratch.take(rows * F);
    const dFc = fc1.outputs.map(() => scratch.take(rows * F));
    const dxeAll = scratch.take(rows * H);
    const w2 = fc2.weights[0];
    this.each(segments, (e, s, n) => {
      const dy = dyeAll.subarray(s * H, (s + n) * H);
      k.matmul({ c: this.G(w2, e), a: a.subarray(s * F, (s + n) * F), b: dy, m: F, n: H, k: n, transA: true, accumulate: true });
      k.matmul({ c: dA.subarray(s * F, (s + n) * F), a: dy, b: this.W(w2, e), m: n, n: F, k: H, transB: true });
    });
    const u = (i: number): Float32Array => val(fc1.outputs[i]);
    if (act.fn === 'gelu') k.geluBackward(dFc[0], dA, u(0));
    else if (act.fn === 'squared-relu') k.squaredReluBackward(dFc[0], dA, u(0));
    else k.swigluBackward(dFc[0], dFc[1], dA, u(0), u(1));
    this.each(segments, (e, s, n) => {
      const x = xe.subarray(s * H, (s + n) * H);
      fc1.weights.forEach((w, i) => {
        const dU = dFc[i].subarray(s * F, (s + n) * F);
        k.matmul({ c: this.G(w, e), a: x, b: dU, m: H, n: F, k: n, transA: true, accumulate: true });
        if (fc1.biases[i]) k.biasGrad(this.G(fc1.biases[i], e), dU, n, F);
        k.matmul({ c: dxeAll.subarray(s * H, (s + n) * H), a: dU, b: this.W(w, e), m: n, n: H, k: F, transB: true, accumulate: i > 0 });
      });
    });
    let dxe = dxeAll;
    if (this.sp) {
      dxe = scratch.take(cap * H);
      await fl.reduceScatter(dxeAll, dxe, this.site(entry.point, false));
    } else {
      await fl.allReduce(dxeAll.subarray(0, r.own.total * H), this.site(entry.point, false));
    }
    // Dispatch's backward: the rows' gradients go back to their tokens' ranks and sum per token.
    this.regroup(k, r, dxe, recvd, H, true);
    await k.run();
    await this.exchange(recvd, r.recvRows, ds, r.sendRows, H);
    const dH2 = scratch.take(tokens * H);
    k.moeCombine(dH2, ds, null, r.sendPos, tokens, K, H);
    await k.run(); // the buffers given back below are free only once the kernels reading them have run
    scratch.give([ds, recvd, dye, dA, ...dFc, dxeAll, ...(this.sp ? [dyeAll, xe, dxe] : [])]);
    return { dLogits, dH2 };
  }
}
