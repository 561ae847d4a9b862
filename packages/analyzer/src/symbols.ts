// The symbols the cost model is written in. Model and training dimensions are bound to numbers
// when a stage model is compiled; strategy symbols stay free and are read per candidate.
import { type Expr, sym } from './expr';

/** Model / training dimensions (bound at compile time). */
export const M = {
  /** sequence length */
  s: sym('s'),
  /** hidden size */
  h: sym('h'),
  /** attention heads */
  a: sym('a'),
  /** key/value heads */
  k: sym('k'),
  /** MLP hidden size */
  f: sym('f'),
  /** vocabulary size */
  V: sym('V'),
  /** 1 with flash attention, else 0 */
  fa: sym('fa'),
} as const;

/** Strategy symbols (free in the compiled kernel): one per input column, plus derived flags. */
export const S = {
  L: sym('L'),
  pos: sym('pos'),
  inFlight: sym('inFlight'),
  pp: sym('pp'),
  nodes: sym('nodes'),
  gpn: sym('gpn'),
  b: sym('b'),
  G: sym('G'),
  dp: sym('dp'),
  t: sym('t'),
  sp: sym('sp'),
  ckpt: sym('ckpt'),
  zero: sym('zero'),
  ow: sym('ow'),
  og: sym('og'),
  oo: sym('oo'),
  oa: sym('oa'),
  /** 1 with selective recompute of the attention core (layers not fully checkpointed), else 0 */
  sel: sym('sel'),
  /** 1 with torchtitan's per-op selective checkpointing (layers not fully checkpointed), else 0 */
  osac: sym('osac'),
  /** context-parallel degree */
  cp: sym('cp'),
  /** expert-parallel degree (mixture of experts; 0 in a row reads as 1) */
  ep: sym('ep'),
  // Derived 0/1 flags (computed from the inputs at the top of the kernel).
  /** the stage holds the embedding (first or only) */
  embed: sym('embed'),
  /** the stage holds the final norm, LM head and loss (last or only) */
  head: sym('head'),
  /** the stage receives from a previous stage (middle or last) */
  prev: sym('prev'),
  /** the stage sends to a next stage (first or middle) */
  next: sym('next'),
  z1: sym('z1'),
  z2: sym('z2'),
  z3: sym('z3'),
  /** the stage's mesh spans more than one node (DP traffic crosses the network) */
  multiNode: sym('multiNode'),
  /** pipeline neighbours sit on other nodes (the stage fills whole nodes of a multi-node cluster) */
  p2pInter: sym('p2pInter'),
} as const satisfies Record<string, Expr>;

export type ModelSymbol = keyof typeof M;
export type StrategySymbol = keyof typeof S;
