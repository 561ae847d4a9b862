// The first stage's embedding: token table (and, with learned positions, the position table).
// Under tensor parallelism the token table is split by vocabulary rows (Megatron-LM's
// VocabParallelEmbedding, Shoeybi et al. 2019, section 3): rank r holds rows
// [r V/tp, (r+1) V/tp), looks up the tokens it holds and writes zeros for the others, and an
// all-reduce sums the ranks' rows. The position table is replicated and added after the sum.
import { embeddingBlock, type ModelSpec, POSITION_TABLE, TOKEN_TABLE } from '@mist/core';
import { KernelBatch } from '@mist/native';
import { blockParamDecls } from './block-params';
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

export class Embedding {
  private readonly vocab: { lo: number; hi: number };

  constructor(private readonly model: ModelSpec, private readonly store: ParamStore, private readonly tp = 1, tpRank = 0, private readonly hooks?: TpHooks) {
    this.vocab = vocabRange(model, tp, tpRank);
    if (tp > 1 && !hooks) throw new Error(`the embedding with tp=${tp} needs TP hooks for its all-reduce`);
  }

  private shape(rows: number, seq: number, vocab: number): { rows: number; hidden: number; vocab: number; seq: number; maxPos: number } {
    const m = this.model;
    if (m.positional === 'learned' && seq > m.maxSeq) throw new Error(`seq ${seq} exceeds the ${m.maxSeq} learned positions of ${m.name}`);
    return { rows, hidden: m.hidden, vocab, seq, maxPos: m.maxSeq };
  }

  /** Tokens relative to this rank's rows (0 for the others) and which rows are its own. */
  private local(tokens: Int32Array): { ids: Int32Array; mine: Uint8Array } {
    const { lo, hi } = this.vocab;
    const ids = new Int32Array(tokens.length), mine = new Uint8Array(tokens.length);
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i];
      if (t < 0 || t >= this.model.vocab) throw new Error(`token ${t} lies outside the vocabulary of ${this.model.vocab}`);
      if (t >= lo && t < hi) {
        ids[i] = t - lo;
        mine[i] = 1;
      }
    }
    return { ids, mine };
  }

  async forward(tokens: Int32Array, seq: number): Promise<Float32Array> {
    const H = this.model.hidden;
    const k = new KernelBatch();
    const out = new Float32Array(tokens.length * H);
    const wpe = this.store.has(WPE) ? this.store.param(WPE) : null;
    if (this.tp === 1) {
      k.embedding(out, tokens, this.store.param(WTE), wpe, this.shape(tokens.length, seq, this.model.vocab));
      await k.run();
      return out;
    }
    const { ids, mine } = this.local(tokens);
    k.embedding(out, ids, this.store.param(WTE), null, this.shape(tokens.length, seq, this.vocab.hi - this.vocab.lo));
    await k.run();
    for (let r = 0; r < tokens.length; r++) if (!mine[r]) out.fill(0, r * H, (r + 1) * H);
    await (this.hooks as TpHooks).allReduce(out, { layer: -1, point: 'embed-out', recompute: false });
    if (wpe) {
      // Same sum as the kernel's wte[t] + wpe[p] (the other ranks added exact zeros).
      for (let r = 0; r < tokens.length; r++) {
        const p = (r % seq) * H;
        for (let j = 0; j < H; j++) out[r * H + j] += wpe[p + j];
      }
    }
    return out;
  }

  async backward(tokens: Int32Array, seq: number, dout: Float32Array): Promise<void> {
    const H = this.model.hidden;
    const k = new KernelBatch();
    const dwpe = this.store.has(WPE) ? this.store.grad(WPE) : null;
    if (this.tp === 1) {
      k.embeddingBackward(this.store.grad(WTE), dwpe, dout, tokens, this.shape(tokens.length, seq, this.model.vocab));
      await k.run();
      return;
    }
    // dout is the same on every TP rank: each scatters the rows of its own tokens; the replicated
    // position table gets the whole gradient on every rank.
    const { ids, mine } = this.local(tokens);
    const masked = new Float32Array(dout);
    for (let r = 0; r < tokens.length; r++) if (!mine[r]) masked.fill(0, r * H, (r + 1) * H);
    k.embeddingBackward(this.store.grad(WTE), null, masked, ids, this.shape(tokens.length, seq, this.vocab.hi - this.vocab.lo));
    await k.run();
    if (dwpe) {
      for (let r = 0; r < tokens.length; r++) {
        const p = (r % seq) * H;
        for (let j = 0; j < H; j++) dwpe[p + j] += dout[r * H + j];
      }
    }
  }
}
