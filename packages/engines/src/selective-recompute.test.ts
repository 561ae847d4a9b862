// Selective recompute of the attention core in the engines that run it: Megatron-LM's
// `--recompute-granularity selective` (one choice for the model, exclusive with full recompute:
// arguments.py asserts recompute_method is None with it) and NeMo's recompute_granularity.
import { describe, expect, it } from 'vitest';
import { getModel, parseClusterShorthand, type Plan } from '@mist/core';
import { exportDeepspeed, exportMegatron, exportNemo, importMegatron, InexpressiblePlanError } from './index';
import { input, makePlan, stage } from './test-helpers';

const gpt = getModel('gpt3-1.3b');
const c2x8 = parseClusterShorthand('2x8-a100-80gb');
const s = { mesh: { nodes: 1, gpusPerNode: 4 }, dp: 2, tp: 2, sequenceParallel: true, microBatchSize: 2, zero: 1 as const };

function selectivePlan(ckptLayers = 0, last = true): Plan {
  return makePlan(gpt, c2x8, 16, 4, [
    stage([0, 5], { ...s, ckptLayers, selectiveRecompute: true }), stage([6, 11], { ...s, ckptLayers, selectiveRecompute: true }),
    stage([12, 17], { ...s, ckptLayers, selectiveRecompute: true }), stage([18, 23], { ...s, ckptLayers, selectiveRecompute: last })]);
}

const files = (f: { path: string; content: string }[], path: string): string => f.find((x) => x.path === path)!.content;

describe('selective recompute export and import', () => {
  it('Megatron-LM: --recompute-granularity selective, read back as the same plan', () => {
    const plan = selectivePlan();
    const args = files(exportMegatron(input(plan, gpt, c2x8)), 'args.txt');
    expect(args).toContain('--recompute-granularity selective\n');
    expect(args).not.toContain('--recompute-method');
    const back = importMegatron(args.split(/\s+/).filter(Boolean), { cluster: c2x8 });
    expect(back.problems).toEqual([]);
    expect(back.plan).toEqual(plan);
  });

  it('Megatron-LM: --recompute-activations reads as selective recompute in every stage', () => {
    const args = files(exportMegatron(input(selectivePlan(), gpt, c2x8)), 'args.txt')
      .replace('--recompute-granularity selective', '--recompute-activations').split(/\s+/).filter(Boolean);
    const back = importMegatron(args, { cluster: c2x8 });
    expect(back.problems).toEqual([]);
    expect(back.plan.stages.every((x) => x.selectiveRecompute === true && x.ckptLayers === 0)).toBe(true);
  });

  it('NeMo: recompute_granularity = "selective"', () => {
    const py = files(exportNemo(input(selectivePlan(), gpt, c2x8)), 'nemo_pretrain.py');
    expect(py).toContain('    recipe.model.config.recompute_granularity = "selective"\n');
  });

  it('refuses it in some stages only, beside whole-layer recompute, and in engines without it, naming each', () => {
    const features = (f: () => unknown): string[] => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(InexpressiblePlanError);
        return (e as InexpressiblePlanError).violations.map((v) => `${v.feature}@${v.field}`);
      }
      return expect.unreachable() as never;
    };
    expect(features(() => exportMegatron(input(selectivePlan(0, false), gpt, c2x8))))
      .toContain('selective recompute in some stages only@stages[3].selectiveRecompute');
    expect(features(() => exportMegatron(input(selectivePlan(2), gpt, c2x8))))
      .toContain('selective and whole-layer recompute together@stages[0].ckptLayers');
    const one = makePlan(gpt, c2x8, 32, 2, [stage([0, 23], { mesh: { nodes: 2, gpusPerNode: 8 }, dp: 16, microBatchSize: 1, selectiveRecompute: true })]);
    expect(features(() => exportDeepspeed(input(one, gpt, c2x8)))).toContain('selective recompute@stages[0].selectiveRecompute');
  });
});
