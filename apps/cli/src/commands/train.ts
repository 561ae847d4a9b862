// `mist train`: trains a small model in this process on the CPU kernels or on this host's GPU
// (--device cuda), with a progress bar (loss, tokens/s) on stderr, or one JSON object per step on
// stdout with --json.
import { loadModel, type ModelSpec, parsePlan, parseTrainingSpec, readSpecFile } from '@mist/core';
import { DEVICE_KINDS, launchLocal, type StepReport, TRAIN_DEFAULTS, trainSingleProcess } from '@mist/executor';
import { type Command, enumOpt, intOpt, numberOpt, stringOpt, UsageError } from '../cli/command';
import { ProgressBar } from '../cli/progress';

const DATA = ['corpus', 'synthetic'] as const;
const COMPUTE_DTYPES = ['fp32', 'bf16', 'fp16'] as const;

export const trainCommand: Command = {
  name: 'train',
  summary: 'train a small model in one process (the CPU kernels or this host\'s GPU), or as a plan over local worker processes',
  usage: 'mist train [--model NAME|FILE] [--device cpu|cuda] [--dtype fp32|bf16|fp16] [--plan PLAN.json] [--steps N] [--global-batch B] [--micro-batch b] [--seq S] [--lr LR] ' +
    '[--seed N] [--data corpus|synthetic] [--ckpt-layers N] [--json]',
  examples: [
    'mist train --model gpt-tiny --steps 200',
    'mist train --model gpt-tiny --steps 200 --device cuda',
    'mist train --model gpt-tiny --steps 200 --device cuda --dtype bf16',
    'mist train --plan examples/plans/gpt-tiny-2-stages.json --steps 100',
    'mist train --model llama-tiny --steps 100 --data synthetic --json',
  ],
  options: {
    model: { type: 'string', valueName: 'NAME|FILE', description: 'model to train (default: the plan\'s model, else gpt-tiny)' },
    device: { type: 'string', valueName: 'KIND', description: `where one process trains: ${DEVICE_KINDS.join(' or ')} (the first visible GPU, fp32)`, default: 'cpu' },
    dtype: {
      type: 'string', valueName: 'DTYPE', default: 'fp32',
      description: 'storage of activations and gradients on the GPU: fp32, bf16 or fp16 (fp32 master weights; fp16 with dynamic loss scaling); the CPU computes in fp32',
    },
    plan: { type: 'string', valueName: 'FILE', description: 'run this plan: one worker process per rank on 127.0.0.1 (CPU backend); batch and seq come from the plan' },
    steps: { type: 'string', valueName: 'N', description: 'optimizer steps', default: String(TRAIN_DEFAULTS.steps) },
    'global-batch': { type: 'string', valueName: 'B', description: 'sequences per step', default: String(TRAIN_DEFAULTS.globalBatch) },
    'micro-batch': { type: 'string', valueName: 'b', description: 'sequences per forward/backward (divides the global batch; default: all)' },
    seq: { type: 'string', valueName: 'S', description: 'tokens per sequence', default: String(TRAIN_DEFAULTS.seq) },
    lr: { type: 'string', valueName: 'LR', description: 'peak learning rate (AdamW)', default: String(TRAIN_DEFAULTS.lr) },
    seed: { type: 'string', valueName: 'N', description: 'seed of the initialisation and the data order', default: String(TRAIN_DEFAULTS.seed) },
    data: { type: 'string', valueName: 'SOURCE', description: 'corpus (the shipped English text, byte-level) or synthetic', default: TRAIN_DEFAULTS.data },
    'ckpt-layers': { type: 'string', valueName: 'N', description: 'layers that recompute their activations in backward', default: '0' },
    json: { type: 'boolean', description: 'print one JSON object per step on stdout, and nothing else there' },
  },
  async run(values, _positionals, io) {
    const planFile = stringOpt(values, 'plan');
    const planDoc = planFile ? readSpecFile(planFile) : undefined;
    const planModel = (planDoc as { model?: unknown } | undefined)?.model;
    const ref = stringOpt(values, 'model') ?? (typeof planModel === 'string' ? planModel : 'gpt-tiny');
    const model: ModelSpec = loadModel(ref);
    const data = stringOpt(values, 'data') ?? 'corpus';
    if (!(DATA as readonly string[]).includes(data)) throw new UsageError(`--data: got "${data}"; allowed: ${DATA.join(', ')}`);
    const ckpt = Number(stringOpt(values, 'ckpt-layers') ?? '0');
    if (!Number.isInteger(ckpt) || ckpt < 0 || ckpt > model.layers) {
      throw new UsageError(`--ckpt-layers: got "${stringOpt(values, 'ckpt-layers')}"; expected 0..${model.layers}`);
    }
    const device = enumOpt(values, 'device', DEVICE_KINDS, 'cpu');
    const dtype = enumOpt(values, 'dtype', COMPUTE_DTYPES, 'fp32');
    if (dtype !== 'fp32' && device !== 'cuda') throw new UsageError(`--dtype ${dtype} needs --device cuda: the CPU kernels compute in fp32`);
    if (planFile && device !== 'cpu') {
      throw new UsageError(`--device ${device} with --plan: not implemented yet (a plan's worker processes run the CPU backend; one process trains on a GPU without --plan)`);
    }
    const steps = intOpt(values, 'steps')!;
    const json = values.json === true;
    const bar = json ? undefined : new ProgressBar(io, `training ${model.name}`, steps);
    if (planFile) {
      const plan = parsePlan(planDoc, { model });
      const ranks = plan.stages.reduce((n, s) => n + s.mesh.nodes * s.mesh.gpusPerNode, 0);
      if (!json) io.stderr(`running ${planFile}: ${plan.stages.length} stage(s), ${ranks} worker process(es) on 127.0.0.1\n`);
      const started = performance.now();
      let firstLoss: number | undefined;
      const res = await launchLocal({
        plan,
        model,
        training: parseTrainingSpec({ globalBatch: plan.globalBatch, seqLen: plan.seqLen, paramDtype: 'fp32', computeDtype: 'fp32' }),
        run: {
          steps, seed: Number(stringOpt(values, 'seed')), lr: numberOpt(values, 'lr')!, data: data as (typeof DATA)[number],
          warmupSteps: TRAIN_DEFAULTS.warmupSteps, scheduleSteps: steps,
        },
        onStep: (s) => {
          firstLoss ??= s.loss;
          if (json) io.stdout(JSON.stringify({ step: s.step, loss: s.loss, tokensPerS: s.tokensPerS, stepTimeS: s.stepTimeS }) + '\n');
          else bar!.update(s.step, `loss ${s.loss.toFixed(3)}  ${Math.round(s.tokensPerS)} tok/s`);
        },
      });
      if (json) return 0;
      bar!.done();
      const seconds = (performance.now() - started) / 1000;
      io.stdout(`${model.name}, plan ${planFile}: loss ${firstLoss?.toFixed(3)} -> ${res.finalLoss?.toFixed(3)} nats ` +
        `(uniform baseline ln(${model.vocab}) = ${Math.log(model.vocab).toFixed(3)}), ${res.steps.length} steps in ${seconds.toFixed(1)} s\n`);
      return 0;
    }
    let first: StepReport | undefined;
    const result = await trainSingleProcess(
      {
        ...TRAIN_DEFAULTS,
        model,
        steps,
        globalBatch: intOpt(values, 'global-batch')!,
        microBatch: intOpt(values, 'micro-batch'),
        seq: intOpt(values, 'seq')!,
        lr: numberOpt(values, 'lr')!,
        seed: Number(stringOpt(values, 'seed')),
        data: data as (typeof DATA)[number],
        ckptLayers: ckpt,
        device,
        computeDtype: dtype,
      },
      (r) => {
        first ??= r;
        if (json) {
          io.stdout(JSON.stringify({ step: r.step, loss: r.loss, tokensPerS: r.tokensPerS, lr: r.lr, gradNorm: r.gradNorm,
            ...(r.lossScale !== undefined ? { lossScale: r.lossScale, skipped: r.skipped } : {}) }) + '\n');
        }
        else bar!.update(r.step, `loss ${r.loss.toFixed(3)}  ${Math.round(r.tokensPerS)} tok/s`);
      },
    );
    if (json) return 0;
    bar!.done();
    const last = result.steps[result.steps.length - 1];
    io.stdout(
      `${model.name} on ${result.data}${result.device === 'cuda' ? ` (GPU, ${result.computeDtype})` : ''}: loss ${first!.loss.toFixed(3)} -> ${last.loss.toFixed(3)} nats ` +
        `(uniform baseline ln(${model.vocab}) = ${result.uniformLoss.toFixed(3)}` +
        `${result.dataEntropy !== null ? `, data entropy ${result.dataEntropy.toFixed(3)}` : ''}), ` +
        `${Math.round(result.tokensPerS)} tokens/s over ${result.steps.length} steps\n`,
    );
    return 0;
  },
};
