// ModelSpec: the architecture of a decoder-only transformer, its schema, and its parameter count.
import { z } from 'zod';
import { parseSpec, SpecError } from './validation';

export const MODEL_FAMILIES = ['gpt', 'llama', 'falcon', 'nemotron', 'mixtral'] as const;

/**
 * MLP activations: GELU (tanh form, GPT/Falcon), SwiGLU (Shazeer 2020; Llama, Mixtral: three
 * matrices) and squared ReLU, relu(x)^2 (So et al. 2021, "Primer", Sec. 3; Nemotron-4, Parmar et al.
 * 2024, Sec. 2: two matrices, no gate).
 */
export const MLP_ACTIVATIONS = ['gelu', 'swiglu', 'squared-relu'] as const;
export type MlpActivation = (typeof MLP_ACTIVATIONS)[number];

const positiveInt = z.number().int().positive();

/**
 * Mixture of experts (Shazeer et al. 2017; Mixtral, Jiang et al. 2024, Sec. 2): every layer's MLP
 * is `experts` MLPs of the model's activation, a router (a linear map h -> experts, softmax over
 * the top `topK` logits) sending each token to `topK` of them and summing their outputs weighted
 * by the router's probabilities. `ffnHidden` is one expert's MLP width (absent: the model's
 * ffnHidden; Megatron-LM's --moe-ffn-hidden-size defaults the same way).
 */
export const MoeSpecSchema = z.strictObject({
  experts: z.number().int().min(2),
  topK: positiveInt,
  ffnHidden: positiveInt.optional(),
});
export type MoeSpec = z.output<typeof MoeSpecSchema>;

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
    activation: z.enum(MLP_ACTIVATIONS),
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
    /** Mixture-of-experts MLPs in every layer; absent: a dense model. */
    moe: MoeSpecSchema.optional(),
  })
  .superRefine((m, ctx) => {
    if (m.hidden % m.heads !== 0) {
      ctx.addIssue({ code: 'custom', path: ['heads'], message: `must divide hidden (${m.hidden})` });
    }
    if (m.heads % m.kvHeads !== 0) {
      ctx.addIssue({ code: 'custom', path: ['kvHeads'], message: `must divide heads (${m.heads})` });
    }
    if (m.moe && m.moe.topK > m.moe.experts) {
      ctx.addIssue({ code: 'custom', path: ['moe', 'topK'], message: `must be at most moe.experts (${m.moe.experts})` });
    }
    if (m.moe && m.parallelAttention) {
      ctx.addIssue({ code: 'custom', path: ['moe'], message: 'not implemented: mixture of experts in a parallel-attention block (allowed: parallelAttention false)' });
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

/** Weight matrices of one MLP: three with SwiGLU (gate, up, down), else two. */
export function mlpMatrices(m: Pick<ModelSpec, 'activation'>): number {
  return m.activation === 'swiglu' ? 3 : 2;
}

/** Width of one expert's MLP (the model's ffnHidden unless moe.ffnHidden says otherwise). */
export function expertFfnHidden(m: ModelSpec): number {
  return m.moe?.ffnHidden ?? m.ffnHidden;
}

/** Parameters of one MLP of width `ffn` (weights and, with biases, theirs). */
function mlpParams(m: ModelSpec, ffn: number): number {
  const mats = mlpMatrices(m);
  return mats * m.hidden * ffn + (m.bias ? (mats - 1) * ffn + m.hidden : 0);
}

/** Parameters of one layer's router (a linear map h -> experts, no bias); 0 for a dense model. */
export function routerParams(m: ModelSpec): number {
  return m.moe ? m.hidden * m.moe.experts : 0;
}

/** Parameters of one layer's experts (all of them); 0 for a dense model. */
export function expertLayerParams(m: ModelSpec): number {
  return m.moe ? m.moe.experts * mlpParams(m, expertFfnHidden(m)) : 0;
}

/** Parameters of one transformer layer other than its experts: attention, norms, the dense MLP or the router. */
export function denseLayerParams(m: ModelSpec): number {
  const h = m.hidden;
  const kvDim = m.kvHeads * headDim(m);
  const b = m.bias ? 1 : 0;
  const attention = h * (h + 2 * kvDim) + b * (h + 2 * kvDim) + h * h + b * h;
  const mlp = m.moe ? routerParams(m) : mlpParams(m, m.ffnHidden);
  const normParams = m.norm === 'layernorm' ? 2 * h : h;
  const norms = m.parallelAttention && !m.parallelAttentionTwoNorms ? 1 : 2;
  return attention + mlp + norms * normParams;
}

/** Parameters of one transformer layer (attention + MLP or router and experts + norms), no parallelism. */
export function layerParams(m: ModelSpec): number {
  return denseLayerParams(m) + expertLayerParams(m);
}

/**
 * Parameters one token meets in a forward pass: every parameter of a dense model; with mixture of
 * experts only topK of each layer's experts (Mixtral's "active parameters", Jiang et al. 2024, Sec. 2).
 */
export function activeParams(m: ModelSpec): number {
  const experts = m.moe ? m.moe.topK * mlpParams(m, expertFfnHidden(m)) : 0;
  return m.layers * (denseLayerParams(m) + experts) + embeddingParams(m) + headParams(m);
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

/** Maps a Hugging Face `config.json` (GPT-2/NeoX, Llama, Mixtral, Nemotron, Falcon) onto a ModelSpec. */
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
  // The fields Llama-style configs (Llama, Mistral, Qwen2, Mixtral, Nemotron) spell alike.
  const ropeDecoder = {
    ...base,
    kvHeads: num('num_key_value_heads') ?? heads,
    ffnHidden: num('intermediate_size') ?? 4 * hidden,
    positional: 'rope',
    tiedEmbeddings: cfg.tie_word_embeddings === true,
    bias: cfg.attention_bias === true,
  } as const;
  if (modelType === 'mixtral') {
    // MixtralConfig (transformers): num_local_experts experts, num_experts_per_tok per token.
    return parseModelSpec({
      ...ropeDecoder,
      family: 'mixtral',
      norm: 'rmsnorm',
      activation: 'swiglu',
      bias: false,
      moe: { experts: num('num_local_experts') ?? 8, topK: num('num_experts_per_tok') ?? 2 },
    });
  }
  if (modelType === 'nemotron') {
    if (cfg.hidden_act !== undefined && cfg.hidden_act !== 'relu2') {
      throw new SpecError('Hugging Face config', [{ field: 'hidden_act', value: cfg.hidden_act, message: 'allowed for nemotron: "relu2" (squared ReLU)' }]);
    }
    // NemotronConfig (transformers): hidden_act "relu2" (squared ReLU), LayerNorm1P, no gate.
    return parseModelSpec({ ...ropeDecoder, family: 'nemotron', norm: 'layernorm', activation: 'squared-relu' });
  }
  if (modelType === 'llama' || modelType === 'mistral' || modelType === 'qwen2') {
    return parseModelSpec({ ...ropeDecoder, family: 'llama', norm: 'rmsnorm', activation: 'swiglu' });
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
    { field: 'model_type', value: modelType, message: 'allowed: "gpt2", "gpt_neox", "llama", "mistral", "mixtral", "nemotron", "qwen2", "falcon"' },
  ]);
}
