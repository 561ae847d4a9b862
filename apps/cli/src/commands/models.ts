// `mist models`: the built-in model catalog (or one model file) with parameter counts.
import { activeParams, formatCount, loadModel, modelCatalog, type ModelSpec, totalParams } from '@mist/core';
import { type Command, stringOpt } from '../cli/command';
import { renderTable } from '../cli/table';

export const modelsCommand: Command = {
  name: 'models',
  summary: 'list the built-in models (or describe a model file) with their parameter counts',
  usage: 'mist models [--model NAME|FILE] [--json]',
  examples: [
    'mist models',
    'mist models --json',
    'mist models --model Llama-2-7b --json > llama.json   # then: mist tune --model llama.json ...',
    'mist models --model ./Llama-2-7b-hf/config.json',
  ],
  options: {
    model: {
      type: 'string', valueName: 'NAME|FILE',
      description: 'show one model: a catalog name (any case, e.g. Llama-2-7b), our JSON/YAML file or a Hugging Face config.json ' +
        '(named by its "_name_or_path", else its directory when the file is config.json, else the file\'s name)',
    },
    json: {
      type: 'boolean',
      description: 'print JSON: with --model one model object that --model FILE reads back; without, the list ' +
        '("params" and "activeParams" are derived and ignored when read back)',
    },
  },
  async run(values, _positionals, io) {
    const one = stringOpt(values, 'model');
    const models: ModelSpec[] = one ? [loadModel(one)] : modelCatalog();
    if (values.json) {
      const docs = models.map((m) => ({ ...m, params: totalParams(m), ...(m.moe ? { activeParams: activeParams(m) } : {}) }));
      io.stdout(JSON.stringify(one ? docs[0] : docs, null, 2) + '\n');
      return 0;
    }
    io.stdout(
      renderTable(models, [
        { header: 'name', value: (m) => m.name },
        { header: 'family', value: (m) => m.family },
        { header: 'params', value: (m) => formatCount(totalParams(m)), align: 'right' },
        // Parameters a token passes through: a mixture of experts uses topK of its experts' MLPs.
        { header: 'active', value: (m) => formatCount(activeParams(m)), align: 'right' },
        { header: 'experts', value: (m) => (m.moe ? `${m.moe.experts} top-${m.moe.topK}` : '-') },
        { header: 'layers', value: (m) => m.layers },
        { header: 'hidden', value: (m) => m.hidden },
        { header: 'heads', value: (m) => m.heads },
        { header: 'kvHeads', value: (m) => m.kvHeads },
        { header: 'ffn', value: (m) => m.ffnHidden },
        { header: 'vocab', value: (m) => m.vocab },
        { header: 'maxSeq', value: (m) => m.maxSeq },
        { header: 'norm', value: (m) => m.norm },
        { header: 'act', value: (m) => m.activation },
        { header: 'pos', value: (m) => m.positional },
      ]),
    );
    return 0;
  },
};
