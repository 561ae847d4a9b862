// Typed wrappers of the native fp32 kernels. Every method documents its shapes (row-major) and
// whether it writes (=) or accumulates (+=) its outputs. Parameter gradients always accumulate, so
// micro-batches and tied weights add up; activation gradients are written unless the method says so.
//
// KernelOps has three implementations with the same methods: `kernels` (ImmediateKernels) runs each
// call at once on the calling thread plus the addon's thread pool; KernelBatch records calls and
// runs them in order off the JavaScript thread with `await batch.run()`; CudaKernels (cuda/) queues
// them on the GPU's compute stream, over device tensors. The native side checks every buffer's
// length against the shapes before writing.

export interface MatmulArgs<F = Float32Array> {
  /** Output [m, n]. */
  c: F;
  /** [m, k], or [k, m] when transA. */
  a: F;
  /** [k, n], or [n, k] when transB. */
  b: F;
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  /** c += alpha * op(a) op(b) instead of c = alpha * op(a) op(b). */
  accumulate?: boolean;
  alpha?: number;
}

export interface AttentionShape {
  batch: number;
  seq: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Score scale; default 1 / sqrt(headDim). */
  scale?: number;
  /** Dropout on the probabilities, regenerated in the backward (pass the same to both). */
  dropout?: AttentionDropout;
}

/** A dropout stream: probability p in [0, 1) and a 64-bit key as two unsigned 32-bit halves. */
export interface DropoutStream {
  p: number;
  keyHi: number;
  keyLo: number;
}

/** Where a rank's attention sits in the whole batch: element (g, H, i, j) draws ((g * totalHeads + H) * seq + i) * seq + j. */
export interface AttentionDropout extends DropoutStream {
  /** Global index of the first sample of this call's batch. */
  sampleOffset: number;
  /** Global index of this rank's first head, and the model's heads. */
  headOffset: number;
  totalHeads: number;
}

/** Bytes of a dropout mask of n elements, packed 4 per float: allocate masks as Float32Array(maskFloats(n)). */
export function maskFloats(n: number): number {
  return Math.ceil(n / 4);
}

export interface AdamWArgs<F = Float32Array> {
  param: F;
  grad: F;
  m: F;
  v: F;
  /** 1-based step count (bias correction). */
  step: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Multiplies the gradient first (global-norm clipping factor, loss scaling). */
  gradScale?: number;
  /**
   * Mixed precision (the CUDA kernel only): receives the updated parameter in the compute dtype,
   * while `param` holds the fp32 master weights.
   */
  copy?: F;
}

export interface EmbeddingShape {
  rows: number;
  hidden: number;
  vocab: number;
  /** Sequence length: row r has position posOffset + r % seq. */
  seq: number;
  /** Rows of the position table. */
  maxPos: number;
  posOffset?: number;
}

/** What a kernel buffer must offer the wrappers: its element count (Float32Array, a device tensor). */
export interface TensorLike {
  readonly length: number;
}

const b01 = (v: boolean | undefined): number => (v ? 1 : 0);

/**
 * One key/value block of ring attention (context parallelism, ring_attention.cc): queries and keys
 * carry their positions in the whole sequence (the same for every sequence of the batch), and key j
 * is visible to query i when kPos[j] <= qPos[i].
 */
export interface AttentionBlockShape<I = Int32Array> {
  batch: number;
  /** Rows per sequence of q/out and of k/v. */
  qSeq: number;
  kSeq: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Position of each query row of a sequence [qSeq], and of each key row [kSeq]. */
  qPos: I;
  kPos: I;
  /** Score scale; default 1 / sqrt(headDim). */
  scale?: number;
  /** Dropout on the probabilities: draws as attention() over sequences of seqTotal tokens. */
  dropout?: AttentionDropout & { seqTotal: number };
}

const coreInts = (s: AttentionShape): number[] => [s.batch, s.seq, s.heads, s.kvHeads, s.headDim];
const coreScale = (s: AttentionShape): number => s.scale ?? 1 / Math.sqrt(s.headDim);

function attentionBlockParams(s: AttentionBlockShape<unknown>, merge: boolean): [number[], number[]] {
  const ints = [s.batch, s.qSeq, s.kSeq, s.heads, s.kvHeads, s.headDim, b01(merge)];
  const scale = s.scale ?? 1 / Math.sqrt(s.headDim);
  const d = s.dropout;
  if (!d || d.p === 0) return [ints, [scale]];
  return [[...ints, d.keyHi, d.keyLo, d.sampleOffset, d.headOffset, d.totalHeads, d.seqTotal], [scale, d.p]];
}

function attentionParams(s: AttentionShape): [number[], number[]] {
  const ints = [s.batch, s.seq, s.heads, s.kvHeads, s.headDim];
  const d = s.dropout;
  if (!d || d.p === 0) return [ints, s.scale === undefined ? [] : [s.scale]];
  return [[...ints, d.keyHi, d.keyLo, d.sampleOffset, d.headOffset, d.totalHeads], [s.scale ?? 1 / Math.sqrt(s.headDim), d.p]];
}

/**
 * The kernels' typed wrappers over any buffer type: F for float tensors (Float32Array on the CPU, a
 * device tensor on CUDA), I for int32 tensors (tokens, targets, positions).
 */
export abstract class KernelOps<F extends TensorLike = Float32Array, I = Int32Array> {
  protected abstract emit(op: string, buffers: Array<F | I | null>, ints: number[], floats: number[]): void;

  /** c[m,n] (+)= alpha * op(a)[m,k] * op(b)[k,n]. */
  matmul(x: MatmulArgs<F>): void {
    this.emit('matmul', [x.c, x.a, x.b], [x.m, x.n, x.k, b01(x.transA), b01(x.transB), b01(x.accumulate)], [x.alpha ?? 1]);
  }

  /** out[n] = a + b (out may be a or b). n defaults to out.length. */
  add(out: F, a: F, b: F, n = out.length): void {
    this.emit('add', [out, a, b], [n], []);
  }

  /** dst[n] += alpha * src. */
  accumulate(dst: F, src: F, alpha = 1, n = dst.length): void {
    this.emit('accumulate', [dst, src], [n], [alpha]);
  }

  copy(dst: F, src: F, n = dst.length): void {
    this.emit('copy', [dst, src], [n], []);
  }

  scale(x: F, alpha: number, n = x.length): void {
    this.emit('scale', [x], [n], [alpha]);
  }

  fill(x: F, value: number, n = x.length): void {
    this.emit('fill', [x], [n], [value]);
  }

  /** y[rows, cols] += bias[cols] (broadcast over rows). */
  biasAdd(y: F, bias: F, rows: number, cols: number): void {
    this.emit('biasAdd', [y, bias], [rows, cols], []);
  }

  /** dbias[cols] += sum over rows of dy[rows, cols]. */
  biasGrad(dbias: F, dy: F, rows: number, cols: number): void {
    this.emit('biasGrad', [dbias, dy], [rows, cols], []);
  }

  /** y = gelu(x), tanh form; y may be x. */
  gelu(y: F, x: F, n = y.length): void {
    this.emit('gelu', [y, x], [n], []);
  }

  /** dx = dy * gelu'(x); dx may be dy. */
  geluBackward(dx: F, dy: F, x: F, n = dx.length): void {
    this.emit('geluBackward', [dx, dy, x], [n], []);
  }

  /** y = relu(x)^2 (squared ReLU); y may be x. */
  squaredRelu(y: F, x: F, n = y.length): void {
    this.emit('squaredRelu', [y, x], [n], []);
  }

  /** dx = dy * 2 relu(x) (written); dx may be dy. */
  squaredReluBackward(dx: F, dy: F, x: F, n = dx.length): void {
    this.emit('squaredReluBackward', [dx, dy, x], [n], []);
  }

  /** y = silu(gate) * up, all [n]. */
  swiglu(y: F, gate: F, up: F, n = y.length): void {
    this.emit('swiglu', [y, gate, up], [n], []);
  }

  /** dgate, dup (written) from dy, gate, up. */
  swigluBackward(dgate: F, dup: F, dy: F, gate: F, up: F, n = dy.length): void {
    this.emit('swigluBackward', [dgate, dup, dy, gate, up], [n], []);
  }

  /** y[rows, cols] = LayerNorm(x) * gamma + beta; saves mean[rows], rstd[rows]. beta may be null. */
  layerNorm(
    y: F, mean: F, rstd: F, x: F, gamma: F,
    beta: F | null, rows: number, cols: number, eps: number,
  ): void {
    this.emit('layerNorm', [y, mean, rstd, x, gamma, beta], [rows, cols], [eps]);
  }

  /** dx (written, or added when accumulateDx), dgamma += , dbeta += (may be null). */
  layerNormBackward(
    dx: F, dgamma: F, dbeta: F | null, dy: F, x: F,
    gamma: F, mean: F, rstd: F, rows: number, cols: number, accumulateDx = false,
  ): void {
    this.emit('layerNormBackward', [dx, dgamma, dbeta, dy, x, gamma, mean, rstd], [rows, cols, b01(accumulateDx)], []);
  }

  /** y[rows, cols] = x * rstd * gamma, rstd = 1 / sqrt(mean(x^2) + eps); saves rstd[rows]. */
  rmsNorm(y: F, rstd: F, x: F, gamma: F, rows: number, cols: number, eps: number): void {
    this.emit('rmsNorm', [y, rstd, x, gamma], [rows, cols], [eps]);
  }

  /** dx (written, or added when accumulateDx), dgamma += . */
  rmsNormBackward(
    dx: F, dgamma: F, dy: F, x: F, gamma: F, rstd: F,
    rows: number, cols: number, accumulateDx = false,
  ): void {
    this.emit('rmsNormBackward', [dx, dgamma, dy, x, gamma, rstd], [rows, cols, b01(accumulateDx)], []);
  }

  /**
   * Rotary embedding of x [rows = batch*seq, heads, headDim] into out (may be x); row r has
   * position posOffset + r % seq; pairs (i, i + headDim/2) rotate by pos * theta^(-2i/headDim).
   */
  rope(out: F, x: F, rows: number, seq: number, heads: number, headDim: number, theta = 10000, posOffset = 0): void {
    this.emit('rope', [out, x], [rows, seq, heads, headDim, posOffset], [theta]);
  }

  /** dx = inverse rotation of dy (same shapes as rope). */
  ropeBackward(dx: F, dy: F, rows: number, seq: number, heads: number, headDim: number, theta = 10000, posOffset = 0): void {
    this.emit('ropeBackward', [dx, dy], [rows, seq, heads, headDim, posOffset], [theta]);
  }

  /**
   * Causal grouped-query attention. q, out: [batch*seq, heads*headDim]; k, v: [batch*seq,
   * kvHeads*headDim]; saves lse [batch, heads, seq] for the backward.
   */
  attention(out: F, lse: F, q: F, k: F, v: F, s: AttentionShape): void {
    this.emit('attention', [out, lse, q, k, v], ...attentionParams(s));
  }

  /** dq, dk, dv (written) from dout and the forward's q, k, v, out, lse. */
  attentionBackward(
    dq: F, dk: F, dv: F, dout: F, q: F, k: F,
    v: F, out: F, lse: F, s: AttentionShape,
  ): void {
    this.emit('attentionBackward', [dq, dk, dv, dout, q, k, v, out, lse], ...attentionParams(s));
  }

  /**
   * Attention of q against one key/value block by position (AttentionBlockShape). merge false: out
   * and lse (= -inf where a row sees no key) are written; true: the block is folded into them by
   * their log-sum-exp, so the blocks of a ring add up to the attention over all keys.
   */
  attentionBlock(out: F, lse: F, q: F, k: F, v: F, s: AttentionBlockShape<I>, merge: boolean): void {
    this.emit('attentionBlock', [out, lse, q, k, v, s.qPos, s.kPos], ...attentionBlockParams(s, merge));
  }

  /** dq, dk, dv (+=) of one key/value block, from dout and the merged forward's out and lse. */
  attentionBlockBackward(
    dq: F, dk: F, dv: F, dout: F, q: F, k: F,
    v: F, out: F, lse: F, s: AttentionBlockShape<I>,
  ): void {
    this.emit('attentionBlockBackward', [dq, dk, dv, dout, q, k, v, out, lse, s.qPos, s.kPos], ...attentionBlockParams(s, false));
  }

  /**
   * Unfused attention core (unfused_attention.cc; shapes as attention(), scores and probs
   * [batch, heads, seq, seq]): scores (=) scale * q k^T for key j <= query i, 0 above.
   */
  attentionScores(scores: F, q: F, k: F, s: AttentionShape): void {
    this.emit('attentionScores', [scores, q, k], coreInts(s), [coreScale(s)]);
  }

  /** dq (=) scale * dscores k. */
  attentionScoresGradQ(dq: F, dscores: F, k: F, s: AttentionShape): void {
    this.emit('attentionScoresGradQ', [dq, dscores, k], coreInts(s), [coreScale(s)]);
  }

  /** dk (=) scale * dscores^T q, summed over each key/value head's query heads. */
  attentionScoresGradK(dk: F, dscores: F, q: F, s: AttentionShape): void {
    this.emit('attentionScoresGradK', [dk, dscores, q], coreInts(s), [coreScale(s)]);
  }

  /** probs[rows, seq] (=) causal softmax of scores (row r is query r % seq; 0 above the diagonal); probs may be scores. */
  causalSoftmax(probs: F, scores: F, rows: number, seq: number): void {
    this.emit('causalSoftmax', [probs, scores], [rows, seq], []);
  }

  /** dscores (=) probs * (dprobs - rowsum(probs * dprobs)); dscores may be dprobs. */
  causalSoftmaxBackward(dscores: F, dprobs: F, probs: F, rows: number, seq: number): void {
    this.emit('causalSoftmaxBackward', [dscores, dprobs, probs], [rows, seq], []);
  }

  /** out (=) probs * keep / (1 - p), mask (maskFloats of the scores' size) = keep; draws as attention()'s dropout. */
  attentionProbsDropout(out: F, mask: F, probs: F, s: AttentionShape & { dropout: AttentionDropout }): void {
    const d = s.dropout;
    this.emit('attentionProbsDropout', [out, mask, probs], [...coreInts(s), d.keyHi, d.keyLo, d.sampleOffset, d.headOffset, d.totalHeads], [d.p]);
  }

  /** out [batch * seq, heads * headDim] (=) probs v. */
  attentionValues(out: F, probs: F, v: F, s: AttentionShape): void {
    this.emit('attentionValues', [out, probs, v], coreInts(s), []);
  }

  /** dprobs (=) dout v^T (0 above the diagonal). */
  attentionValuesGradProbs(dprobs: F, dout: F, v: F, s: AttentionShape): void {
    this.emit('attentionValuesGradProbs', [dprobs, dout, v], coreInts(s), []);
  }

  /** dv (=) probs^T dout, summed over each key/value head's query heads. */
  attentionValuesGradV(dv: F, dout: F, probs: F, s: AttentionShape): void {
    this.emit('attentionValuesGradV', [dv, dout, probs], coreInts(s), []);
  }

  /**
   * out[rows, cols] = x * keep / (1 - p) (out may be x); mask (maskFloats(rows * cols) floats) = keep.
   * Element (r, c) draws index (rowOffset + r) * cols + c of the stream.
   */
  dropout(out: F, mask: F, x: F, rows: number, cols: number, rowOffset: number, d: DropoutStream): void {
    this.emit('dropout', [out, mask, x], [rows, cols, rowOffset, d.keyHi, d.keyLo], [d.p]);
  }

  /** out = stream + dropout(branch) (Megatron-LM's fused residual), mask and draws as dropout(). */
  dropoutAdd(out: F, mask: F, stream: F, branch: F, rows: number, cols: number, rowOffset: number, d: DropoutStream): void {
    this.emit('dropoutAdd', [out, mask, stream, branch], [rows, cols, rowOffset, d.keyHi, d.keyLo], [d.p]);
  }

  /** dx[n] = dy * mask / (1 - p) (dx may be dy). */
  dropoutBackward(dx: F, mask: F, dy: F, p: number, n = dx.length): void {
    this.emit('dropoutBackward', [dx, mask, dy], [n], [p]);
  }

  /** out[rows, hidden] = wte[tokens[r]] + wpe[posOffset + r % seq] (wpe may be null). */
  embedding(out: F, tokens: I, wte: F, wpe: F | null, s: EmbeddingShape): void {
    this.emit('embedding', [out, tokens, wte, wpe], [s.rows, s.hidden, s.vocab, s.seq, s.maxPos, s.posOffset ?? 0], []);
  }

  /** dwte += scatter of dout by token, dwpe += by position (may be null). */
  embeddingBackward(dwte: F, dwpe: F | null, dout: F, tokens: I, s: EmbeddingShape): void {
    this.emit('embeddingBackward', [dwte, dwpe, dout, tokens], [s.rows, s.hidden, s.vocab, s.seq, s.maxPos, s.posOffset ?? 0], []);
  }

  /**
   * Softmax cross-entropy of logits [rows, vocab] against targets [rows] (-1 = ignore): lossRows[r]
   * = logsumexp(logits[r]) - logits[r, t]. With dlogits (may be logits itself) also writes
   * (softmax - onehot) * gradScale, without keeping the probabilities.
   */
  crossEntropy(lossRows: F, logits: F, targets: I, dlogits: F | null, rows: number, vocab: number, gradScale = 1): void {
    this.emit('crossEntropy', [lossRows, logits, targets, dlogits], [rows, vocab], [gradScale]);
  }

  /** One AdamW step with decoupled weight decay on param (in place), moments m and v. */
  adamw(x: AdamWArgs<F>): void {
    this.emit('adamw', x.copy ? [x.param, x.grad, x.m, x.v, x.copy] : [x.param, x.grad, x.m, x.v], [x.param.length, x.step],
      [x.lr, x.beta1, x.beta2, x.eps, x.weightDecay, x.gradScale ?? 1]);
  }

  /**
   * Vocabulary-parallel embedding (this rank holds table rows [lo, hi) of a vocab-row table):
   * out[r] = wte[tokens[r] - lo] for a token in [lo, hi), 0 for the others; a token outside [0, vocab) throws.
   */
  embeddingShard(out: F, tokens: I, wte: F, rows: number, hidden: number, vocab: number, lo: number, hi: number): void {
    this.emit('embeddingShard', [out, tokens, wte], [rows, hidden, vocab, lo, hi], []);
  }

  /** dwte[t - lo] += dout[r] for every row r whose token t lies in [lo, hi), rows in order. */
  embeddingShardBackward(dwte: F, dout: F, tokens: I, rows: number, hidden: number, vocab: number, lo: number, hi: number): void {
    this.emit('embeddingShardBackward', [dwte, dout, tokens], [rows, hidden, vocab, lo, hi], []);
  }

  /**
   * x[r] += wpe[pos(r)] for rows [hidden] (x may hold a shard of a micro-batch's rows): row r is row
   * first + r of the micro-batch, pos(r) = positions[(first + r) % seq], or (first + r) % seq when
   * positions is null.
   */
  positionAdd(x: F, wpe: F, positions: I | null, rows: number, hidden: number, seq: number, first = 0): void {
    this.emit('positionAdd', [x, wpe, positions], [rows, hidden, seq, first], []);
  }

  /** dwpe[pos(r)] += dout[r] (pos as positionAdd), rows in order. */
  positionGrad(dwpe: F, dout: F, positions: I | null, rows: number, hidden: number, seq: number, first = 0): void {
    this.emit('positionGrad', [dwpe, dout, positions], [rows, hidden, seq, first], []);
  }

  /** Vocabulary-parallel cross-entropy, step 1: max[r] (=) largest of this rank's logits [rows, vocabLocal]. */
  crossEntropyShardMax(max: F, logits: F, rows: number, vocabLocal: number): void {
    this.emit('crossEntropyShardMax', [max, logits], [rows, vocabLocal], []);
  }

  /**
   * Step 2, after max is all-reduced (max) over the ranks: sums[r] (=) sum of exp(logit - max[r])
   * over this rank's columns (in double), sums[rows + r] (=) the target's logit when this rank holds
   * column t - lo, else 0 (both all-reduced (sum) next).
   */
  crossEntropyShardSums(sums: F, logits: F, max: F, targets: I, rows: number, vocabLocal: number, lo: number): void {
    this.emit('crossEntropyShardSums', [sums, logits, max, targets], [rows, vocabLocal, lo], []);
  }

  /**
   * Step 3: lossRows[r] (=) log(sums[r]) + max[r] - sums[rows + r] (0 for a target of -1), and with
   * dlogits (may be logits) (softmax - onehot) * gradScale over this rank's columns.
   */
  crossEntropyShardFinish(
    lossRows: F, dlogits: F | null, logits: F, max: F, sums: F, targets: I, rows: number, vocabLocal: number, lo: number, gradScale = 1,
  ): void {
    this.emit('crossEntropyShardFinish', [lossRows, dlogits, logits, max, sums, targets], [rows, vocabLocal, lo], [gradScale]);
  }

  /** out[0] = sum of x^2 (accumulated in double). */
  sumSquares(out: F, x: F, n = x.length): void {
    this.emit('sumSquares', [out, x], [n], []);
  }

  // Mixture-of-experts routing and data movement (moe_routing.cc). A token's copy j is c = n * topK + j;
  // the permuted (expert-sorted) side always holds tokens * topK rows, and pos[c] is copy c's row there.

  /**
   * Top-k gate: index[n, j] (=) token n's j-th largest router logit's expert (ties to the lower
   * index), probs[n, j] (=) the softmax over those topK logits (in double); logits [tokens, experts],
   * index and probs [tokens, topK].
   */
  moeTopK(index: I, probs: F, logits: F, tokens: number, experts: number, topK: number): void {
    this.emit('moeTopK', [index, probs, logits], [tokens, experts, topK], []);
  }

  /** Dispatch copy: dst[pos[c]] (=) src[floor(c / topK)] (times probs[c] when given), rows of hidden; pos a permutation. */
  moeGatherRows(dst: F, src: F, pos: I, probs: F | null, tokens: number, topK: number, hidden: number): void {
    this.emit('moeGatherRows', [dst, src, pos, probs], [tokens, topK, hidden], []);
  }

  /** Its reverse, back to token order: dst[c] (=) src[pos[c]], rows of hidden. */
  moeScatterRows(dst: F, src: F, pos: I, tokens: number, topK: number, hidden: number): void {
    this.emit('moeScatterRows', [dst, src, pos], [tokens, topK, hidden], []);
  }

  /**
   * Weighted sum of a token's copies: out[n] += probs[c] * src[pos[c]] for j = 0..topK-1 in order,
   * each term added in double and rounded to float; probs null weighs 1, pos null reads row c.
   */
  moeCombine(out: F, src: F, probs: F | null, pos: I | null, tokens: number, topK: number, hidden: number): void {
    this.emit('moeCombine', [out, src, probs, pos], [tokens, topK, hidden], []);
  }

  /**
   * The router logits' gradient (=) through the weighted sum and the top-k softmax, in double:
   * dp_j = <yc[c], dOut[n]>, dLogits[n, index[c]] = probs[c] (dp_j - sum_i probs[n, i] dp_i), 0 for
   * the experts not chosen; dLogits [tokens, experts], yc [tokens * topK, hidden].
   */
  moeGateBackward(dLogits: F, dOut: F, yc: F, probs: F, index: I, tokens: number, experts: number, topK: number, hidden: number): void {
    this.emit('moeGateBackward', [dLogits, dOut, yc, probs, index], [tokens, experts, topK, hidden], []);
  }
}
