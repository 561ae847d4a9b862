// Engine facts in the stage model:
// - the training spec's sequenceParallelInput 'gathered' (PyTorch's DTensor tensor parallelism,
//   torchtitan): the column-parallel linears after a TP region's entry (QKV, FC1, the LM head) keep the
//   all-gathered input, t times the shard Megatron-LM keeps; without sequence parallelism nothing changes;
// - gradAccumDtype 'fp32' (Megatron-LM, NeMo with bf16): fp32 main gradients (core's modelStateBytesPerParam).
import { builtinHardwareProfile, getModel, NO_OFFLOAD, parseClusterShorthand, parseTrainingSpec } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { compileStageModel, type StageQuery } from './compile';
import { evaluate } from './expr';
import { headOps, layerOps } from './op-graph';

/** One whole-model stage on 4 x 8 H100s in bf16 at seq 4096, batch 16 (G 4), with a training spec field set. */
function wholeModelStage(model: string, q: Pick<StageQuery, 'layers' | 'dp' | 'tp' | 'sequenceParallel' | 'ckptLayers' | 'zero'>, training: Record<string, string>) {
  const query: StageQuery = {
    ...q, position: 'only', inFlight: 1, pp: 1, mesh: { nodes: 4, gpusPerNode: 8 }, microBatchSize: 1, gradAccumSteps: 4, offload: NO_OFFLOAD,
  };
  return compileStageModel({
    model: getModel(model), profile: builtinHardwareProfile(parseClusterShorthand('4x8-h100-sxm'), 'bf16'),
    training: parseTrainingSpec({ globalBatch: 4 * q.dp, seqLen: 4096, flashAttention: true, paramDtype: 'bf16', computeDtype: 'bf16', ...training }),
  }).estimate(query);
}

const env = { s: 2048, h: 8192, a: 64, k: 8, f: 28672, V: 128256, fa: 1, b: 2, t: 8, sp: 1, cp: 1, ep: 1, sel: 0, osac: 0 };
const savedBy = (ops: ReturnType<typeof layerOps>, e: Record<string, number>) => new Map(ops.map((o) => [o.name, evaluate(o.saved, e)]));

describe('sequence-parallel linears keeping their gathered input', () => {
  it('QKV, FC1 and the LM head keep t shards of their input; every other op keeps what it kept', () => {
    const llama = getModel('llama3.1-70b');
    const shard = savedBy(layerOps(llama, { actBytes: 2 }), env);
    const gathered = savedBy(layerOps(llama, { actBytes: 2, sequenceParallelInput: 'gathered' }), env);
    const input = 2 * env.b * env.s * env.h; // the gathered norm output, bf16
    for (const name of ['attn.qkv', 'mlp.fc1']) expect(gathered.get(name)! - shard.get(name)!).toBe(input * (1 - 1 / env.t));
    for (const [name, bytes] of shard) if (name !== 'attn.qkv' && name !== 'mlp.fc1') expect(gathered.get(name)).toBe(bytes);
    const head = (o: 'sharded' | 'gathered') => headOps(llama, { actBytes: 2, sequenceParallelInput: o }).reduce((n, op) => n + evaluate(op.saved, env), 0);
    expect(head('gathered') - head('sharded')).toBe(input * (1 - 1 / env.t));
    // Without sequence parallelism the input is whole either way.
    const noSp = { ...env, sp: 0 };
    expect(savedBy(layerOps(llama, { actBytes: 2, sequenceParallelInput: 'gathered' }), noSp)).toEqual(savedBy(layerOps(llama, { actBytes: 2 }), noSp));
  });

  it('raises a TP stage\'s activations and peak, and spares its backward the all-gather of the shard', () => {
    const at = (sequenceParallelInput: 'sharded' | 'gathered') =>
      wholeModelStage('llama3.1-70b', { layers: 10, dp: 4, tp: 8, sequenceParallel: true, ckptLayers: 0, zero: 3 }, { sequenceParallelInput });
    const sharded = at('sharded');
    const gathered = at('gathered');
    // Two gathered inputs per layer and the LM head's (the stage is the whole model), 7/8 of each more.
    expect(gathered.memory.activations - sharded.memory.activations).toBeCloseTo((10 * 2 + 1) * 2 * 4096 * 8192 * (7 / 8), -3);
    expect(gathered.peakMemoryBytes).toBeGreaterThan(sharded.peakMemoryBytes);
    expect(gathered.steadyTimeS).toBeLessThan(sharded.steadyTimeS);
    expect(sharded.steadyTimeS - gathered.steadyTimeS).toBeLessThanOrEqual(sharded.time.tpComm - gathered.time.tpComm + 1e-12);
    expect(gathered.time.tpComm).toBeLessThan(sharded.time.tpComm);
  });
});

describe('gradients accumulated in fp32 in a stage', () => {
  it('bf16 weights with fp32 gradients: twice the gradient bytes, reduced as such; the weights and optimizer states as before', () => {
    const at = (gradAccumDtype: 'param' | 'fp32') =>
      wholeModelStage('llama3.1-8b', { layers: 8, dp: 32, tp: 1, sequenceParallel: false, ckptLayers: 8, zero: 1 }, { gradAccumDtype });
    const bf16 = at('param');
    const fp32 = at('fp32');
    expect(fp32.memory.weights).toBe(bf16.memory.weights);
    expect(fp32.memory.grads).toBeCloseTo(2 * bf16.memory.grads, 0);
    expect(fp32.memory.optim).toBe(bf16.memory.optim);
    // The reduce-scatter of the gradients doubles; the parameter all-gather after the step stays bf16.
    expect(fp32.time.dpComm).toBeGreaterThan(bf16.time.dpComm * 1.3);
  });
});
