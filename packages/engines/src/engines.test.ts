import { describe, expect, it } from 'vitest';
import {
  type Plan, engineCapabilities, getModel, parseClusterShorthand, planCapabilityViolations,
} from '@mist/core';
import {
  exportDeepspeed, exportMegatron, exportNemo, exportPlan, exportTorchtitan, importDeepspeed, importMegatron,
  importTorchtitan, InexpressiblePlanError, nearestExpressiblePlan, parseToml,
} from './index';
import { expectGolden, input, makePlan, stage } from './test-helpers';

const gpt = getModel('gpt3-1.3b');
const llama = getModel('llama3-8b');
const c2x8 = parseClusterShorthand('2x8-a100-80gb');

/** Megatron-LM plans: uneven first/last stages, tp + sp, distributed optimizer, block recompute. */
function megatronPlans(): Plan[] {
  const s = { mesh: { nodes: 1, gpusPerNode: 4 }, dp: 2, tp: 2, sequenceParallel: true, microBatchSize: 2, zero: 1 as const };
  return [
    makePlan(gpt, c2x8, 16, 4, [
      stage([0, 4], { ...s, ckptLayers: 3 }), stage([5, 11], { ...s, ckptLayers: 3 }),
      stage([12, 18], { ...s, ckptLayers: 3 }), stage([19, 23], { ...s, ckptLayers: 3 })]),
    makePlan(gpt, c2x8, 32, 2, [stage([0, 23], { mesh: { nodes: 2, gpusPerNode: 8 }, dp: 16, microBatchSize: 1 })]),
    makePlan(llama, c2x8, 16, 4, [
      stage([0, 14], { ...s, mesh: { nodes: 1, gpusPerNode: 8 }, dp: 1, tp: 8, microBatchSize: 4, zero: 0, ckptLayers: 15 }),
      stage([15, 31], { ...s, mesh: { nodes: 1, gpusPerNode: 8 }, dp: 1, tp: 8, microBatchSize: 4, zero: 0, ckptLayers: 17 })], 4096),
    interleavedPlan(),
  ];
}

/** Interleaved 1F1B: 4 ranks of 6 layers in 2 chunks of 3, the first 1 layer of each chunk recomputed. */
function interleavedPlan(): Plan {
  const s = { mesh: { nodes: 1, gpusPerNode: 4 }, dp: 2, tp: 2, sequenceParallel: true, microBatchSize: 2, zero: 1 as const, ckptLayers: 2 };
  return { ...makePlan(gpt, c2x8, 16, 4, [0, 1, 2, 3].map((i) => stage([6 * i, 6 * i + 5], s))), virtualStages: 2 };
}

describe('Megatron-LM', () => {
  it('writes the golden arguments and launch scripts', () => {
    expectGolden('megatron', exportMegatron(input(megatronPlans()[0], gpt, c2x8)));
  });

  it('round-trips every expressible plan through its arguments', () => {
    for (const plan of megatronPlans()) {
      const model = plan.model === gpt.name ? gpt : llama;
      const args = exportMegatron(input(plan, model, c2x8)).find((f) => f.path === 'args.txt')!.content.split(/\s+/).filter(Boolean);
      const back = importMegatron(args, { cluster: c2x8 });
      expect(back.problems).toEqual([]);
      expect(back.modelInCatalog).toBe(true);
      expect(back.model).toEqual(model);
      expect(back.plan).toEqual(plan);
    }
  });

  it('names unknown and unsupported options on import', () => {
    const args = ['--num-layers', '24', '--hidden-size', '2048', '--num-attention-heads', '16', '--seq-length', '2048',
      '--micro-batch-size', '1', '--vocab-size', '50257', '--tokenizer-type', 'GPT2BPETokenizer', '--lr', '1e-4',
      '--fancy-new-flag', '3', '--optimizer-cpu-offload', '--recompute-granularity', 'selective', '--recompute-modules', 'core_attn', 'mlp'];
    const r = importMegatron(args, { cluster: c2x8 });
    expect(r.problems.map((p) => p.option)).toEqual(['--fancy-new-flag', '--optimizer-cpu-offload', '--recompute-modules']);
    expect(r.model.vocab).toBe(50304);
    expect(r.plan.stages[0]).toMatchObject({ dp: 16, tp: 1, ckptLayers: 0 });
  });

  it('refuses per-stage strategies and names each feature', () => {
    const plan = makePlan(gpt, c2x8, 32, 4, [
      stage([0, 11], { dp: 8, microBatchSize: 1, offload: { weights: 0, grads: 0, optim: 0.5, activations: 0 } }),
      stage([12, 23], { dp: 4, tp: 2, microBatchSize: 2 })]);
    try {
      exportMegatron(input(plan, gpt, c2x8));
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(InexpressiblePlanError);
      const fs = (e as InexpressiblePlanError).violations.map((v) => `${v.feature}@${v.field}`);
      expect(fs).toEqual(expect.arrayContaining([
        'per-stage strategies@stages[1].dp', 'per-stage strategies@stages[1].tp', 'optim offloading@stages[0].offload.optim',
      ]));
    }
  });
});

describe('NeMo 2', () => {
  it('writes the golden recipe', () => {
    expectGolden('nemo', exportNemo(input(megatronPlans()[2], llama, c2x8)));
  });

  it('writes the virtual pipeline size and the per-chunk recompute count of an interleaved plan', () => {
    const py = exportNemo(input(interleavedPlan(), gpt, c2x8))[0].content;
    expect(py).toContain('    strategy.virtual_pipeline_model_parallel_size = 2\n');
    expect(py).toContain('    recipe.model.config.recompute_num_layers = 1\n');
  });
});

describe('interleaved 1F1B (virtualStages)', () => {
  it('Megatron-LM: one chunk size flag, recompute counted per chunk, read back as the same plan', () => {
    const args = exportMegatron(input(interleavedPlan(), gpt, c2x8)).find((f) => f.path === 'args.txt')!.content;
    expect(args).toContain('--num-layers-per-virtual-pipeline-stage 3\n');
    expect(args).toContain('--recompute-num-layers 1\n');
    const viaRank = importMegatron([...args.split(/\s+/).filter((w) => w && w !== '--num-layers-per-virtual-pipeline-stage' && w !== '3'),
      '--num-virtual-stages-per-pipeline-rank', '2'], { cluster: c2x8 });
    expect(viaRank.plan).toEqual(interleavedPlan());
  });

  it('engines without interleaving refuse it by name', () => {
    for (const engine of ['deepspeed', 'torchtitan'] as const) {
      const v = planCapabilityViolations(interleavedPlan(), engineCapabilities(engine)).find((x) => x.field === 'virtualStages');
      expect(v?.feature).toBe('interleaved 1F1B (virtual pipeline stages)');
    }
    expect(planCapabilityViolations(interleavedPlan(), engineCapabilities('megatron'))).toEqual([]);
  });

  it('the nearest plan of an engine without interleaving has one chunk per rank, and says so', () => {
    const r = nearestExpressiblePlan('deepspeed', interleavedPlan(), gpt, c2x8);
    expect(r.plan.virtualStages).toBeUndefined();
    expect(r.changes).toContain('one model chunk per rank instead of 2 (deepspeed has no interleaved 1F1B)');
    expect(nearestExpressiblePlan('megatron', interleavedPlan(), gpt, c2x8).plan).toEqual(interleavedPlan());
  });

  it('Megatron-LM refuses a recompute count that differs between chunks', () => {
    const plan = interleavedPlan();
    plan.stages.forEach((s) => { s.ckptLayers = 3; });
    expect(planCapabilityViolations(plan, engineCapabilities('megatron')).map((x) => x.field)).toEqual(['stages[0].ckptLayers']);
  });
});

describe('DeepSpeed', () => {
  const plans = (): Plan[] => [
    makePlan(gpt, c2x8, 64, 2, [stage([0, 23], { mesh: { nodes: 2, gpusPerNode: 8 }, dp: 16, microBatchSize: 2, zero: 3, ckptLayers: 24,
      offload: { weights: 1, grads: 0.5, optim: 0.5, activations: 0 } })]),
    makePlan(gpt, c2x8, 32, 4, [stage([0, 11], { zero: 1 }), stage([12, 23], { zero: 1 })]),
    makePlan(gpt, c2x8, 32, 2, [stage([0, 23], { mesh: { nodes: 2, gpusPerNode: 8 }, dp: 16, zero: 2, offload: { weights: 0, grads: 1, optim: 1, activations: 0 } })]),
  ];

  it('writes the golden ds_config.json and launcher', () => {
    expectGolden('deepspeed', exportDeepspeed(input(plans()[0], gpt, c2x8)));
  });

  it('round-trips every expressible plan through ds_config.json', () => {
    for (const plan of plans()) {
      const cfg = exportDeepspeed(input(plan, gpt, c2x8)).find((f) => f.path === 'ds_config.json')!.content;
      const back = importDeepspeed(cfg, [], { cluster: c2x8, model: gpt, modelInCatalog: true, seqLen: plan.seqLen });
      expect(back.problems).toEqual([]);
      expect(back.plan).toEqual(plan);
    }
  });

  it('names unknown keys and refuses ZeRO-2 with pipelining', () => {
    const r = importDeepspeed(JSON.stringify({ train_batch_size: 16, train_micro_batch_size_per_gpu: 1, zero_optimization: { stage: 1, turbo: true }, magic: 1 }),
      ['--num_gpus', '8', '--frobnicate'], { cluster: c2x8, model: gpt, modelInCatalog: true, seqLen: 1024 });
    expect(r.problems.map((p) => p.option)).toEqual(['magic', '--frobnicate', 'zero_optimization.turbo']);
    expect(r.plan.stages[0]).toMatchObject({ dp: 8, microBatchSize: 1, zero: 1 });
    expect(r.plan.gradAccumSteps).toBe(2);
    const pipe = makePlan(gpt, c2x8, 32, 4, [stage([0, 11], { zero: 2 }), stage([12, 23], { zero: 2 })]);
    expect(() => exportDeepspeed(input(pipe, gpt, c2x8))).toThrow(/ZeRO-2 with pipelining/);
  });
});

describe('torchtitan', () => {
  const s = { mesh: { nodes: 1, gpusPerNode: 8 }, dp: 4, tp: 2, sequenceParallel: true, microBatchSize: 1 };
  const plans = (): Plan[] => [
    makePlan(llama, c2x8, 32, 8, [stage([0, 13], { ...s, zero: 3 }), stage([14, 31], { ...s, zero: 3 })], 8192),
    makePlan(llama, c2x8, 64, 2, [stage([0, 31], { mesh: { nodes: 2, gpusPerNode: 8 }, dp: 16, microBatchSize: 2, zero: 2, ckptLayers: 32,
      offload: { weights: 1, grads: 1, optim: 1, activations: 0 } })], 8192),
    // Per-op selective checkpointing: mode "selective", selective_ac_option "op".
    makePlan(llama, c2x8, 32, 2, [stage([0, 31], { mesh: { nodes: 2, gpusPerNode: 8 }, dp: 16, microBatchSize: 1, zero: 3, opRecompute: true })], 8192),
  ];

  it('writes the golden train.toml and launcher', () => {
    expectGolden('torchtitan', exportTorchtitan(input(plans()[0], llama, c2x8)));
  });

  it('round-trips every expressible plan through train.toml', () => {
    for (const plan of plans()) {
      const toml = exportTorchtitan(input(plan, llama, c2x8)).find((f) => f.path === 'train.toml')!.content;
      const back = importTorchtitan(toml, { cluster: c2x8 });
      expect(back.problems).toEqual([]);
      expect(back.modelInCatalog).toBe(true);
      expect(back.plan).toEqual(plan);
    }
  });

  it('names unknown keys and unmodelled features', () => {
    const toml = '[model]\nname = "llama3"\nflavor = "8B"\nconverters = ["quantize.linear.float8"]\n[training]\nlocal_batch_size = 2\nseq_len = 2048\nwarp = 9\n' +
      '[activation_checkpoint]\nmode = "selective"\n[compile]\nenable=true\n[quantize.linear.float8]\nrecipe_name = "rowwise"\n[quantize.linear.mx]\nrecipe_name = "mxfp8"\n';
    const r = importTorchtitan(toml, { cluster: parseClusterShorthand('1x8-a100-80gb') });
    // mode "selective" without an option is v0.2.2's default "2" (every other layer): not modelled.
    expect(r.problems.map((p) => p.option)).toEqual([
      'training.warp', '[quantize.linear.mx]', 'activation_checkpoint.selective_ac_option', 'quantize.linear.float8.recipe_name',
    ]);
    expect(r.plan.fp8).toBeUndefined();
    // torch.compile of the model and the loss (v0.2.2's default components) is the compiled loss and fused kernels.
    expect(r.training).toEqual({ crossEntropy: 'compiled' });
    expect(r.plan.stages[0]).toMatchObject({ dp: 8, zero: 3, microBatchSize: 2, ckptLayers: 0 });
  });

  it('writes torch.compile on where the prediction compiled the loss, reads it back, and names what it does not model', () => {
    const plan = plans()[0];
    const toml = exportTorchtitan({ ...input(plan, llama, c2x8), crossEntropy: 'compiled' }).find((f) => f.path === 'train.toml')!.content;
    expect(toml).toMatch(/\[compile\]\n# Mist predicted torch.compile[^\n]*\nenable = true\ncomponents = \["model", "loss"\]/);
    const back = importTorchtitan(toml, { cluster: c2x8 });
    expect(back.problems).toEqual([]);
    expect(back.training).toEqual({ crossEntropy: 'compiled' });
    const base = '[model]\nname = "llama3"\nflavor = "8B"\n[training]\nlocal_batch_size = 2\nseq_len = 2048\n[activation_checkpoint]\nmode = "full"\n';
    const cluster = parseClusterShorthand('1x8-a100-80gb');
    const modelOnly = importTorchtitan(`${base}[compile]\nenable = true\ncomponents = ["model"]\n`, { cluster });
    expect(modelOnly.problems.map((p) => p.option)).toEqual(['compile.components']);
    expect(modelOnly.training).toBeUndefined();
  });

  it('names loss parallel turned off and async TP under TP, and says nothing of them without TP', () => {
    const base = '[model]\nname = "llama3"\nflavor = "8B"\n[training]\nlocal_batch_size = 2\nseq_len = 2048\n[activation_checkpoint]\nmode = "full"\n';
    const flags = 'disable_loss_parallel = true\nenable_async_tensor_parallel = true\n';
    const cluster = parseClusterShorthand('1x8-a100-80gb');
    const withTp = importTorchtitan(`${base}[parallelism]\ntensor_parallel_degree = 2\n${flags}`, { cluster });
    expect(withTp.problems.map((p) => p.option)).toEqual(['parallelism.disable_loss_parallel', 'parallelism.enable_async_tensor_parallel']);
    expect(importTorchtitan(`${base}[parallelism]\n${flags}`, { cluster }).problems).toEqual([]);
  });

  it('refuses a GPT model', () => {
    const plan = makePlan(gpt, c2x8, 32, 2, [stage([0, 23], { mesh: { nodes: 2, gpusPerNode: 8 }, dp: 16, zero: 3 })]);
    expect(() => exportTorchtitan(input(plan, gpt, c2x8))).toThrow(/a non-Llama architecture/);
  });

  it('parses the TOML it writes, arrays of arrays included', () => {
    expect(parseToml('[a.b]\nx = [["p", "q"], []]  # c\ny = 1.5\n[c]\nz = false\n')).toEqual({ a: { b: { x: [['p', 'q'], []], y: 1.5 } }, c: { z: false } });
  });
});

describe('nearest expressible plan', () => {
  const mist = makePlan(gpt, c2x8, 32, 4, [
    stage([0, 9], { mesh: { nodes: 1, gpusPerNode: 8 }, dp: 8, microBatchSize: 1, ckptLayers: 2, offload: { weights: 0, grads: 0, optim: 0.3, activations: 0 } }),
    stage([10, 23], { mesh: { nodes: 1, gpusPerNode: 8 }, dp: 4, tp: 2, microBatchSize: 2, ckptLayers: 5, zero: 2 })]);

  for (const engine of ['megatron', 'nemo', 'deepspeed', 'torchtitan'] as const) {
    it(`maps a per-stage plan onto ${engine}`, () => {
      const model = engine === 'torchtitan' ? llama : gpt;
      const plan = engine === 'torchtitan'
        ? makePlan(llama, c2x8, 32, 4, [
          stage([0, 9], { dp: 8, microBatchSize: 1, ckptLayers: 2, zero: 1, offload: { weights: 0, grads: 0, optim: 0.3, activations: 0 } }),
          stage([10, 31], { dp: 4, tp: 2, microBatchSize: 2, ckptLayers: 5, zero: 3 })])
        : mist;
      const r = nearestExpressiblePlan(engine, plan, model, c2x8);
      expect(planCapabilityViolations(r.plan, engineCapabilities(engine))).toEqual([]);
      expect(r.changes.length).toBeGreaterThan(0);
      expect(() => exportPlan(engine, input(r.plan, model, c2x8))).not.toThrow();
    });
  }
});
