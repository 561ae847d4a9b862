// The first stage's embedding: token table (and, with learned positions, the position table).
// Replicated over tensor-parallel ranks (no vocabulary-parallel split yet).
import type { ModelSpec } from '@mist/core';
import { KernelBatch } from '@mist/native';
import { INIT_STD } from './dims';
import type { ParamDecl, ParamStore } from './params';

export const WTE = 'embed.wte';
export const WPE = 'embed.wpe';

export function embeddingParamDecls(model: ModelSpec): ParamDecl[] {
  const decls: ParamDecl[] = [wteDecl(model)];
  if (model.positional === 'learned') {
    decls.push({ name: WPE, shape: [model.maxSeq, model.hidden], shard: 'none', init: { kind: 'normal', std: INIT_STD }, weightDecay: false });
  }
  return decls;
}

/** The token table; a last stage with tied embeddings declares it too (same name, same values). */
export function wteDecl(model: ModelSpec): ParamDecl {
  return { name: WTE, shape: [model.vocab, model.hidden], shard: 'none', init: { kind: 'normal', std: INIT_STD }, weightDecay: true };
}

export class Embedding {
  constructor(private readonly model: ModelSpec, private readonly store: ParamStore) {}

  private shape(rows: number, seq: number): { rows: number; hidden: number; vocab: number; seq: number; maxPos: number } {
    const m = this.model;
    if (m.positional === 'learned' && seq > m.maxSeq) throw new Error(`seq ${seq} exceeds the ${m.maxSeq} learned positions of ${m.name}`);
    return { rows, hidden: m.hidden, vocab: m.vocab, seq, maxPos: m.maxSeq };
  }

  async forward(tokens: Int32Array, seq: number): Promise<Float32Array> {
    const k = new KernelBatch();
    const out = new Float32Array(tokens.length * this.model.hidden);
    const wpe = this.store.has(WPE) ? this.store.param(WPE) : null;
    k.embedding(out, tokens, this.store.param(WTE), wpe, this.shape(tokens.length, seq));
    await k.run();
    return out;
  }

  async backward(tokens: Int32Array, seq: number, dout: Float32Array): Promise<void> {
    const k = new KernelBatch();
    const dwpe = this.store.has(WPE) ? this.store.grad(WPE) : null;
    k.embeddingBackward(this.store.grad(WTE), dwpe, dout, tokens, this.shape(tokens.length, seq));
    await k.run();
  }
}
