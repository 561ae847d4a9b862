// `mist import --from megatron|deepspeed|torchtitan ...`: a user's current setup as a Mist model + plan, so
// that `mist analyze` predicts it and `mist tune --baseline` compares with it. Unknown or unsupported
// options are listed by name (exit 2) unless --ignore-unknown is given.
import * as fs from 'node:fs';
import { loadCluster, loadModel, modelNames } from '@mist/core';
import { IMPORT_ENGINES, ImportError, type ImportResult, importDeepspeed, importMegatron, importTorchtitan } from '@mist/engines';
import { type Command, intOpt, JSON_OPTION, requireString, stringOpt, UsageError } from '../cli/command';

export const importCommand: Command = {
  name: 'import',
  summary: 'turn a Megatron-LM, DeepSpeed or torchtitan setup into a Mist model + plan',
  usage: 'mist import --from megatron --cluster C [--gpus N] [--name M] --out PLAN.json -- <pretrain_gpt.py args>\n' +
    '       mist import --from deepspeed --cluster C --model M --seq N --out PLAN.json ds_config.json [-- <deepspeed launcher args>]\n' +
    '       mist import --from torchtitan --cluster C [--model M] --out PLAN.json train.toml',
  examples: [
    'mist import --from megatron --cluster 1x8-a100-80gb --out plan.json -- --num-layers 24 --hidden-size 2048 --num-attention-heads 16 --seq-length 2048 --micro-batch-size 2 --global-batch-size 32 --vocab-size 50304 --make-vocab-size-divisible-by 1 --tensor-model-parallel-size 2',
    'mist import --from deepspeed --cluster 2x8-a100-80gb --model gpt3-1.3b --seq 2048 --out plan.json ds_config.json -- --num_nodes 2 --num_gpus 8',
    'mist import --from torchtitan --cluster 2x8-a100-80gb --out plan.json train.toml',
  ],
  positionals: { min: 0, max: 10_000, names: 'the engine\'s arguments or config file' },
  options: {
    from: { type: 'string', valueName: 'ENGINE', description: `engine: ${IMPORT_ENGINES.join(', ')}` },
    cluster: { type: 'string', valueName: 'SHORTHAND|FILE', description: 'the cluster the setup runs on, e.g. 2x8-a100-80gb' },
    gpus: { type: 'string', valueName: 'N', description: 'GPUs of the run (default: the whole cluster; DeepSpeed: --num_nodes x --num_gpus)' },
    model: { type: 'string', valueName: 'NAME|FILE', description: 'the model (DeepSpeed: required; torchtitan: when the flavor is not a catalog model)' },
    seq: { type: 'string', valueName: 'N', description: 'sequence length (DeepSpeed only; its config has none)' },
    name: { type: 'string', valueName: 'NAME', description: 'name of an imported model that is not in the catalog (Megatron-LM)' },
    out: { type: 'string', valueName: 'FILE', description: 'plan JSON to write (a model JSON is written beside it when the model is not in the catalog)' },
    'ignore-unknown': { type: 'boolean', description: 'import even when some options are unknown or unsupported (they are still listed)' },
    ...JSON_OPTION,
  },
  async run(values, positionals, io) {
    const from = requireString(values, 'from');
    if (!(IMPORT_ENGINES as readonly string[]).includes(from)) throw new UsageError(`--from: got "${from}"; allowed: ${IMPORT_ENGINES.join(', ')}`);
    const cluster = loadCluster(requireString(values, 'cluster'));
    const gpus = intOpt(values, 'gpus');
    let result: ImportResult;
    try {
      if (from === 'megatron') {
        if (positionals.length === 0) throw new UsageError('give the pretrain_gpt.py arguments after --');
        result = importMegatron(positionals, { cluster, gpus, modelName: stringOpt(values, 'name') });
      } else {
        const [file, ...rest] = positionals;
        if (!file) throw new UsageError(`give the ${from === 'deepspeed' ? 'ds_config.json' : 'train.toml'} file`);
        const text = fs.readFileSync(file, 'utf8');
        const modelRef = stringOpt(values, 'model');
        if (from === 'deepspeed') {
          if (!modelRef) throw new UsageError(`--model is required with --from deepspeed (its config names no model); catalog: ${modelNames().join(', ')}`);
          const seq = intOpt(values, 'seq');
          if (seq === undefined) throw new UsageError('--seq is required with --from deepspeed (its config has no sequence length)');
          const model = loadModel(modelRef);
          // A catalog model is one the catalog resolves (loadModel reads a file only when the name is a path).
          const inCatalog = modelNames().includes(model.name) && !fs.existsSync(modelRef);
          result = importDeepspeed(text, rest, { cluster, gpus, model, modelInCatalog: inCatalog, seqLen: seq });
        } else {
          if (rest.length > 0) throw new UsageError(`unexpected arguments after ${file}: ${rest.join(' ')}`);
          result = importTorchtitan(text, { cluster, gpus, model: modelRef ? loadModel(modelRef) : undefined });
        }
      }
    } catch (e) {
      if (e instanceof ImportError || e instanceof SyntaxError) throw new UsageError(e.message);
      throw e;
    }
    const out = stringOpt(values, 'out');
    const blocked = result.problems.length > 0 && values['ignore-unknown'] !== true;
    const written: string[] = [];
    if (out && !blocked) {
      if (!result.modelInCatalog) {
        // The plan names the model; `mist analyze --plan OUT --model OUT.model.json` reads both.
        const modelFile = out.replace(/\.json$/, '') + '.model.json';
        fs.writeFileSync(modelFile, JSON.stringify(result.model, null, 2) + '\n');
        written.push(modelFile);
      }
      fs.writeFileSync(out, JSON.stringify(result.plan, null, 2) + '\n');
      written.unshift(out);
    }
    if (values.json) {
      io.stdout(JSON.stringify({ ...result, written }, null, 2) + '\n');
    } else {
      const s = result.plan.stages[0];
      let text = `Imported ${from}: ${result.model.name}${result.modelInCatalog ? ' (catalog)' : ' (not in the catalog)'}, ` +
        `${result.plan.stages.length} stage(s), dp ${s.dp}, tp ${s.tp}${s.sequenceParallel ? ' sp' : ''}, micro-batch ${s.microBatchSize} x ${result.plan.gradAccumSteps}, ` +
        `ZeRO-${s.zero}, checkpointed layers ${result.plan.stages.map((x) => x.ckptLayers).join('/')}.\n`;
      const t = result.training;
      if (t && (t.tpCommOverlap || t.paramGatherOverlap)) {
        const flags = [t.tpCommOverlap ? '--tp-comm-overlap' : '', t.paramGatherOverlap ? '--overlap-param-gather' : ''].filter(Boolean).join(' ');
        text += `The setup overlaps communication (${flags}), which a plan file does not record: predict it with \`mist analyze PLAN ${flags}\`.\n`;
      }
      if (t && t.gradReduceOverlap === false) {
        const why = from === 'megatron' ? 'no --overlap-grad-reduce, Megatron-LM\'s default' : 'DeepSpeed\'s ZeRO-0, or ZeRO-1 without overlap_comm';
        const fix = from === 'megatron' ? 'add --overlap-grad-reduce to the setup' : 'run ZeRO-1 with zero_optimization.overlap_comm';
        text += `The setup reduces the data-parallel gradients after the backward (${why}), which a plan file does not record: ` +
          `predict it with \`mist analyze PLAN --no-overlap-grad-reduce\` (or ${fix}).\n`;
      }
      if (from === 'torchtitan' && t?.crossEntropy === 'compiled') {
        text += 'torchtitan with torch.compile (fused element-wise kernels, the compiled loss over fp32 logits) and its gathered sequence-parallel ' +
          'inputs, which a plan file does not record, are costed with `mist analyze PLAN --target torchtitan --compile`.\n';
      } else if (from === 'torchtitan') {
        text += 'torchtitan\'s loss over fp32 logits, eager norms, RoPE and SwiGLU and gathered sequence-parallel inputs, which a plan file ' +
          'does not record, are costed with `mist analyze PLAN --target torchtitan`.\n';
      }
      if (from === 'megatron' && result.plan.stages.some((x) => x.tp > 1)) {
        text += 'Megatron-LM runs the TP backward collectives beside the backward GEMMs, which a plan file does not record: ' +
          'they are costed with `mist analyze PLAN --target megatron`.\n';
      }
      if (t && t.gradAccumDtype === 'fp32') {
        text += 'The setup accumulates and reduces the gradients in fp32 (2 more bytes per parameter than the weights\' dtype), which a plan ' +
          'file does not record: predict it with `mist analyze PLAN --grad-accum-dtype fp32`.\n';
      }
      if (t && t.fp8ParamGather) {
        text += 'The setup keeps and all-gathers the fp8 layers\' weights as fp8, which a plan file does not record: ' +
          'predict it with `mist analyze PLAN --fp8-param-gather`.\n';
      }
      if (t && t.crossEntropy && from !== 'torchtitan') {
        text += `The setup's loss reads the logits as crossEntropy ${t.crossEntropy}, which a plan file does not record: ` +
          `predict it with \`mist analyze PLAN --cross-entropy ${t.crossEntropy}\`.\n`;
      }
      if (written.length > 0) text += `Wrote ${written.join(' and ')}.\n`;
      io.stdout(text);
    }
    if (result.problems.length > 0) {
      io.stderr(`mist import: ${result.problems.length} option(s) ${blocked ? 'block the import' : 'were left out'}:\n` +
        result.problems.map((p) => `  - ${p.option}: ${p.reason}`).join('\n') + '\n' +
        (blocked ? 'Use --ignore-unknown to import without them.\n' : ''));
      return blocked ? 2 : 0;
    }
    if (!out) io.stderr('mist import: no --out given; nothing written\n');
    return 0;
  },
};
