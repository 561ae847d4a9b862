// ModelSpec: the architecture of a decoder-only transformer, its schema, and its parameter count.
import { z } from 'zod';
import { parseSpec, SpecError } from './validation';

export const MODEL_FAMILIES = ['gpt', 'llama', 'falcon'] as const;

const positiveInt = z.number().int().positive();

export const ModelSpecSchema = z
  .strictObject({
    name: z.string().min(1),
    family: z.enum(MODEL_FAMILIES),
    layers: positiveInt,
    hidden: positiveInt,
    heads: positiveInt,
    kvHeads: positiveInt,
    ffnHidden: positiveInt,
    vocab: positiveInt,
    maxSeq: positiveInt,
    norm: z.enum(['layernorm', 'rmsnorm']),
    activation: z.enum(['gelu', 'swiglu']),
    positional: z.enum(['learned', 'rope', 'alibi']),
    tiedEmbeddings: z.boolean(),
    /** Biases on the linear layers (norms always have their own parameters). */
    bias: z.boolean(),
    /** Falcon-style block: attention and MLP read the same normalised input and are summed. */
    parallelAttention: z.boolean().default(false),
    /** Falcon-40B style: separate norms for the attention and MLP branches of a parallel block. */
    parallelAttentionTwoNorms: z.boolean().default(false),
    /**
     * Dropout probability of the attention probabilities, the residual branches and the embedding
     * output, in [0, 1). Absent = 0: modern models (Llama, Falcon) train without it.
     */
    dropout: z.number().min(0).lt(1).default(0),
  })
  .superRefine((m, ctx) => {
    if (m.hidden % m.heads !== 0) {
      ctx.addIssue({ code: 'custom', path: ['heads'], message: `must divide hidden (${m.hidden})` });
    }
    if (m.heads % m.kvHeads !== 0) {
      ctx.addIssue({ code: 'custom', path: ['kvHeads'], message: `must divide heads (${m.heads})` });
    }
  });

export type ModelSpec = z.output<typeof ModelSpecSchema>;
export type ModelSpecInput = z.input<typeof ModelSpecSchema>;
export type ModelFamily = (typeof MODEL_FAMILIES)[number];

export function parseModelSpec(data: unknown): ModelSpec {
  return parseSpec(ModelSpecSchema, data, 'model spec');
}

export function headDim(m: ModelSpec): number {
  return m.hidden / m.heads;
}

/** Parameters of one transformer layer (attention + MLP + norms), no parallelism. */
export function layerParams(m: ModelSpec): number {
  const h = m.hidden;
  const kvDim = m.kvHeads * headDim(m);
  const b = m.bias ? 1 : 0;
  const attention = h * (h + 2 * kvDim) + b * (h + 2 * kvDim) + h * h + b * h;
  const mlpMatrices = m.activation === 'swiglu' ? 3 : 2;
  const mlp = mlpMatrices * h * m.ffnHidden + b * ((mlpMatrices - 1) * m.ffnHidden + h);
  const normParams = m.norm === 'layernorm' ? 2 * h : h;
  const norms = m.parallelAttention && !m.parallelAttentionTwoNorms ? 1 : 2;
  return attention + mlp + norms * normParams;
}

/** Embedding-side parameters: token embedding and (learned positions) the position table. */
export function embeddingParams(m: ModelSpec): number {
  return m.vocab * m.hidden + (m.positional === 'learned' ? m.maxSeq * m.hidden : 0);
}

/** Head-side parameters: final norm and, when not tied, the LM head. */
export function headParams(m: ModelSpec): number {
  const finalNorm = m.norm === 'layernorm' ? 2 * m.hidden : m.hidden;
  return finalNorm + (m.tiedEmbeddings ? 0 : m.vocab * m.hidden);
}

export function totalParams(m: ModelSpec): number {
  return m.layers * layerParams(m) + embeddingParams(m) + headParams(m);
}

/** Maps a Hugging Face `config.json` (GPT-2/NeoX, Llama, Falcon) onto a ModelSpec. */
export function modelFromHuggingFace(cfg: Record<string, unknown>, name = 'hf-model'): ModelSpec {
  const num = (...keys: string[]): number | undefined => {
    for (const k of keys) if (typeof cfg[k] === 'number') return cfg[k] as number;
    return undefined;
  };
  const modelType = String(cfg.model_type ?? '');
  const hidden = num('hidden_size', 'n_embd', 'd_model');
  const heads = num('num_attention_heads', 'n_head');
  const layers = num('num_hidden_layers', 'n_layer');
  const missing = [
    ['hidden_size', hidden],
    ['num_attention_heads', heads],
    ['num_hidden_layers', layers],
  ].filter(([, v]) => v === undefined);
  if (missing.length > 0 || hidden === undefined || heads === undefined || layers === undefined) {
    throw new SpecError(
      'Hugging Face config',
      missing.map(([k]) => ({ field: String(k), value: undefined, message: 'required (a number)' })),
    );
  }
  const vocab = num('vocab_size') ?? 50257;
  const maxSeq = num('max_position_embeddings', 'n_positions', 'n_ctx') ?? 2048;
  // Dropout keys by family: attention_dropout / hidden_dropout (Llama, Falcon), resid_pdrop /
  // attn_pdrop / embd_pdrop (GPT-2), attention_dropout / hidden_dropout (GPT-NeoX). The spec holds
  // one probability: the largest one the config sets.
  const drops = ['attention_dropout', 'hidden_dropout', 'resid_pdrop', 'attn_pdrop', 'embd_pdrop']
    .map((k) => num(k)).filter((v): v is number => v !== undefined);
  const dropout = drops.length > 0 ? Math.max(...drops) : 0;
  const base = { name: String(cfg._name_or_path ?? name), layers, hidden, heads, vocab, maxSeq, dropout };
  if (modelType === 'llama' || modelType === 'mistral' || modelType === 'qwen2') {
    return parseModelSpec({
      ...base,
      family: 'llama',
      kvHeads: num('num_key_value_heads') ?? heads,
      ffnHidden: num('intermediate_size') ?? 4 * hidden,
      norm: 'rmsnorm',
      activation: 'swiglu',
      positional: 'rope',
      tiedEmbeddings: cfg.tie_word_embeddings === true,
      bias: cfg.attention_bias === true,
    });
  }
  if (modelType === 'falcon' || modelType === 'RefinedWeb' || modelType === 'RefinedWebModel') {
    const newArch = cfg.new_decoder_architecture === true;
    const kvHeads = newArch ? (num('num_kv_heads') ?? heads) : cfg.multi_query === false ? heads : 1;
    return parseModelSpec({
      ...base,
      family: 'falcon',
      kvHeads,
      ffnHidden: num('ffn_hidden_size') ?? 4 * hidden,
      norm: 'layernorm',
      activation: 'gelu',
      positional: cfg.alibi === true ? 'alibi' : 'rope',
      tiedEmbeddings: cfg.tie_word_embeddings !== false,
      bias: cfg.bias === true,
      parallelAttention: cfg.parallel_attn !== false,
      parallelAttentionTwoNorms: newArch,
    });
  }
  if (modelType === 'gpt2' || modelType === 'gpt_neox' || modelType === 'gptj' || modelType === '') {
    return parseModelSpec({
      ...base,
      family: 'gpt',
      kvHeads: heads,
      ffnHidden: num('n_inner', 'intermediate_size') ?? 4 * hidden,
      norm: 'layernorm',
      activation: 'gelu',
      positional: modelType === 'gpt2' || modelType === '' ? 'learned' : 'rope',
      tiedEmbeddings: cfg.tie_word_embeddings !== false,
      bias: true,
    });
  }
  throw new SpecError('Hugging Face config', [
    { field: 'model_type', value: modelType, message: 'allowed: "gpt2", "gpt_neox", "llama", "mistral", "qwen2", "falcon"' },
  ]);
}
