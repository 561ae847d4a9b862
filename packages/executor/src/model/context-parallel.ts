// Context parallelism's split of a sequence: the sequence of S tokens is cut into 2*cp chunks of
// S/(2cp) and rank r of the CP group holds chunks r and 2cp-1-r, so every rank does the same causal
// attention work (Megatron-Core's load balancing: megatron/core/utils.py get_batch_on_this_cp_rank;
// the Llama 3 paper, Dubey et al. 2024, Sec. 3.3.2, splits the same way). A rank's rows of each
// sequence are its two chunks back to back, so a micro-batch of b sequences is b*S/cp rows; every
// position-dependent op (learned positions, RoPE, the causal mask, the dropout draws) reads the
// rows' positions in the whole sequence from the layout here. With cp = 1 the layout is the whole
// sequence, one piece.

/** A run of a sequence's rows that is contiguous both locally and in the whole sequence. */
export interface SeqPiece {
  /** First local row (within one sequence's rows on this rank). */
  local: number;
  /** Its position in the whole sequence. */
  global: number;
  length: number;
}

export interface SeqLayout {
  /** Rows of each sequence on this rank. */
  seq: number;
  /** Tokens of a whole sequence. */
  globalSeq: number;
  pieces: readonly SeqPiece[];
  /** Position in the whole sequence of each of a sequence's local rows [seq]. */
  positions: Int32Array;
}

function layoutOf(globalSeq: number, pieces: SeqPiece[]): SeqLayout {
  const seq = pieces.reduce((n, p) => n + p.length, 0);
  const positions = new Int32Array(seq);
  for (const p of pieces) for (let i = 0; i < p.length; i++) positions[p.local + i] = p.global + i;
  return { seq, globalSeq, pieces, positions };
}

/** The whole sequence on one rank (cp = 1). */
export function wholeSequence(seq: number): SeqLayout {
  return layoutOf(seq, [{ local: 0, global: 0, length: seq }]);
}

/** Rank `rank`'s rows of a sequence of `globalSeq` tokens split over `cp` ranks. */
export function contextParallelLayout(globalSeq: number, cp: number, rank: number): SeqLayout {
  if (!Number.isInteger(cp) || cp < 1) throw new RangeError(`cp: got ${cp}; allowed: a positive integer`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= cp) throw new RangeError(`cp rank: got ${rank}; allowed: 0..${cp - 1}`);
  if (cp === 1) return wholeSequence(globalSeq);
  if (globalSeq % (2 * cp) !== 0) {
    throw new RangeError(`seq: got ${globalSeq}; context parallelism with cp=${cp} needs a multiple of 2 * cp = ${2 * cp} (2*cp equal chunks)`);
  }
  const c = globalSeq / (2 * cp);
  return layoutOf(globalSeq, [{ local: 0, global: rank * c, length: c }, { local: c, global: (2 * cp - 1 - rank) * c, length: c }]);
}

/** True when the layout is the whole sequence in order (no context parallelism). */
export function isWholeSequence(l: SeqLayout): boolean {
  return l.seq === l.globalSeq;
}

/** A run of local token rows of a micro-batch that is contiguous in the whole batch's rows. */
export interface GlobalRun {
  /** First local row (of the micro-batch's batch * seq rows on this rank). */
  row: number;
  count: number;
  /** Its row in the micro-batch's whole batch * globalSeq rows. */
  globalRow: number;
}

/**
 * Rows [first, first + count) of a micro-batch's local rows cut into runs that are contiguous in
 * the whole batch (where a dropout draw's index comes from).
 */
export function globalRuns(l: SeqLayout, first: number, count: number): GlobalRun[] {
  const out: GlobalRun[] = [];
  let row = first;
  const end = first + count;
  while (row < end) {
    const sample = Math.floor(row / l.seq), i = row - sample * l.seq;
    const piece = l.pieces.find((p) => i >= p.local && i < p.local + p.length) as SeqPiece;
    const n = Math.min(end - row, piece.local + piece.length - i);
    const globalRow = sample * l.globalSeq + piece.global + (i - piece.local);
    const last = out[out.length - 1];
    if (last && last.globalRow + last.count === globalRow) last.count += n;
    else out.push({ row, count: n, globalRow });
    row += n;
  }
  return out;
}

/**
 * The K/V ring of a stage's context-parallel group, as the executor provides it. shift() starts one
 * ring step at once: `send` goes to the next rank (rank + 1 mod cp) while the previous rank's
 * buffers arrive in `recv` (same lengths, same order); wait() is where the caller blocks on it (the
 * runtime counts that time as communication).
 */
export interface CpRing<F = Float32Array> {
  cp: number;
  rank: number;
  shift(send: readonly F[], recv: readonly F[]): Promise<void>;
  wait<T>(p: Promise<T>): Promise<T>;
}
