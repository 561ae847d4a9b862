// `mist fit --model M --gpu G`: the memory pre-flight before buying or booking a cluster.
// Tunes the model on clusters of that GPU of growing size (1, 2, 4 ... GPUs of one node, then 2, 4,
// 8 ... nodes) and stops at the first size on which some plan fits: that is the smallest cluster,
// and its best plan is shown with its memory margin. Sizes below it are listed with what the closest
// plan lacked. "Fits" is the analyzer's: each stage's device peak within the usable memory (the
// datasheet capacity less the CUDA context and NCCL buffers, less allocator fragmentation, as the
// built-in profile states them) and its offloaded bytes within the GPU's share of host memory.
import {
  buildCluster, type ClusterSpec, formatBytes, formatSeconds, getGpu, loadModel, parseTrainingSpec,
  type Plan, usableDeviceMemory,
} from '@mist/core';
import { contextFor, type PlanEstimate } from '@mist/analyzer';
import { searchKnobsFromFlags, spaceFromKnobs, trainingForTarget, tune, type TuneResult } from '@mist/tuner';
import {
  type Command, enumOpt, GRAD_ACCUM_OPTION, gradReduceOverlapOpt, intOpt, JSON_OPTION, NO_GRAD_REDUCE_OVERLAP_OPTION, numberOpt, requireString, stringOpt,
  UsageError,
} from '../cli/command';
import { DATASHEET_OPTION, gpuProfiles } from '../cli/cluster-profile';
import { trainingFactsText } from '../cli/stage-text';
import { renderTable } from '../cli/table';

/**
 * GPUs per node when --gpus-per-node is not given: every machine the cluster catalog describes has 8
 * (GCP g2-standard-96 with 8 L4, AWS g5.48xlarge with 8 A10G, DGX-1V, DGX A100, DGX H100/H200;
 * packages/core/src/cluster.ts).
 */
const DEFAULT_GPUS_PER_NODE = 8;
const DEFAULT_SEQ = 2048;
const DEFAULT_GLOBAL_BATCH = 256;
const DEFAULT_MAX_GPUS = 1024;
const DEFAULT_TIME_LIMIT_S = 20;

/** Cluster sizes tried, smallest first: powers of two within one node, then powers of two of nodes. */
export function clusterSizes(gpusPerNode: number, maxGpus: number): Array<{ nodes: number; gpusPerNode: number }> {
  const sizes: Array<{ nodes: number; gpusPerNode: number }> = [];
  for (let g = 1; g < gpusPerNode && g <= maxGpus; g *= 2) sizes.push({ nodes: 1, gpusPerNode: g });
  for (let n = 1; n * gpusPerNode <= maxGpus; n *= 2) sizes.push({ nodes: n, gpusPerNode });
  return sizes;
}

interface SizeResult {
  cluster: string;
  gpus: number;
  fits: boolean;
  /** Set when it fits: the best plan's iteration time and smallest device margin. */
  iterationTimeS: number | null;
  marginBytes: number | null;
  marginFraction: number | null;
  /** Set when nothing fits: what the closest candidate lacked, bytes per GPU, and where. */
  shortfallBytes: number | null;
  binding: string | null;
  /** True when the search stopped at its time limit (a plan may exist that it did not reach). */
  timedOut: boolean;
}

/** The smallest device margin over the stages of an estimate: capacity less peak, bytes and fraction. */
function smallestMargin(est: PlanEstimate): { bytes: number; fraction: number } {
  let best = { bytes: Infinity, fraction: Infinity };
  for (const s of est.stages) {
    const bytes = s.capacityBytes - s.peakMemoryBytes;
    if (bytes < best.bytes) best = { bytes, fraction: bytes / s.capacityBytes };
  }
  return best;
}

function sizeResult(cluster: ClusterSpec, r: TuneResult): SizeResult {
  const fits = r.plan !== null && r.predicted !== null && r.predicted.allFit;
  const margin = fits && r.predicted ? smallestMargin(r.predicted) : null;
  return {
    cluster: cluster.name,
    gpus: cluster.nodes * cluster.gpusPerNode,
    fits,
    iterationTimeS: fits && r.predicted ? r.predicted.iterationTimeS : null,
    marginBytes: margin?.bytes ?? null,
    marginFraction: margin?.fraction ?? null,
    shortfallBytes: fits ? null : r.noFit?.shortfallBytes ?? null,
    binding: fits ? null : r.noFit?.binding ?? null,
    timedOut: (r.stoppedBy ?? null) !== null,
  };
}

function planLine(plan: Plan): string {
  return plan.stages.map((s, i) =>
    `stage ${i}: layers ${s.layers[0]}-${s.layers[1]}, ${s.mesh.nodes}x${s.mesh.gpusPerNode} GPUs, dp ${s.dp} tp ${s.tp}` +
    `${s.sequenceParallel ? ' sp' : ''}, b ${s.microBatchSize}, ckpt ${s.ckptLayers}, zero ${s.zero}` +
    (s.offload.weights + s.offload.grads + s.offload.optim + s.offload.activations > 0
      ? `, offload w ${s.offload.weights} g ${s.offload.grads} o ${s.offload.optim} a ${s.offload.activations}` : ''),
  ).join('\n  ');
}

export const fitCommand: Command = {
  name: 'fit',
  summary: 'which plans of a model fit on a GPU at all, and the smallest cluster of it on which one fits (memory pre-flight)',
  usage: 'mist fit --model NAME|FILE --gpu GPU [--seq N] [--global-batch N] [--max-gpus N] [--gpus-per-node N] [--time-limit S] ' +
    '[--dtype fp16|bf16] [--target ENGINE|BACKEND] [--grad-accum-dtype param|fp32] [--no-overlap-grad-reduce] [--datasheet] [--json]',
  examples: [
    'mist fit --model gpt3-1.3b --gpu l4',
    'mist fit --model llama2-7b --gpu a100-40gb --seq 4096 --global-batch 128',
    'mist fit --model gpt3-175b --gpu h100 --max-gpus 256 --json',
    'mist fit --model llama2-7b --gpu a100-80gb --dtype bf16 --target megatron',
  ],
  options: {
    model: { type: 'string', valueName: 'NAME|FILE', description: 'model (catalog name, model file or Hugging Face config.json)' },
    gpu: { type: 'string', valueName: 'GPU', description: 'catalog GPU, e.g. l4, a100-80gb, h100' },
    seq: { type: 'string', valueName: 'N', description: `sequence length (default ${DEFAULT_SEQ}, at most the model's learned positions)` },
    'global-batch': { type: 'string', valueName: 'N', description: `sequences per iteration (default ${DEFAULT_GLOBAL_BATCH})` },
    'max-gpus': { type: 'string', valueName: 'N', description: `largest cluster tried (default ${DEFAULT_MAX_GPUS})` },
    'gpus-per-node': { type: 'string', valueName: 'N', description: `GPUs per node (default ${DEFAULT_GPUS_PER_NODE}, the catalog machines' size)` },
    'time-limit': { type: 'string', valueName: 'S', description: `seconds of search per cluster size (default ${DEFAULT_TIME_LIMIT_S})` },
    dtype: { type: 'string', valueName: 'fp16|bf16', description: 'the weights\' and activations\' dtype (default fp16; with bf16 Megatron-LM and NeMo keep fp32 main gradients)' },
    target: {
      type: 'string', valueName: 'ENGINE|BACKEND',
      description: 'only plans this engine can launch (megatron, nemo, deepspeed, torchtitan) or this executor backend runs (cpu, cuda), costed as it runs them',
    },
    ...GRAD_ACCUM_OPTION,
    ...NO_GRAD_REDUCE_OVERLAP_OPTION,
    ...DATASHEET_OPTION,
    ...JSON_OPTION,
  },
  async run(values, _positionals, io) {
    const model = loadModel(requireString(values, 'model'));
    const gpu = getGpu(requireString(values, 'gpu'));
    const seqLen = intOpt(values, 'seq') ?? Math.min(DEFAULT_SEQ, model.maxSeq);
    const globalBatch = intOpt(values, 'global-batch', DEFAULT_GLOBAL_BATCH) ?? DEFAULT_GLOBAL_BATCH;
    const maxGpus = intOpt(values, 'max-gpus', DEFAULT_MAX_GPUS) ?? DEFAULT_MAX_GPUS;
    const gpusPerNode = intOpt(values, 'gpus-per-node', DEFAULT_GPUS_PER_NODE) ?? DEFAULT_GPUS_PER_NODE;
    const timeLimitS = numberOpt(values, 'time-limit', DEFAULT_TIME_LIMIT_S) ?? DEFAULT_TIME_LIMIT_S;
    for (const [name, v] of [['seq', seqLen], ['global-batch', globalBatch], ['max-gpus', maxGpus], ['gpus-per-node', gpusPerNode]] as const) {
      if (!(Number.isInteger(v) && v >= 1)) throw new UsageError(`--${name} must be a positive integer (got ${v})`);
    }
    if (!(timeLimitS > 0)) throw new UsageError(`--time-limit must be a positive number of seconds (got ${timeLimitS})`);
    // The same knobs as mist tune's --target and --grad-accum-dtype (search-knobs.ts): the engine's or
    // backend's space, and its training facts (e.g. Megatron-LM's fp32 main gradients with bf16).
    const knobs = searchKnobsFromFlags({ target: stringOpt(values, 'target'), 'grad-accum-dtype': stringOpt(values, 'grad-accum-dtype') });
    const dtype = enumOpt(values, 'dtype', ['fp16', 'bf16'] as const, 'fp16');
    const training = trainingForTarget(knobs, model, parseTrainingSpec({ globalBatch, seqLen, paramDtype: dtype, computeDtype: dtype, ...gradReduceOverlapOpt(values) }), gpu.name);
    const space = spaceFromKnobs(knobs, model, training);
    const spaceText = knobs.target === undefined ? 'Mist search space, offloading included' : `plans ${knobs.target} runs`;

    const tried: SizeResult[] = [];
    let found: { cluster: ClusterSpec; result: TuneResult } | null = null;
    // The GPU's kept measured profile where there is one (cli/cluster-profile.ts), read and said once.
    const profileOf = gpuProfiles(gpu.name, training.computeDtype, { datasheet: values.datasheet === true, target: knobs.target }, io.stderr);
    for (const size of clusterSizes(gpusPerNode, maxGpus)) {
      const cluster = buildCluster({ ...size, gpu });
      const ctx = contextFor({ model, profile: profileOf(cluster), training });
      const result = await tune(ctx, { space, timeLimitS });
      tried.push(sizeResult(cluster, result));
      if (tried[tried.length - 1].fits) {
        found = { cluster, result };
        break;
      }
    }
    if (tried.length === 0) throw new UsageError(`--max-gpus ${maxGpus} leaves no cluster size to try`);

    const profile = profileOf(found?.cluster ?? buildCluster({ nodes: 1, gpusPerNode: 1, gpu }));
    const usable = usableDeviceMemory(profile);
    const reserves = {
      datasheetBytes: gpu.memoryBytes,
      usableBytes: usable,
      cudaContextBytes: profile.memory.cudaContextBytes,
      ncclBufferBytes: profile.memory.ncclBufferBytes,
      fragmentation: profile.memory.fragmentation,
    };
    const smallest = found ? tried[tried.length - 1] : null;
    if (values.json) {
      io.stdout(JSON.stringify({
        model: model.name, gpu: gpu.name, seqLen, globalBatch, gpusPerNode, maxGpus, ...(knobs.target ? { target: knobs.target } : {}),
        ...(training.gradAccumDtype === 'fp32' ? { gradAccumDtype: 'fp32' } : {}), memory: reserves,
        smallestCluster: smallest, plan: found?.result.plan ?? null, tried,
      }, null, 2) + '\n');
      return found ? 0 : 1;
    }

    let text = `${model.name} on ${gpu.name}, seq ${seqLen}, global batch ${globalBatch} (${spaceText}${trainingFactsText(training)}; ` +
      `${formatSeconds(timeLimitS)} of search per size)\n` +
      `Usable memory per GPU: ${formatBytes(usable)} of the ${profile.source === 'measured' ? 'measured profile' : 'datasheet'}'s ` +
      `${formatBytes(profile.cluster.gpu.memoryBytes)} ` +
      `(less ${formatBytes(reserves.cudaContextBytes)} CUDA context and ${formatBytes(reserves.ncclBufferBytes)} NCCL buffers, ` +
      `then ${(100 * reserves.fragmentation).toFixed(0)}% allocator fragmentation); a plan fits when every stage's peak is within it.\n\n`;
    text += renderTable(tried, [
      { header: 'cluster', value: (r) => r.cluster },
      { header: 'GPUs', value: (r) => r.gpus, align: 'right' },
      { header: 'fits', value: (r) => (r.fits ? 'yes' : r.timedOut ? 'no plan found in the time limit' : 'no') },
      { header: 'iteration', value: (r) => (r.iterationTimeS === null ? '-' : formatSeconds(r.iterationTimeS)), align: 'right' },
      { header: 'margin', value: (r) => (r.marginBytes === null ? '-' : `${formatBytes(r.marginBytes)} (${(100 * (r.marginFraction ?? 0)).toFixed(1)}%)`), align: 'right' },
      { header: 'short by', value: (r) => (r.shortfallBytes === null ? '-' : `${formatBytes(r.shortfallBytes)} ${r.binding ?? ''}`.trim()), align: 'right' },
    ]);
    if (found && smallest && found.result.plan) {
      text += `\nSmallest cluster: ${smallest.cluster} (${smallest.gpus} GPUs = ${found.cluster.nodes} node(s) x ${found.cluster.gpusPerNode}); ` +
        `best plan ${formatSeconds(smallest.iterationTimeS ?? 0)} per iteration, smallest stage margin ` +
        `${formatBytes(smallest.marginBytes ?? 0)} (${(100 * (smallest.marginFraction ?? 0)).toFixed(1)}% of the usable memory) ` +
        `on top of the reserves above.\n  ${planLine(found.result.plan)}\n` +
        `Save it with: mist tune --model ${model.name} --cluster ${smallest.cluster} --global-batch ${globalBatch} --seq ${seqLen}` +
        `${knobs.target ? ` --target ${knobs.target}` : ''}${knobs.gradAccumDtype ? ` --grad-accum-dtype ${knobs.gradAccumDtype}` : ''} --out plan.json\n`;
      io.stdout(text);
      return 0;
    }
    io.stdout(text);
    io.stderr(`mist fit: no plan of ${model.name} fits on up to ${maxGpus} ${gpu.name} GPUs (raise --max-gpus, lower --seq or --global-batch)\n`);
    return 1;
  },
};
