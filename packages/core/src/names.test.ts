import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { editDistance, getGpu, getModel, loadCluster, loadModel, modelCatalog, nearestName, parseClusterShorthand, resolveGpuName,
  resolveModelName, SpecError, totalParams } from './index';

describe('forgiving catalog names', () => {
  it('reads models however vendors write them', () => {
    for (const [input, name] of [
      ['gpt3-1.3B', 'gpt3-1.3b'], ['GPT3-1.3b', 'gpt3-1.3b'], ['llama2_7b', 'llama2-7b'], ['Llama-2-7b-hf', 'llama2-7b'],
      ['meta-llama/Llama-2-70b-hf', 'llama2-70b'], ['Llama-3-8B', 'llama3-8b'], ['meta-llama/Meta-Llama-3-8B', 'llama3-8b'],
      ['tiiuae/falcon-7b', 'falcon-7b'], ['gpt3-13b', 'gpt3-13b'],
    ]) {
      expect(resolveModelName(input), input).toBe(name);
      expect(getModel(input).name).toBe(name);
    }
  });

  it('keeps the dot that tells 1.3b from 13b', () => {
    expect(getModel('GPT3-13B').name).toBe('gpt3-13b');
    expect(getModel('gpt3_1.3b').name).toBe('gpt3-1.3b');
  });

  it('suggests the nearest model and lists the allowed ones', () => {
    const err = (() => { try { getModel('gpt-1.3b'); } catch (e) { return e; } })();
    expect(err).toBeInstanceOf(SpecError);
    expect((err as SpecError).issues[0].field).toBe('model');
    expect((err as Error).message).toMatch(/model: got "gpt-1\.3b"; did you mean "gpt3-1\.3b"\? allowed: gpt3-125m, gpt3-350m, gpt3-1\.3b, /);
    // `llama` is not silently `llama-tiny`; a far-off name gets no guess.
    expect(() => getModel('llama')).toThrow(/did you mean "llama-tiny"\? allowed:/);
    expect(() => getModel('bert-large')).toThrow(/got "bert-large"; allowed: gpt3-125m, /);
    expect(() => getModel('gpt3')).toThrow(/ambiguous: it could be gpt3-125m or gpt3-350m or gpt3-1\.3b or .* or gpt3-175b/);
  });

  it('reads GPUs the way NVIDIA writes them, and refuses the ambiguous a100 and v100', () => {
    for (const [input, name] of [['L4', 'l4'], ['NVIDIA L4', 'l4'], ['h100', 'h100-sxm'], ['H100 SXM5', 'h100-sxm'],
      ['A100-80GB', 'a100-80gb'], ['a100 40gb', 'a100-40gb'], ['V100-32GB', 'v100-32gb'], ['H200', 'h200'],
      ['a100-80gb-sxm', 'a100-80gb'], ['NVIDIA A100-SXM4-80GB', 'a100-80gb'], ['A100 80GB PCIe', 'a100-80gb-pcie'],
      ['NVIDIA A100-PCIE-40GB', 'a100-40gb-pcie'], ['H100 PCIe', 'h100-pcie'], ['NVIDIA H800', 'h800'], ['B200', 'b200'],
      ['Tesla V100-SXM2-16GB', 'v100-16gb']]) {
      expect(resolveGpuName(input), input).toBe(name);
    }
    expect(() => getGpu('a100')).toThrow(/gpu: got "a100"; ambiguous: it could be a100-40gb or a100-80gb or a100-40gb-pcie or a100-80gb-pcie; allowed: l4, /);
    expect(() => getGpu('v100')).toThrow(/gpu: got "v100"; ambiguous: it could be v100-16gb or v100-32gb/);
    expect(() => getGpu('a10')).toThrow(/did you mean "a10g"\?/);
    expect(() => getGpu('a100-80')).toThrow(/did you mean "a100-80gb"\?/);
  });

  it('reads cluster shorthands in any case and names them in the catalog spelling', () => {
    expect(parseClusterShorthand('1x8-L4').name).toBe('1x8-l4');
    const h = parseClusterShorthand('2X8-H100');
    expect([h.name, h.gpu.name, h.nodes, h.gpusPerNode]).toEqual(['2x8-h100-sxm', 'h100-sxm', 2, 8]);
    expect(() => parseClusterShorthand('1x8-a100')).toThrow(/ambiguous: it could be a100-40gb or a100-80gb/);
  });

  it('edit distance and nearest name', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
    expect(nearestName('--gbs', ['--global-batch', '--seq'])).toBeUndefined();
    expect(nearestName('micro-batch', ['micro-batch-size', 'seq'])).toBe('micro-batch-size');
  });
});

describe('model and cluster files', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-names-'));

  it('reads back what `mist models --json` prints (one model, or a list of one, with its derived params)', () => {
    const m = getModel('gpt3-1.3b');
    const one = path.join(dir, 'one.json');
    fs.writeFileSync(one, JSON.stringify({ ...m, params: totalParams(m) }));
    expect(loadModel(one)).toEqual(m);
    const list = path.join(dir, 'list.json');
    fs.writeFileSync(list, JSON.stringify([{ ...m, params: totalParams(m) }]));
    expect(loadModel(list)).toEqual(m);
    const many = path.join(dir, 'many.json');
    fs.writeFileSync(many, JSON.stringify(modelCatalog().slice(0, 2)));
    expect(() => loadModel(many)).toThrow(/expected one model .*gpt3-125m, gpt3-350m.*mist models --model NAME --json/);
  });

  it('names a Hugging Face config by its own name, else its directory (config.json), else its file', () => {
    const cfg = { model_type: 'llama', hidden_size: 256, num_attention_heads: 4, num_hidden_layers: 2, intermediate_size: 512, vocab_size: 1000 };
    const hub = path.join(dir, 'Llama-2-7b-hf');
    fs.mkdirSync(hub);
    fs.writeFileSync(path.join(hub, 'config.json'), JSON.stringify(cfg));
    expect(loadModel(path.join(hub, 'config.json')).name).toBe('Llama-2-7b-hf');
    fs.writeFileSync(path.join(dir, 'mistral.json'), JSON.stringify(cfg));
    expect(loadModel(path.join(dir, 'mistral.json')).name).toBe('mistral');
    fs.writeFileSync(path.join(dir, 'own.json'), JSON.stringify({ ...cfg, _name_or_path: 'mistralai/Mistral-7B-v0.1' }));
    expect(loadModel(path.join(dir, 'own.json')).name).toBe('mistralai/Mistral-7B-v0.1');
    fs.writeFileSync(path.join(dir, 'local.json'), JSON.stringify({ ...cfg, _name_or_path: '/data/models/qwen2-7b' }));
    expect(loadModel(path.join(dir, 'local.json')).name).toBe('qwen2-7b');
  });

  it('reports a missing model file as a file, not as an unknown name', () => {
    expect(() => loadModel(path.join(dir, 'nope.json'))).toThrow(/path: got ".*nope\.json"; cannot be read/);
  });

  it('reads the short cluster file form: a catalog GPU name and the overrides', () => {
    const file = path.join(dir, 'cluster.yaml');
    fs.writeFileSync(file, 'nodes: 2\ngpusPerNode: 8\ngpu: L4\nhostMemoryPerNode: 768e9\n');
    const c = loadCluster(file);
    const base = parseClusterShorthand('2x8-l4');
    expect(c).toEqual({ ...base, hostMemoryPerNode: 768e9 });
    fs.writeFileSync(file, 'nodes: 2\ngpusPerNode: 8\ngpu: l4\nhostMemory: 1\n');
    expect(() => loadCluster(file)).toThrow(/unknown field\(s\) hostMemory/);
  });
});
