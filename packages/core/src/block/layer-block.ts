// One transformer layer of a gpt, llama or falcon model as a block description, per tensor-parallel
// rank, sharded Megatron-style (Shoeybi et al. 2019):
//   attention: Wq, Wk, Wv column-parallel (whole heads per rank), Wo row-parallel
//   MLP:       W1 (gelu, squared ReLU) or Wgate, Wup (swiglu) column-parallel, W2 / Wdown row-parallel
// Mixture of experts (model.moe; Megatron-Core's MoELayer with the all-to-all token dispatcher and
// expert tensor parallelism = tp): the MLP becomes a router (h -> experts, replicated, on the
// rank's tokens), its top-k gate, the dispatch all-to-all over the ep ranks of each token's topK
// copies, the experts' MLPs (the same TP region as the dense MLP: all-gather / reduce-scatter with
// SP) on the tokens they receive, the combine all-to-all back and the probability-weighted sum.
// Expert weights are stacked per expert (BlockWeight.experts). Routing is assumed balanced with
// capacity factor 1: every rank's experts receive b*s*topK token rows per micro-batch (each of the
// ep ranks sends b*s*topK/ep of its rows to each), so the experts' GEMMs are those of a dense MLP
// on topK times the tokens, whatever ep is.
// Sequential block (gpt, llama; pre-norm, Radford et al. 2019 / Touvron et al. 2023):
//   x1 = x + Attn(N1(x)),  y = x1 + MLP(N2(x1))
// Parallel block (falcon, `parallelAttention`; Wang & Komatsuzaki 2021, GPT-J):
//   y = x + Attn(N1(x)) + MLP(N1(x))  (or N2(x) with `parallelAttentionTwoNorms`); the two branches
//   are summed before their one tensor-parallel reduction.
// Saved tensors follow Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
// Transformer Models", Sec. 4 (each op keeps its inputs; with sequence parallelism the norms' and
// residuals' tensors hold b*s/t tokens); flash attention (Dao 2022) keeps q, k, v and its fp32
// log-sum-exp instead of the s x s scores. With model.dropout > 0 the attention probabilities and the
// residual branches are dropped out (each keeps a 1-byte mask); flash attention regenerates its
// attention mask in backward from the generator's state (Dao 2022, Sec. 3.1), so it keeps none.
// The unfused attention core (scores, softmax, its dropout, values) is marked `selective`: selective
// activation recomputation (Korthikanti et al. 2022, Sec. 5) drops what it keeps and runs it again
// in backward; flash attention already does that inside its kernel, so the flash variant has none.
import type { ModelSpec } from '../model';
import { dadd, dchoose, ddiv, type Dim, dmax, dmul, dnamed, dsym } from './dim';
import type { BlockDescription, BlockOp, BlockSizes, BlockTensor, BlockWeight, TpEntryOp, TpExitOp } from './types';

const [b, s, h, a, k, f, t, sp] = (['b', 's', 'h', 'a', 'k', 'f', 't', 'sp'] as const).map(dsym);

/** The sizes of a layer on one rank (symbolic). */
export function layerSizes(): BlockSizes {
  const tokens = dmul(b, s);
  const headDim = ddiv(h, a);
  const kvHeadsPerRank = dnamed('kvHeadsPerRank', dmax(ddiv(k, t), 1));
  return {
    tokens,
    tokensSp: dnamed('Tsp', dmul(tokens, dchoose(sp, ddiv(1, t), 1))),
    headDim,
    headsPerRank: ddiv(a, t),
    kvHeadsPerRank,
    qWidth: ddiv(h, t),
    kvWidth: dmul(headDim, kvHeadsPerRank),
    ffnPerRank: ddiv(f, t),
  };
}

/** The block description of one transformer layer of `model`. */
export function layerBlock(model: ModelSpec): BlockDescription {
  if (model.positional === 'alibi') throw new Error(`not implemented: positional 'alibi' in the block description (${model.name}); allowed: learned, rope`);
  const z = layerSizes();
  const T = z.tokens, Tsp = z.tokensSp;
  const dropout = model.dropout > 0;
  const swiglu = model.activation === 'swiglu';
  const moe = model.moe;
  if (moe && model.parallelAttention) throw new Error(`not implemented: mixture of experts in a parallel-attention block (${model.name}); allowed: parallelAttention false`);
  // The experts' MLP width (per rank: f/t); the tokens the experts' GEMMs see (topK copies of each).
  const ffn: Dim = moe?.ffnHidden !== undefined ? moe.ffnHidden : f;
  const ffnPerRank = moe ? ddiv(ffn, t) : z.ffnPerRank;
  const Te = moe ? dmul(T, moe.topK) : T;
  const parallel = model.parallelAttention;
  const twoNorms = !parallel || model.parallelAttentionTwoNorms;
  const scores = dmul(b, z.headsPerRank, s, s);
  const fullAct = dmul(T, h);

  const act = (rows: Dim, width: Dim): BlockTensor => ({ rows, width, dtype: 'act' });
  const tensors: Record<string, BlockTensor> = {
    x: act(Tsp, h), h1: act(Tsp, h), q: act(T, z.qWidth), k: act(T, z.kvWidth), v: act(T, z.kvWidth),
    attn: act(T, z.qWidth), lse: { rows: T, width: z.headsPerRank, dtype: 'fp32' },
    scores: act(dmul(b, z.headsPerRank, s), s), probs: act(dmul(b, z.headsPerRank, s), s),
    o: act(T, h), mo: act(T, h), y: act(Tsp, h),
    act: act(Te, ffnPerRank),
  };
  if (dropout) {
    tensors['attn.mask'] = { rows: dmul(b, z.headsPerRank, s), width: s, dtype: 'mask' };
    tensors.pdrop = act(dmul(b, z.headsPerRank, s), s);
  }
  if (swiglu) {
    tensors.gate = act(Te, ffnPerRank);
    tensors.up = act(Te, ffnPerRank);
  } else {
    tensors.u = act(Te, ffnPerRank);
  }
  if (moe) {
    // Router logits and gate (fp32, as Megatron-Core's router computes them), the dispatched token
    // rows (topK per token: the rank's own before the TP gather, all of the region's after), the
    // experts' output rows before and after the combine, and the weighted sum on the rank's tokens.
    tensors['moe.logits'] = { rows: Tsp, width: moe.experts, dtype: 'fp32' };
    tensors['moe.probs'] = { rows: Tsp, width: moe.topK, dtype: 'fp32' };
    tensors['moe.index'] = { rows: Tsp, width: moe.topK, dtype: 'index' };
    tensors['moe.xe'] = act(dmul(Tsp, moe.topK), h);
    tensors['moe.ye'] = act(Te, h);
    tensors['moe.yc'] = act(dmul(Tsp, moe.topK), h);
    tensors['moe.out'] = act(Tsp, h);
  }
  if (twoNorms) tensors.h2 = act(Tsp, h);
  if (parallel) tensors.branches = act(T, h);
  else tensors.x1 = act(Tsp, h);
  const residualMask = (name: string): string[] => {
    if (!dropout) return [];
    tensors[name] = { rows: Tsp, width: h, dtype: 'mask' };
    return [name];
  };

  // ---- weights, in the order of the parameter vector ----
  const q = dmul(a, ddiv(h, a)), kv = dmul(k, ddiv(h, a));
  const matrix = (name: string, rows: Dim, cols: Dim, shard: 'cols' | 'rows', init: 'normal' | 'outputNormal' = 'normal'): BlockWeight =>
    ({ name, shape: [rows, cols], shard, init, decay: true });
  const vector = (name: string, n: Dim, shard: 'cols' | 'none', init: 'ones' | 'zeros'): BlockWeight =>
    ({ name, shape: [n], shard, init, decay: false });
  const normWeights = (p: string): BlockWeight[] => model.norm === 'layernorm'
    ? [vector(`${p}.gamma`, h, 'none', 'ones'), vector(`${p}.beta`, h, 'none', 'zeros')]
    : [vector(`${p}.gamma`, h, 'none', 'ones')];
  const weights: BlockWeight[] = [...normWeights('norm1')];
  if (twoNorms) weights.push(...normWeights('norm2'));
  weights.push(matrix('attn.wq', h, q, 'cols'), matrix('attn.wk', h, kv, 'cols'), matrix('attn.wv', h, kv, 'cols'), matrix('attn.wo', q, h, 'rows', 'outputNormal'));
  if (model.bias) weights.push(vector('attn.bq', q, 'cols', 'zeros'), vector('attn.bk', kv, 'cols', 'zeros'), vector('attn.bv', kv, 'cols', 'zeros'), vector('attn.bo', h, 'none', 'zeros'));
  // A mixture of experts' router (replicated over TP) comes before its experts' stacked MLP weights.
  const p = moe ? 'moe' : 'mlp';
  const stacked = (w: BlockWeight): BlockWeight => (moe ? { ...w, experts: moe.experts } : w);
  if (moe) weights.push({ name: 'moe.router', shape: [h, moe.experts], shard: 'none', init: 'normal', decay: true });
  const mlpIn = swiglu ? [`${p}.wg`, `${p}.wu`] : [`${p}.w1`];
  const mlpOut = swiglu ? `${p}.wd` : `${p}.w2`;
  weights.push(...mlpIn.map((w) => stacked(matrix(w, h, ffn, 'cols'))), stacked(matrix(mlpOut, ffn, h, 'rows', 'outputNormal')));
  const mlpInBias = swiglu ? [`${p}.bg`, `${p}.bu`] : [`${p}.b1`];
  const mlpOutBias = swiglu ? `${p}.bd` : `${p}.b2`;
  if (model.bias) weights.push(...mlpInBias.map((w) => stacked(vector(w, ffn, 'cols', 'zeros'))), stacked(vector(mlpOutBias, h, 'none', 'zeros')));
  const bias = (...names: string[]): string[] => (model.bias ? names : []);

  // ---- ops, in forward order ----
  const norm = (name: string, input: string, output: string, p: string): BlockOp => ({
    name, kind: 'norm', norm: model.norm, gamma: `${p}.gamma`, beta: model.norm === 'layernorm' ? `${p}.beta` : undefined,
    inputs: [input], outputs: [output], saves: [input],
  });
  const entry = (name: string, tensor: string, point: TpEntryOp['point']): BlockOp =>
    ({ name, kind: 'tpEntry', point, elements: fullAct, inputs: [tensor], outputs: [], saves: [] });
  const exit = (name: string, tensor: string, point: TpExitOp['point'], biases: string[]): BlockOp =>
    ({ name, kind: 'tpExit', point, elements: fullAct, biases, inputs: [tensor], outputs: [], saves: [] });
  const mlpInput = twoNorms ? 'h2' : 'h1';
  const attention: BlockOp[] = [
    {
      name: 'attn.qkv', kind: 'linear', weights: ['attn.wq', 'attn.wk', 'attn.wv'], biases: bias('attn.bq', 'attn.bk', 'attn.bv'),
      biasAt: 'gemm', rows: T, inner: h, cols: [z.qWidth, z.kvWidth, z.kvWidth], inputs: ['h1'], outputs: ['q', 'k', 'v'], saves: ['h1'],
    },
  ];
  if (model.positional === 'rope') {
    attention.push({ name: 'attn.rope', kind: 'rope', heads: [z.headsPerRank, z.kvHeadsPerRank], inputs: ['q', 'k'], outputs: ['q', 'k'], saves: [] });
  }
  const rowsPerHead = dmul(b, z.headsPerRank, s);
  const probsOut = dropout ? 'pdrop' : 'probs';
  attention.push(
    { name: 'attn.scores', kind: 'scores', when: 'noFlash', selective: true, rows: rowsPerHead, inner: z.headDim, cols: s, inputs: ['q', 'k'], outputs: ['scores'], saves: ['q', 'k'] },
    { name: 'attn.softmax', kind: 'softmax', when: 'noFlash', selective: true, inputs: ['scores'], outputs: ['probs'], saves: ['probs'] },
  );
  if (dropout) {
    attention.push({ name: 'attn.dropout', kind: 'dropout', when: 'noFlash', selective: true, inputs: ['probs'], outputs: ['pdrop', 'attn.mask'], saves: ['attn.mask'] });
  }
  attention.push(
    { name: 'attn.values', kind: 'values', when: 'noFlash', selective: true, rows: rowsPerHead, inner: s, cols: z.headDim, inputs: [probsOut, 'v'], outputs: ['attn'], saves: [probsOut, 'v'] },
    { name: 'attn.flash', kind: 'attention', when: 'flash', scores, inputs: ['q', 'k', 'v'], outputs: ['attn', 'lse'], saves: ['q', 'k', 'v', 'lse'] },
    {
      name: 'attn.proj', kind: 'linear', weights: ['attn.wo'], biases: bias('attn.bo'), biasAt: 'reduce',
      rows: T, inner: z.qWidth, cols: [h], inputs: ['attn'], outputs: ['o'], saves: ['attn'],
    },
  );
  const fcIn = moe ? 'moe.xe' : mlpInput;
  const fcOut = moe ? 'moe.ye' : 'mo';
  const activation: BlockOp = swiglu
    ? { name: `${p}.swiglu`, kind: 'activation', fn: 'swiglu', inputs: ['gate', 'up'], outputs: ['act'], saves: ['gate', 'up'] }
    : { name: `${p}.${model.activation === 'gelu' ? 'gelu' : 'squared_relu'}`, kind: 'activation', fn: model.activation, inputs: ['u'], outputs: ['act'], saves: ['u'] };
  const mlp: BlockOp[] = [
    {
      name: `${p}.fc1`, kind: 'linear', weights: mlpIn, biases: bias(...mlpInBias), biasAt: 'gemm',
      rows: Te, inner: h, cols: mlpIn.map(() => ffnPerRank), inputs: [fcIn], outputs: swiglu ? ['gate', 'up'] : ['u'], saves: [fcIn],
    },
    activation,
    {
      name: `${p}.fc2`, kind: 'linear', weights: [mlpOut], biases: bias(mlpOutBias), biasAt: 'reduce',
      rows: Te, inner: ffnPerRank, cols: [h], inputs: ['act'], outputs: [fcOut], saves: ['act'],
    },
  ];

  // The mixture-of-experts MLP on the rank's tokens h2 (b*s/t rows with SP): router, gate,
  // dispatch, the experts in the MLP's TP region (topK rows per token), combine, weighted sum.
  const moeMlp = (experts: number, topK: number): BlockOp[] => {
    const sent = dmul(Tsp, topK, h);
    return [
      {
        name: 'moe.router', kind: 'linear', weights: ['moe.router'], biases: [], biasAt: 'gemm',
        rows: Tsp, inner: h, cols: [experts], inputs: ['h2'], outputs: ['moe.logits'], saves: ['h2'],
      },
      { name: 'moe.gate', kind: 'router', experts, topK, inputs: ['moe.logits'], outputs: ['moe.probs', 'moe.index'], saves: ['moe.logits'] },
      { name: 'moe.dispatch', kind: 'allToAll', direction: 'dispatch', elements: sent, inputs: ['h2', 'moe.index'], outputs: ['moe.xe'], saves: ['moe.index'] },
      { name: 'moe.entry', kind: 'tpEntry', point: 'mlp-in-grad', elements: dmul(Te, h), inputs: ['moe.xe'], outputs: [], saves: [] },
      ...mlp,
      { name: 'moe.exit', kind: 'tpExit', point: 'mlp-out', elements: dmul(Te, h), biases: bias(mlpOutBias), inputs: ['moe.ye'], outputs: [], saves: [] },
      { name: 'moe.combine', kind: 'allToAll', direction: 'combine', elements: sent, inputs: ['moe.ye', 'moe.index'], outputs: ['moe.yc'], saves: [] },
      { name: 'moe.sum', kind: 'expertSum', topK, inputs: ['moe.yc', 'moe.probs'], outputs: ['moe.out'], saves: ['moe.yc', 'moe.probs'] },
    ];
  };

  let ops: BlockOp[];
  if (parallel) {
    // With two norms the MLP's is listed first: the backward walks the ops in reverse and adds the
    // attention norm's input gradient into the residual stream's first, the order this executor has
    // always summed them in (so its losses stay bit for bit the same).
    ops = twoNorms ? [norm('norm.mlp', 'x', 'h2', 'norm2'), norm('norm.attn', 'x', 'h1', 'norm1')] : [norm('norm.attn', 'x', 'h1', 'norm1')];
    ops.push(entry('attn.entry', 'h1', twoNorms ? 'attn-in-grad' : 'parallel-in-grad'));
    if (twoNorms) ops.push(entry('mlp.entry', 'h2', 'mlp-in-grad'));
    ops.push(...attention, ...mlp,
      { name: 'branch_sum', kind: 'branchSum', inputs: ['mo', 'o'], outputs: ['branches'], saves: [] },
      exit('parallel.exit', 'branches', 'parallel-out', bias('attn.bo', mlpOutBias)),
      { name: 'residual', kind: 'residual', dropout, inputs: ['x', 'branches'], outputs: ['y', ...residualMask('residual.mask')], saves: residualMask('residual.mask') });
  } else {
    ops = [
      norm('norm.attn', 'x', 'h1', 'norm1'), entry('attn.entry', 'h1', 'attn-in-grad'), ...attention,
      exit('attn.exit', 'o', 'attn-out', bias('attn.bo')),
      { name: 'attn.residual', kind: 'residual', dropout, inputs: ['x', 'o'], outputs: ['x1', ...residualMask('attn.residual.mask')], saves: residualMask('attn.residual.mask') },
      norm('norm.mlp', 'x1', 'h2', 'norm2'),
      ...(moe ? moeMlp(moe.experts, moe.topK) : [entry('mlp.entry', 'h2', 'mlp-in-grad'), ...mlp, exit('mlp.exit', 'mo', 'mlp-out', bias(mlpOutBias))]),
      {
        name: 'mlp.residual', kind: 'residual', dropout, inputs: ['x1', moe ? 'moe.out' : 'mo'], outputs: ['y', ...residualMask('mlp.residual.mask')],
        saves: residualMask('mlp.residual.mask'),
      },
    ];
  }
  return { sizes: z, input: 'x', output: 'y', tensors, weights, ops };
}
