// Built-in model catalog.
// GPT-3 sizes follow Megatron-LM's configurations (Narayanan et al. 2021, Table 1; Mist, EuroSys'25,
// Table 3): vocabulary padded to 50304, 128-wide heads, ffn = 4h, learned positions, tied embeddings.
// Llama-2/3 from the Hugging Face configs of meta-llama (Touvron et al. 2023; Llama 3 model card).
// Falcon from tiiuae's configs (Almazrouei et al. 2023).
// Dropout: GPT-3 0.1 (Brown et al. 2020 train as GPT-2, Radford et al. 2019, whose configs set
// resid/attn/embd_pdrop 0.1; Megatron-LM's GPT example scripts pass --attention-dropout 0.1
// --hidden-dropout 0.1); Llama and Falcon 0 (their Hugging Face configs: attention_dropout 0.0,
// hidden_dropout 0.0). The tiny test models keep 0.
import { type ModelSpec, type ModelSpecInput, parseModelSpec } from './model';
import { resolveName } from './names';

function gpt3(name: string, layers: number, hidden: number, heads: number): ModelSpecInput {
  return {
    name, family: 'gpt', layers, hidden, heads, kvHeads: heads, ffnHidden: 4 * hidden, vocab: 50304,
    maxSeq: 2048, norm: 'layernorm', activation: 'gelu', positional: 'learned', tiedEmbeddings: true, bias: true,
    dropout: 0.1,
  };
}

function llama(
  name: string, layers: number, hidden: number, heads: number, kvHeads: number, ffnHidden: number,
  vocab: number, maxSeq: number,
): ModelSpecInput {
  return {
    name, family: 'llama', layers, hidden, heads, kvHeads, ffnHidden, vocab, maxSeq, norm: 'rmsnorm',
    activation: 'swiglu', positional: 'rope', tiedEmbeddings: false, bias: false,
  };
}

function nemotron4(name: string, layers: number, hidden: number, heads: number): ModelSpecInput {
  return {
    name, family: 'nemotron', layers, hidden, heads, kvHeads: 8, ffnHidden: 4 * hidden, vocab: 256000, maxSeq: 4096,
    norm: 'layernorm', activation: 'squared-relu', positional: 'rope', tiedEmbeddings: false, bias: false, dropout: 0,
  };
}

const CATALOG_INPUTS: ModelSpecInput[] = [
  // GPT-3 Small and Medium (Brown et al. 2020, Table 2.1: 12 layers x 768 with 12 heads; 24 x 1024 with
  // 16 heads; 64-wide heads, 2048 context).
  gpt3('gpt3-125m', 12, 768, 12),
  gpt3('gpt3-350m', 24, 1024, 16),
  gpt3('gpt3-1.3b', 24, 2048, 16),
  gpt3('gpt3-2.7b', 32, 2560, 32),
  gpt3('gpt3-6.7b', 32, 4096, 32),
  gpt3('gpt3-13b', 40, 5120, 40),
  gpt3('gpt3-22b', 48, 6144, 48),
  // Megatron-LM's 39.1B configuration (Narayanan et al. 2021, Table 1).
  gpt3('gpt3-40b', 48, 8192, 64),
  gpt3('gpt3-175b', 96, 12288, 96),
  llama('llama2-7b', 32, 4096, 32, 32, 11008, 32000, 4096),
  llama('llama2-13b', 40, 5120, 40, 40, 13824, 32000, 4096),
  llama('llama2-70b', 80, 8192, 64, 8, 28672, 32000, 4096),
  llama('llama3-8b', 32, 4096, 32, 8, 14336, 128256, 8192),
  llama('llama3-70b', 80, 8192, 64, 8, 28672, 128256, 8192),
  // Llama 3.1 8B and 70B: the Llama 3 shapes with a 128K context (Dubey et al. 2024, Table 3;
  // meta-llama/Llama-3.1-8B and -70B config.json: max_position_embeddings 131072).
  llama('llama3.1-8b', 32, 4096, 32, 8, 14336, 128256, 131072),
  llama('llama3.1-70b', 80, 8192, 64, 8, 28672, 128256, 131072),
  // Llama 3.1 405B (Dubey et al. 2024, "The Llama 3 Herd of Models", Table 3: 126 layers, model dimension
  // 16,384, FFN dimension 53,248, 128 attention heads, 8 key/value heads, vocabulary 128,256; 128K context).
  llama('llama3-405b', 126, 16384, 128, 8, 53248, 128256, 131072),
  {
    name: 'falcon-7b', family: 'falcon', layers: 32, hidden: 4544, heads: 71, kvHeads: 1, ffnHidden: 18176,
    vocab: 65024, maxSeq: 2048, norm: 'layernorm', activation: 'gelu', positional: 'rope', tiedEmbeddings: true,
    bias: false, parallelAttention: true,
  },
  {
    name: 'falcon-40b', family: 'falcon', layers: 60, hidden: 8192, heads: 128, kvHeads: 8, ffnHidden: 32768,
    vocab: 65024, maxSeq: 2048, norm: 'layernorm', activation: 'gelu', positional: 'rope', tiedEmbeddings: true,
    bias: false, parallelAttention: true, parallelAttentionTwoNorms: true,
  },
  // Nemotron-4 15B (Parmar et al. 2024, "Nemotron-4 15B Technical Report", Sec. 2 and Table 1: 32 layers,
  // hidden 6144, 48 heads, 8 KV heads, sequence 4096, vocabulary 256,000; RoPE, squared ReLU, no bias
  // terms, dropout 0, untied input and output embeddings) and Nemotron-4 340B (NVIDIA 2024, "Nemotron-4
  // 340B Technical Report", Table 1: 96 layers, hidden 18432, 96 heads, 8 KV heads, the 15B's other
  // choices). The MLP is 4h wide (nvidia/Nemotron-4-340B-Base config: ffn_hidden_size 73728 = 4 x 18432;
  // Megatron-LM's default --ffn-hidden-size); LayerNorm (layernorm1p, a LayerNorm with gamma stored minus one).
  nemotron4('nemotron-4-15b', 32, 6144, 48),
  nemotron4('nemotron-4-340b', 96, 18432, 96),
  // Mixtral 8x7B (Jiang et al. 2024, "Mixtral of Experts", Table 1: dim 4096, 32 layers, head_dim 128,
  // hidden_dim 14336, 32 heads, 8 KV heads, context 32768, vocabulary 32000, 8 experts, top 2; Sec. 2:
  // the Mistral 7B architecture, SwiGLU experts, RMSNorm, RoPE; 46.7B parameters, 12.9B active).
  {
    ...llama('mixtral-8x7b', 32, 4096, 32, 8, 14336, 32000, 32768), family: 'mixtral', moe: { experts: 8, topK: 2 },
  },
  // Tiny models for tests and the CPU demo: byte-level vocabulary (256 tokens).
  {
    name: 'gpt-tiny', family: 'gpt', layers: 4, hidden: 64, heads: 4, kvHeads: 4, ffnHidden: 256, vocab: 256,
    maxSeq: 64, norm: 'layernorm', activation: 'gelu', positional: 'learned', tiedEmbeddings: true, bias: true,
  },
  {
    name: 'llama-tiny', family: 'llama', layers: 4, hidden: 64, heads: 4, kvHeads: 2, ffnHidden: 176, vocab: 256,
    maxSeq: 64, norm: 'rmsnorm', activation: 'swiglu', positional: 'rope', tiedEmbeddings: false, bias: false,
  },
];

const CATALOG: ReadonlyMap<string, ModelSpec> = new Map(
  CATALOG_INPUTS.map((m) => [m.name, parseModelSpec(m)] as const),
);

export function modelCatalog(): ModelSpec[] {
  return [...CATALOG.values()];
}

export function modelNames(): string[] {
  return [...CATALOG.keys()];
}

// Hugging Face repository names that the generic rules of names.ts do not reach (keys are compacted:
// lower case without -, _ and spaces). Llama 3.1 8B/70B are their own entries, not llama3-8b/70b: their
// context is 128K, not 8K; the 405B exists only as Llama 3.1.
const MODEL_ALIASES: Record<string, string> = {
  metallama38b: 'llama3-8b', metallama370b: 'llama3-70b', 'metallama3.1405b': 'llama3-405b', 'llama3.1405b': 'llama3-405b',
  'metallama3.18b': 'llama3.1-8b', 'metallama3.170b': 'llama3.1-70b',
};

/** The catalog name a user's spelling means (`Llama-3-8B`, `llama2_7b`, `meta-llama/Llama-2-7b-hf`). */
export function resolveModelName(name: string): string {
  return resolveName(name, {
    what: 'model', field: 'model', names: modelNames(), aliases: MODEL_ALIASES, strip: { suffixes: ['-hf'] },
  });
}

/**
 * Looks a model up by its catalog name, forgiving case, `-`/`_` and vendor spellings; throws a
 * SpecError with the nearest name and the allowed names when unknown.
 */
export function getModel(name: string): ModelSpec {
  return CATALOG.get(name) ?? CATALOG.get(resolveModelName(name))!;
}
