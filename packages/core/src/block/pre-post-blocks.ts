// The parts of a model outside its layers, as block descriptions: the first stage's embedding and
// the last stage's head (final norm, LM head, loss), per tensor-parallel rank.
//   embedding: token table [V, h] split by vocabulary rows (Megatron-LM's VocabParallelEmbedding,
//              Shoeybi et al. 2019, Sec. 3), learned position table [maxSeq, h] replicated; with
//              model.dropout > 0 the sum is dropped out (GPT-2's embd_pdrop).
//   head:      final norm; LM head logits = hn W^T with W [V, h] column-parallel over the
//              vocabulary (the token table itself with tied embeddings); vocab-parallel softmax
//              cross-entropy (Megatron-LM's vocab_parallel_cross_entropy: sums of each token's max
//              logit, sum of exp and target logit over the ranks).
// Weight names are the model's own (`embed.wte`, `head.lm_head`): these blocks take no prefix.
import type { ModelSpec } from '../model';
import { ddiv, dmul, dsym } from './dim';
import { layerSizes } from './layer-block';
import type { BlockDescription, BlockWeight } from './types';

const [h, V, t] = (['h', 'V', 't'] as const).map(dsym);

export const TOKEN_TABLE = 'embed.wte';
export const POSITION_TABLE = 'embed.wpe';
export const LM_HEAD = 'head.lm_head';

function tokenTable(): BlockWeight {
  return { name: TOKEN_TABLE, shape: [V, h], shard: 'rows', init: 'normal', decay: true };
}

export function embeddingBlock(model: ModelSpec): BlockDescription {
  const z = layerSizes();
  const learned = model.positional === 'learned';
  const dropout = model.dropout > 0;
  const weights: BlockWeight[] = [tokenTable()];
  if (learned) weights.push({ name: POSITION_TABLE, shape: [model.maxSeq, h], shard: 'none', init: 'normal', decay: false });
  const full = dmul(z.tokens, h);
  const block: BlockDescription = {
    sizes: z,
    input: 'tokens',
    output: dropout ? 'xd' : 'x',
    tensors: {
      tokens: { rows: z.tokens, width: 1, dtype: 'index' },
      x: { rows: z.tokensSp, width: h, dtype: 'act' },
      ...(dropout ? { xd: { rows: z.tokensSp, width: h, dtype: 'act' }, 'embedding.mask': { rows: z.tokensSp, width: h, dtype: 'mask' } } : {}),
    },
    weights,
    ops: [
      { name: 'embedding', kind: 'embedding', wte: TOKEN_TABLE, wpe: learned ? POSITION_TABLE : undefined, elements: full, inputs: ['tokens'], outputs: ['x'], saves: [] },
      { name: 'embedding.exit', kind: 'tpExit', point: 'embed-out', elements: full, biases: [], inputs: ['x'], outputs: [], saves: [] },
      ...(dropout ? [{ name: 'embedding.dropout', kind: 'dropout' as const, inputs: ['x'], outputs: ['xd', 'embedding.mask'], saves: ['embedding.mask'] }] : []),
    ],
  };
  return block;
}

export function headBlock(model: ModelSpec): BlockDescription {
  const z = layerSizes();
  const weights: BlockWeight[] = model.norm === 'layernorm'
    ? [{ name: 'head.norm.gamma', shape: [h], shard: 'none', init: 'ones', decay: false }, { name: 'head.norm.beta', shape: [h], shard: 'none', init: 'zeros', decay: false }]
    : [{ name: 'head.norm.gamma', shape: [h], shard: 'none', init: 'ones', decay: false }];
  weights.push(model.tiedEmbeddings ? { ...tokenTable(), tied: true } : { name: LM_HEAD, shape: [V, h], shard: 'rows', init: 'normal', decay: true });
  const vocabPerRank = ddiv(V, t);
  return {
    sizes: z,
    input: 'x',
    output: 'loss',
    data: ['targets'],
    tensors: {
      x: { rows: z.tokensSp, width: h, dtype: 'act' },
      hn: { rows: z.tokensSp, width: h, dtype: 'act' },
      logits: { rows: z.tokens, width: vocabPerRank, dtype: 'act' },
      targets: { rows: z.tokens, width: 1, dtype: 'index' },
      loss: { rows: z.tokens, width: 1, dtype: 'fp32' },
    },
    weights,
    ops: [
      {
        name: 'final_norm', kind: 'norm', norm: model.norm, gamma: 'head.norm.gamma', beta: model.norm === 'layernorm' ? 'head.norm.beta' : undefined,
        inputs: ['x'], outputs: ['hn'], saves: ['x'],
      },
      { name: 'lm_head.entry', kind: 'tpEntry', point: 'head-in-grad', elements: dmul(z.tokens, h), inputs: ['hn'], outputs: [], saves: [] },
      {
        name: 'lm_head', kind: 'linear', weights: [model.tiedEmbeddings ? TOKEN_TABLE : LM_HEAD], transposed: true, biases: [], biasAt: 'gemm',
        rows: z.tokens, inner: h, cols: [vocabPerRank], inputs: ['hn'], outputs: ['logits'], saves: ['hn'],
      },
      // The logits and their fp32 softmax are transient (the analyzer's headTransientBytes), not saved.
      { name: 'cross_entropy', kind: 'crossEntropy', points: ['loss-max', 'loss-sum', 'loss-sum'], inputs: ['logits', 'targets'], outputs: ['loss'], saves: [] },
    ],
  };
}
