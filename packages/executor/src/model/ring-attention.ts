// Ring attention over a stage's context-parallel group (Liu et al. 2023, "Ring Attention with
// Blockwise Transformers"; Megatron-Core / Transformer Engine's cp_comm_type "p2p"). Each rank holds
// the queries, keys and values of its two chunks of every sequence (context-parallel.ts).
// Forward: cp steps; at step t the rank attends its queries to the K/V block of rank r - t (its own
// at t = 0) by global position (native attentionBlock), folding the block into its output by
// log-sum-exp, while the block travels on to rank r + 1 and the next one arrives: two receive
// buffers of K/V (one when cp = 2), where the analyzer's ring (ring-attention.ts) counts two.
// Backward: the K/V blocks go round again; the rank adds its queries' part of a block's dK/dV into
// accumulators that travel with the block (one step behind it) and reach the block's owner after
// the last step; dQ stays on the rank. Two K/V (one when cp = 2) and two dK/dV buffers; the
// analyzer counts four. They come from the layer's scratch, like the other temporaries a layer
// frees before it returns, not from the activation pools.
import type { AttentionBlockShape, AttentionDropout, AttentionShape, KernelOps, TensorLike } from '@mist/native';
import { contextParallelLayout, type CpRing, type SeqLayout } from './context-parallel';
import type { Flow } from './flow';

/** Buffers from and back to the layer's scratch, and the device's form of the position tables. */
export interface RingBuffers<F, I> {
  take(n: number): F;
  give(buffers: F[]): void;
  ints(positions: Int32Array): I;
}

/** The block shape of this rank's queries against the K/V block of rank `owner`. */
function blockShape<F, I>(s: AttentionShape, own: SeqLayout, ring: CpRing<F>, owner: number, bufs: RingBuffers<F, I>): AttentionBlockShape<I> {
  const kv = contextParallelLayout(own.globalSeq, ring.cp, owner);
  const d: AttentionDropout | undefined = s.dropout;
  return {
    batch: s.batch, qSeq: own.seq, kSeq: kv.seq, heads: s.heads, kvHeads: s.kvHeads, headDim: s.headDim,
    qPos: bufs.ints(own.positions), kPos: bufs.ints(kv.positions), scale: s.scale, ...(d ? { dropout: { ...d, seqTotal: own.globalSeq } } : {}),
  };
}

/** Starts a ring step; a failure surfaces where the caller waits on it. */
function started<F>(ring: CpRing<F>, send: F[], recv: F[]): Promise<void> {
  const p = ring.shift(send, recv);
  p.catch(() => undefined);
  return p;
}

/**
 * out, lse of the rank's queries q against every rank's keys k and values v (the rank's own
 * given). The flow's recorded kernels run first (they write q, k, v).
 */
export async function ringAttentionForward<F extends TensorLike, I>(
  fl: Flow<F, I>, ring: CpRing<F>, bufs: RingBuffers<F, I>, out: F, lse: F, q: F, k: F, v: F, s: AttentionShape, layout: SeqLayout,
): Promise<void> {
  await fl.end();
  const { cp, rank } = ring;
  const pairs = Array.from({ length: Math.min(cp - 1, 2) }, () => [bufs.take(k.length), bufs.take(v.length)]);
  let cur = [k, v];
  for (let t = 0; t < cp; t++) {
    const owner = (rank - t + cp) % cp;
    const next = t < cp - 1 ? pairs[t % 2] : null;
    const x = next ? started(ring, cur, next) : null;
    fl.k.attentionBlock(out, lse, q, cur[0], cur[1], blockShape(s, layout, ring, owner, bufs), t > 0);
    await fl.end();
    if (x) await ring.wait(x);
    if (next) cur = next;
  }
  bufs.give(pairs.flat());
}

/**
 * dq, dk, dv (written) of the ring attention from dout and the forward's q, k, v, out, lse. The
 * flow's recorded kernels run first (they write dout).
 */
export async function ringAttentionBackward<F extends TensorLike, I>(
  fl: Flow<F, I>, ring: CpRing<F>, bufs: RingBuffers<F, I>, dq: F, dk: F, dv: F, dout: F, q: F, k: F, v: F, out: F, lse: F,
  s: AttentionShape, layout: SeqLayout,
): Promise<void> {
  const kk: KernelOps<F, I> = fl.k;
  for (const g of [dq, dk, dv]) kk.fill(g, 0);
  await fl.end();
  const { cp, rank } = ring;
  const pair = (): F[] => [bufs.take(k.length), bufs.take(v.length)];
  const kvPairs = Array.from({ length: Math.min(cp - 1, 2) }, pair);
  const accPairs = Array.from({ length: cp > 1 ? 2 : 0 }, pair);
  let cur = [k, v];
  for (let t = 0; t < cp; t++) {
    const owner = (rank - t + cp) % cp;
    const next = t < cp - 1 ? kvPairs[t % 2] : null;
    const x = next ? started(ring, cur, next) : null;
    // The gradients of block t: the rank's own (t = 0), fresh accumulators (t = 1), or those the
    // previous rank passed on with this block.
    const acc = t === 0 ? [dk, dv] : accPairs[(t - 1) % 2];
    if (t === 1) for (const a of acc) kk.fill(a, 0);
    kk.attentionBlockBackward(dq, acc[0], acc[1], dout, q, cur[0], cur[1], out, lse, blockShape(s, layout, ring, owner, bufs));
    await fl.end();
    if (x) await ring.wait(x);
    if (t > 0) {
      // The accumulators go one rank on; after the last step they are the owner's, and this
      // rank receives its own from the previous rank.
      const recv = accPairs[t % 2];
      await ring.wait(started(ring, acc, recv));
      if (t === cp - 1) {
        kk.accumulate(dk, recv[0]);
        kk.accumulate(dv, recv[1]);
      }
    }
    if (next) cur = next;
  }
  await fl.end();
  bufs.give([...kvPairs.flat(), ...accPairs.flat()]);
}
