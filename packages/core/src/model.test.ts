import { describe, expect, it } from 'vitest';
import { getModel, modelCatalog, modelFromHuggingFace, parseModelSpec, SpecError, totalParams } from './index';

// Published sizes: GPT-3 (Brown et al. 2020; Megatron-LM's configs, Narayanan et al. 2021 Table 1),
// Llama 2 (Touvron et al. 2023: 6.74B / 13.02B / 68.98B as counted from the released checkpoints),
// Llama 3 and 3.1 model cards (8.03B / 70.55B; Llama 3.1 405B: 405.85B), Falcon (tiiuae model cards: 6.92B / 41.3B).
const PUBLISHED: Record<string, number> = {
  'gpt3-125m': 125e6,
  'gpt3-350m': 350e6,
  'gpt3-1.3b': 1.3e9,
  'gpt3-2.7b': 2.7e9,
  'gpt3-6.7b': 6.7e9,
  'gpt3-13b': 13e9,
  'gpt3-22b': 22e9,
  'gpt3-40b': 39.1e9,
  'gpt3-175b': 174.6e9,
  'llama2-7b': 6.74e9,
  'llama2-13b': 13.02e9,
  'llama2-70b': 68.98e9,
  'llama3-8b': 8.03e9,
  'llama3-70b': 70.55e9,
  'llama3.1-8b': 8.03e9,
  'llama3.1-70b': 70.55e9,
  'llama3-405b': 405.85e9,
  'falcon-7b': 6.92e9,
  'falcon-40b': 41.3e9,
};

describe('model catalog', () => {
  for (const [name, published] of Object.entries(PUBLISHED)) {
    it(`${name} has its published parameter count within 3%`, () => {
      const params = totalParams(getModel(name));
      expect(Math.abs(params - published) / published).toBeLessThan(0.03);
    });
  }

  it('lists every catalog entry and they all validate', () => {
    const names = modelCatalog().map((m) => m.name);
    for (const n of [...Object.keys(PUBLISHED), 'gpt-tiny', 'llama-tiny']) expect(names).toContain(n);
    for (const m of modelCatalog()) expect(parseModelSpec(m)).toEqual(m);
  });

  it('follows Megatron-LM for GPT-3 1.3B: 16 heads of 128, vocab padded to 50304', () => {
    const m = getModel('gpt3-1.3b');
    expect([m.heads, m.hidden / m.heads, m.vocab]).toEqual([16, 128, 50304]);
  });

  it('names the unknown model and the allowed names', () => {
    expect(() => getModel('gpt5')).toThrow(/model: got "gpt5"; allowed: gpt3-125m, .*gpt3-1.3b, .*llama2-7b/);
  });
});

describe('model validation', () => {
  const base = getModel('gpt3-1.3b');
  it('names the field, the bad value and the allowed values', () => {
    try {
      parseModelSpec({ ...base, family: 'gtp', heads: 3 });
      expect.fail('should throw');
    } catch (err) {
      expect(err).toBeInstanceOf(SpecError);
      const issues = (err as SpecError).issues;
      expect(issues.find((i) => i.field === 'family')).toMatchObject({ value: 'gtp', message: 'allowed: "gpt", "llama", "falcon", "nemotron", "mixtral"' });
    }
    expect(() => parseModelSpec({ ...base, heads: 3 })).toThrow(/heads: got 3; must divide hidden \(2048\)/);
    expect(() => parseModelSpec({ ...base, layers: -1 })).toThrow(/layers: got -1; must be > 0/);
  });
});

describe('Hugging Face config mapping', () => {
  it('maps a Llama-2-7B config.json', () => {
    const m = modelFromHuggingFace({
      model_type: 'llama', hidden_size: 4096, intermediate_size: 11008, num_attention_heads: 32, num_hidden_layers: 32,
      num_key_value_heads: 32, vocab_size: 32000, max_position_embeddings: 4096, tie_word_embeddings: false,
    });
    expect(totalParams(m)).toBe(totalParams(getModel('llama2-7b')));
    expect(m).toMatchObject({ family: 'llama', norm: 'rmsnorm', activation: 'swiglu', positional: 'rope' });
  });

  it('maps a GPT-2 config.json', () => {
    const m = modelFromHuggingFace({ model_type: 'gpt2', n_embd: 768, n_head: 12, n_layer: 12, vocab_size: 50257, n_positions: 1024 });
    // GPT-2 small: 124.4M parameters with tied embeddings.
    expect(totalParams(m)).toBeCloseTo(124.44e6, -5);
  });

  it('maps a Falcon-7B config.json (multi-query, parallel attention)', () => {
    const m = modelFromHuggingFace({
      model_type: 'falcon', hidden_size: 4544, num_attention_heads: 71, num_hidden_layers: 32, vocab_size: 65024,
      multi_query: true, parallel_attn: true, bias: false, new_decoder_architecture: false,
    });
    expect(totalParams(m)).toBe(totalParams(getModel('falcon-7b')));
  });

  it('names the missing fields', () => {
    expect(() => modelFromHuggingFace({ model_type: 'llama' })).toThrow(/hidden_size: got nothing; required/);
  });

  it('reads the dropout probability where the config sets one, else 0', () => {
    const gpt2 = { model_type: 'gpt2', n_embd: 768, n_head: 12, n_layer: 12, resid_pdrop: 0.1, attn_pdrop: 0.1, embd_pdrop: 0.1 };
    expect(modelFromHuggingFace(gpt2).dropout).toBe(0.1);
    const llama = { model_type: 'llama', hidden_size: 4096, num_attention_heads: 32, num_hidden_layers: 32 };
    expect(modelFromHuggingFace({ ...llama, attention_dropout: 0.0 }).dropout).toBe(0);
    expect(modelFromHuggingFace({ ...llama, hidden_dropout: 0.05 }).dropout).toBe(0.05);
    expect(modelFromHuggingFace(llama).dropout).toBe(0);
  });
});

describe('dropout', () => {
  it('defaults to 0 for a model file without it, and refuses a probability outside [0, 1)', () => {
    const { dropout: _omitted, ...old } = getModel('gpt-tiny');
    expect(parseModelSpec(old).dropout).toBe(0);
    expect(() => parseModelSpec({ ...old, dropout: 1 })).toThrow(/dropout: got 1/);
    expect(() => parseModelSpec({ ...old, dropout: -0.1 })).toThrow(/dropout: got -0.1/);
  });
});
