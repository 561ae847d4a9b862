// The first stage's embedding: token table (and, with learned positions, the position table).
// Under tensor parallelism the token table is split by vocabulary rows (Megatron-LM's
// VocabParallelEmbedding, Shoeybi et al. 2019, section 3): rank r holds rows
// [r V/tp, (r+1) V/tp), looks up the tokens it holds and writes zeros for the others, and an
// all-reduce sums the ranks' rows. The position table is replicated and added after the sum.
// With sequence parallelism the sum is a reduce-scatter: each rank keeps its b*s/tp token rows
// (Megatron-LM's embedding under sequence_parallel), and the backward all-gathers the gradient.
// With model.dropout > 0 the sum is dropped out in training, its 1-byte mask kept for backward.
// Under context parallelism a sequence's rows are the rank's chunks of it (context-parallel.ts):
// the position table and the dropout draws are read at the rows' positions in the whole sequence.
import { embeddingBlock, type ModelSpec, POSITION_TABLE, TOKEN_TABLE } from '@mist/core';
import { maskFloats, type TensorLike } from '@mist/native';
import { cpuDevice } from '../device/cpu-device';
import type { Device } from '../device/device';
import { blockParamDecls } from './block-params';
import { globalRuns, type SeqLayout } from './context-parallel';
import { type DropoutDraw, dropoutStream, sequenceShard } from './dropout';
import type { ParamDecl, ParamStore } from './params';
import type { TpHooks } from './tp-hooks';

export const WTE = TOKEN_TABLE;
export const WPE = POSITION_TABLE;

/** The token table (and learned position table) of core's embedding block. */
export function embeddingParamDecls(model: ModelSpec): ParamDecl[] {
  return blockParamDecls(model, embeddingBlock(model));
}

/** The vocabulary rows [lo, hi) a TP rank holds. */
export function vocabRange(model: ModelSpec, tp: number, tpRank: number): { lo: number; hi: number } {
  if (model.vocab % tp !== 0) throw new Error(`tp=${tp} must divide the vocabulary of ${model.vocab} tokens of ${model.name} (vocab-parallel embedding)`);
  const n = model.vocab / tp;
  return { lo: tpRank * n, hi: (tpRank + 1) * n };
}

/** What the embedding keeps for its backward: the dropout mask (null without dropout). */
export interface EmbeddingSaved<F = Float32Array> {
  mask: F | null;
}

/** F, I: the device's float and int32 tensor types (tokens arrive on the host and are handed to the device). */
export class Embedding<F extends TensorLike = Float32Array, I = Int32Array> {
  private readonly vocab: { lo: number; hi: number };
  private readonly sp: boolean;

  constructor(
    private readonly model: ModelSpec, private readonly store: ParamStore<F>, private readonly tp = 1, private readonly tpRank = 0, private readonly hooks?: TpHooks<F>,
    sequenceParallel = false, private readonly seed = 0, private readonly device: Device<F, I> = cpuDevice as unknown as Device<F, I>,
  ) {
    this.vocab = vocabRange(model, tp, tpRank);
    if (tp > 1 && !hooks) throw new Error(`the embedding with tp=${tp} needs TP hooks for its all-reduce`);
    this.sp = sequenceParallel && tp > 1;
  }

  private siteOf(): { layer: number; point: 'embed-out'; recompute: boolean } {
    return { layer: -1, point: 'embed-out', recompute: false };
  }

  /**
   * The embedding's output rows of this rank (all b*s tokens, or with SP its shard), dropped out
   * when `dropout` is given and the model has dropout.
   */
  async forward(tokens: Int32Array, seq: number, dropout: DropoutDraw | null = null, layout?: SeqLayout): Promise<{ x: F; saved: EmbeddingSaved<F> }> {
    const x = await this.lookup(tokens, seq, layout);
    const p = this.model.dropout;
    if (!dropout || p === 0) return { x, saved: { mask: null } };
    const H = this.model.hidden, rows = x.length / H;
    const first = this.sp ? sequenceShard(tokens.length, this.tp, this.tpRank).first : 0;
    const dev = this.device;
    const mask = dev.zeros(maskFloats(x.length), 'fp32');
    const k = dev.batch();
    const stream = dropoutStream(this.seed, p, dropout, -1, 'embedding.dropout');
    if (!layout) k.dropout(x, mask, x, rows, H, dropout.firstSample * seq + first, stream);
    else {
      for (const r of globalRuns(layout, first, rows)) {
        const e0 = (r.row - first) * H, e1 = e0 + r.count * H;
        if (e0 % 4 !== 0) throw new Error(`not implemented: embedding dropout of a context-parallel run starting at element ${e0} (hidden must be a multiple of 4)`);
        const xs = dev.view(x, e0, e1);
        k.dropout(xs, dev.view(mask, e0 / 4, e0 / 4 + maskFloats(e1 - e0)), xs, r.count, H, dropout.firstSample * layout.globalSeq + r.globalRow, stream);
      }
    }
    await k.run();
    return { x, saved: { mask } };
  }

  private shape(rows: number, seq: number, vocab: number, posOffset = 0): { rows: number; hidden: number; vocab: number; seq: number; maxPos: number; posOffset: number } {
    const m = this.model;
    if (m.positional === 'learned' && posOffset + seq > m.maxSeq) throw new Error(`seq ${posOffset + seq} exceeds the ${m.maxSeq} learned positions of ${m.name}`);
    return { rows, hidden: m.hidden, vocab, seq, maxPos: m.maxSeq, posOffset };
  }

  /** Row runs of a micro-batch's rows with contiguous positions: all rows (no layout), or each piece of each sequence. */
  private runs(rows: number, seq: number, layout: SeqLayout | undefined): Array<{ r0: number; n: number; pos: number }> {
    if (!layout) return [{ r0: 0, n: rows, pos: 0 }];
    const out: Array<{ r0: number; n: number; pos: number }> = [];
    for (let g = 0; g < rows / seq; g++) for (const p of layout.pieces) out.push({ r0: g * seq + p.local, n: p.length, pos: p.global });
    return out;
  }

  private async lookup(tokens: Int32Array, seq: number, layout?: SeqLayout): Promise<F> {
    const H = this.model.hidden, dev = this.device;
    const k = dev.batch();
    const out = dev.zeros(tokens.length * H);
    const wpe = this.store.has(WPE) ? this.store.param(WPE) : null;
    if (this.tp === 1) {
      for (const r of this.runs(tokens.length, seq, layout)) {
        const rs = layout ? r.n : seq;
        k.embedding(dev.view(out, r.r0 * H, (r.r0 + r.n) * H), dev.ints(tokens.subarray(r.r0, r.r0 + r.n)), this.store.param(WTE), wpe, this.shape(r.n, rs, this.model.vocab, r.pos));
      }
      await k.run();
      return out;
    }
    const { lo, hi } = this.vocab;
    k.embeddingShard(out, dev.ints(tokens), this.store.param(WTE), tokens.length, H, this.model.vocab, lo, hi);
    await k.run();
    const hooks = this.hooks as TpHooks<F>;
    let mine0 = 0, x = out;
    if (this.sp) {
      const shard = sequenceShard(tokens.length, this.tp, this.tpRank);
      if (!hooks.reduceScatter) throw new Error('sequence parallelism: the TP hooks have no reduceScatter');
      x = dev.zeros(shard.count * H);
      await hooks.reduceScatter(out, x, this.siteOf());
      mine0 = shard.first;
    } else {
      await hooks.allReduce(out, this.siteOf());
    }
    if (wpe) {
      // Same sum as the kernel's wte[t] + wpe[p] (the other ranks added exact zeros).
      k.positionAdd(x, wpe, layout ? dev.ints(layout.positions) : null, x.length / H, H, seq, mine0);
      await k.run();
    }
    return x;
  }

  /** Gradients of the tables from the gradient of this rank's output rows. */
  async backward(tokens: Int32Array, seq: number, dx: F, saved: EmbeddingSaved<F> = { mask: null }, layout?: SeqLayout): Promise<void> {
    const H = this.model.hidden, dev = this.device;
    const k = dev.batch();
    let dout = dx;
    if (saved.mask) {
      dout = dev.zeros(dx.length);
      k.dropoutBackward(dout, saved.mask, dx, this.model.dropout);
    }
    if (this.sp) {
      const hooks = this.hooks as TpHooks<F>;
      if (!hooks.allGather) throw new Error('sequence parallelism: the TP hooks have no allGather');
      await k.run();
      const whole = dev.zeros(tokens.length * H);
      await hooks.allGather(dout, whole, this.siteOf());
      dout = whole;
    }
    const dwpe = this.store.has(WPE) ? this.store.grad(WPE) : null;
    if (this.tp === 1) {
      for (const r of this.runs(tokens.length, seq, layout)) {
        const rs = layout ? r.n : seq;
        k.embeddingBackward(this.store.grad(WTE), dwpe, dev.view(dout, r.r0 * H, (r.r0 + r.n) * H), dev.ints(tokens.subarray(r.r0, r.r0 + r.n)), this.shape(r.n, rs, this.model.vocab, r.pos));
      }
      await k.run();
      return;
    }
    // dout is the same on every TP rank: each scatters the rows of its own tokens; the replicated
    // position table gets the whole gradient on every rank.
    const { lo, hi } = this.vocab;
    k.embeddingShardBackward(this.store.grad(WTE), dout, dev.ints(tokens), tokens.length, H, this.model.vocab, lo, hi);
    if (dwpe) k.positionGrad(dwpe, dout, layout ? dev.ints(layout.positions) : null, tokens.length, H, seq);
    await k.run();
  }
}
