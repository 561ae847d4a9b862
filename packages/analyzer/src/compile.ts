// compileStageModel: builds the stage expressions once for a (model, training, profile), binds the
// model dimensions, simplifies and compiles them into one batch kernel. `estimate` and `explain`
// are conveniences on top of the same kernel and expressions.
import { type Mesh, type Offload, type ZeroLevel } from '@mist/core';
import { type Expr, formatWithDefinitions, type Operand, substitute } from './expr';
import { type BatchInput, type BatchKernel, batchKernelSource, compileBatchKernel, type DerivedSymbol } from './expr-compile';
import { IN, INPUT_WIDTH, OUT, OUTPUT_WIDTH, POSITION_CODE, type StagePosition } from './layout';
import { type AnalyzerContext, buildStageExpressions, type OutputName } from './stage-model';

export interface StageQuery {
  layers: number;
  position: StagePosition;
  /**
   * Micro-batches kept in flight by 1F1B: min(pp - stageIndex, gradAccumSteps) (inFlightMicroBatches);
   * a fraction >= 1 for a rank of an interleaved plan.
   */
  inFlight: number;
  pp: number;
  mesh: Mesh;
  microBatchSize: number;
  gradAccumSteps: number;
  dp: number;
  tp: number;
  sequenceParallel: boolean;
  ckptLayers: number;
  /** Selective recompute of the attention core in the layers not fully checkpointed; absent: false. */
  selectiveRecompute?: boolean;
  /** torchtitan's per-op selective checkpointing in the layers not fully checkpointed; absent: false. */
  opRecompute?: boolean;
  zero: ZeroLevel;
  offload: Offload;
  /** Context-parallel degree (absent: 1). */
  cp?: number;
  /** Expert-parallel degree (mixture of experts; absent: 1). */
  ep?: number;
}

export interface StageMemory {
  weights: number;
  grads: number;
  optim: number;
  activations: number;
  /** The rest of the peak: gather/fetch buffers, gradient buffers, recompute of one layer, logits/loss. */
  transient: number;
  peakForward: number;
  peakBackward: number;
  /** The peak of the tensors live at one time (torch.cuda.max_memory_allocated; layout.ts MEM_PEAK_LIVE). */
  peakLive: number;
}

/**
 * Raw durations before overlap, seconds: forward, backward, recompute, tpComm and ppComm per
 * micro-batch; dpComm, offload and optimizer per iteration.
 */
export interface StageTime {
  forward: number;
  backward: number;
  recompute: number;
  tpComm: number;
  dpComm: number;
  ppComm: number;
  offload: number;
  optimizer: number;
}

export interface StageEstimate {
  /** One steady 1F1B micro-batch (forward + backward + recompute, exposed comm, p2p, overlapped ZeRO/offload traffic). */
  steadyTimeS: number;
  /** The stage's first micro-batch: one steady micro-batch plus first-only extras. */
  firstTimeS: number;
  /** Extra time after the last micro-batch only: gradient sync, ZeRO-1/2 weight gather, optimizer step and its copies. */
  lastTimeS: number;
  peakMemoryBytes: number;
  /** usableDeviceMemory(profile). */
  capacityBytes: number;
  /**
   * Host bytes this GPU's rank holds: the offloaded weights, grads and optimizer states and the
   * offloaded saved activations of the in-flight micro-batches (see stage-model.ts).
   */
  hostMemoryBytes: number;
  /** Of which offloaded saved activations (all in-flight micro-batches). */
  hostActivationBytes: number;
  /** usableHostMemoryPerGpu(profile): hostMemoryPerNode / gpusPerNode less the host reserve. */
  hostCapacityBytes: number;
  /** peakMemoryBytes <= capacityBytes. */
  deviceFits: boolean;
  /** hostMemoryBytes <= hostCapacityBytes. */
  hostFits: boolean;
  /** deviceFits && hostFits. */
  fits: boolean;
  memory: StageMemory;
  time: StageTime;
}

export interface CompiledStageModel {
  estimate(q: StageQuery): StageEstimate;
  /**
   * estimate() without its range checks (checkStageQuery), which cost as much as the kernel: for
   * searches that build their queries from plans of their own grid (a bad query gives nonsense, not
   * an error).
   */
  estimateUnchecked(q: StageQuery): StageEstimate;
  /**
   * Hot path: no allocation. Reads candidate i from `input` at offset i*INPUT_WIDTH (columns IN),
   * writes OUTPUT_WIDTH numbers at offset i*OUTPUT_WIDTH (columns OUT), for i in [0, count).
   */
  evaluateBatch(input: Float64Array, output: Float64Array, count: number): void;
  capacityBytes: number;
  /** Host bytes per GPU available to offloaded tensors (usableHostMemoryPerGpu). */
  hostCapacityBytes: number;
  /** Simplified formulas of the stage's time and memory with the given query fields bound. */
  explain(q?: Partial<StageQuery>): { time: string; memory: string };
  /** The generated JavaScript of evaluateBatch (for inspection). */
  kernelSource: string;
}

const INPUT_SYMBOLS: Record<keyof typeof IN, string> = {
  LAYERS: 'L', POSITION: 'pos', IN_FLIGHT: 'inFlight', PP: 'pp', MESH_NODES: 'nodes', MESH_GPUS_PER_NODE: 'gpn',
  MICRO_BATCH: 'b', GRAD_ACCUM: 'G', DP: 'dp', TP: 't', SP: 'sp', CKPT: 'ckpt', ZERO: 'zero',
  OFF_WEIGHTS: 'ow', OFF_GRADS: 'og', OFF_OPTIM: 'oo', OFF_ACT: 'oa', CP: 'cp', SELECTIVE: 'sel', EP: 'ep',
  OP_RECOMPUTE: 'osac',
};

interface Derived extends DerivedSymbol {
  deps: string[];
  value(env: Record<string, number>): number;
}

function derivedSymbols(clusterNodes: number, clusterGpusPerNode: number): Derived[] {
  const flag = (x: boolean): number => (x ? 1 : 0);
  return [
    { name: 'embed', deps: ['pos'], js: '(v_pos === 0 || v_pos === 3 ? 1 : 0)', value: (e) => flag(e.pos === 0 || e.pos === 3) },
    { name: 'head', deps: ['pos'], js: '(v_pos >= 2 ? 1 : 0)', value: (e) => flag(e.pos >= 2) },
    { name: 'prev', deps: ['pos'], js: '(v_pos === 1 || v_pos === 2 ? 1 : 0)', value: (e) => flag(e.pos === 1 || e.pos === 2) },
    { name: 'next', deps: ['pos'], js: '(v_pos <= 1 ? 1 : 0)', value: (e) => flag(e.pos <= 1) },
    { name: 'z1', deps: ['zero'], js: '(v_zero >= 1 ? 1 : 0)', value: (e) => flag(e.zero >= 1) },
    { name: 'z2', deps: ['zero'], js: '(v_zero >= 2 ? 1 : 0)', value: (e) => flag(e.zero >= 2) },
    { name: 'z3', deps: ['zero'], js: '(v_zero >= 3 ? 1 : 0)', value: (e) => flag(e.zero >= 3) },
    { name: 'multiNode', deps: ['nodes'], js: '(v_nodes > 1 ? 1 : 0)', value: (e) => flag(e.nodes > 1) },
    {
      name: 'p2pInter', deps: ['gpn'],
      js: clusterNodes > 1 ? `(v_gpn >= ${clusterGpusPerNode} ? 1 : 0)` : '0',
      value: (e) => flag(clusterNodes > 1 && e.gpn >= clusterGpusPerNode),
    },
  ];
}

function queryBindings(q: Partial<StageQuery>): Record<string, number> {
  const env: Record<string, number> = {};
  const set = (name: string, v: number | undefined): void => {
    if (v !== undefined) env[name] = v;
  };
  set('L', q.layers);
  set('pos', q.position === undefined ? undefined : POSITION_CODE[q.position]);
  set('inFlight', q.inFlight);
  set('pp', q.pp);
  set('nodes', q.mesh?.nodes);
  set('gpn', q.mesh?.gpusPerNode);
  set('b', q.microBatchSize);
  set('G', q.gradAccumSteps);
  set('dp', q.dp);
  set('t', q.tp);
  set('sp', q.sequenceParallel === undefined ? undefined : q.sequenceParallel ? 1 : 0);
  set('ckpt', q.ckptLayers);
  set('zero', q.zero);
  set('ow', q.offload?.weights);
  set('og', q.offload?.grads);
  set('oo', q.offload?.optim);
  set('oa', q.offload?.activations);
  set('cp', q.cp);
  set('ep', q.ep);
  // An optional switch: absent reads as off, as estimate() and writeStageQuery read it.
  set('sel', q.selectiveRecompute === true ? 1 : 0);
  set('osac', q.opRecompute === true ? 1 : 0);
  return env;
}

/** Checks a query's ranges; throws a RangeError naming the field. */
export function checkStageQuery(q: StageQuery): void {
  const int = (name: string, v: number, lo: number): void => {
    if (!Number.isInteger(v) || v < lo) throw new RangeError(`stage query: ${name} must be an integer >= ${lo}, got ${v}`);
  };
  int('layers', q.layers, 1);
  if (!(q.inFlight >= 1)) throw new RangeError(`stage query: inFlight must be a number >= 1, got ${q.inFlight}`);
  int('pp', q.pp, 1);
  int('mesh.nodes', q.mesh.nodes, 1);
  int('mesh.gpusPerNode', q.mesh.gpusPerNode, 1);
  int('microBatchSize', q.microBatchSize, 1);
  int('gradAccumSteps', q.gradAccumSteps, 1);
  int('dp', q.dp, 1);
  int('tp', q.tp, 1);
  int('ckptLayers', q.ckptLayers, 0);
  if (q.cp !== undefined) int('cp', q.cp, 1);
  if (q.ep !== undefined) int('ep', q.ep, 1);
  if (q.ckptLayers > q.layers) throw new RangeError(`stage query: ckptLayers ${q.ckptLayers} exceeds the stage's ${q.layers} layers`);
  if (!(q.position in POSITION_CODE)) throw new RangeError(`stage query: unknown position ${String(q.position)}`);
  if (![0, 1, 2, 3].includes(q.zero)) throw new RangeError(`stage query: zero must be 0..3, got ${q.zero}`);
  for (const [k, v] of Object.entries(q.offload)) {
    if (!(v >= 0 && v <= 1)) throw new RangeError(`stage query: offload.${k} must be in [0, 1], got ${v}`);
  }
}

const POSITION_OF_CODE: readonly StagePosition[] = (Object.keys(POSITION_CODE) as StagePosition[])
  .sort((a, b) => POSITION_CODE[a] - POSITION_CODE[b]);

/** The query written in row `i` of a batch input array (the inverse of writeStageQuery). */
export function readStageQuery(input: Float64Array, i = 0): StageQuery {
  const o = i * INPUT_WIDTH;
  return {
    layers: input[o + IN.LAYERS],
    position: POSITION_OF_CODE[input[o + IN.POSITION]],
    inFlight: input[o + IN.IN_FLIGHT],
    pp: input[o + IN.PP],
    mesh: { nodes: input[o + IN.MESH_NODES], gpusPerNode: input[o + IN.MESH_GPUS_PER_NODE] },
    microBatchSize: input[o + IN.MICRO_BATCH],
    gradAccumSteps: input[o + IN.GRAD_ACCUM],
    dp: input[o + IN.DP],
    tp: input[o + IN.TP],
    sequenceParallel: input[o + IN.SP] === 1,
    ckptLayers: input[o + IN.CKPT],
    zero: input[o + IN.ZERO] as ZeroLevel,
    offload: { weights: input[o + IN.OFF_WEIGHTS], grads: input[o + IN.OFF_GRADS], optim: input[o + IN.OFF_OPTIM], activations: input[o + IN.OFF_ACT] },
    cp: input[o + IN.CP],
    selectiveRecompute: input[o + IN.SELECTIVE] === 1,
    opRecompute: input[o + IN.OP_RECOMPUTE] === 1,
    ep: Math.max(1, input[o + IN.EP]),
  };
}

/** Writes a query into row `i` of a batch input array. */
export function writeStageQuery(q: StageQuery, input: Float64Array, i = 0): void {
  const o = i * INPUT_WIDTH;
  input[o + IN.LAYERS] = q.layers;
  input[o + IN.POSITION] = POSITION_CODE[q.position];
  input[o + IN.IN_FLIGHT] = q.inFlight;
  input[o + IN.PP] = q.pp;
  input[o + IN.MESH_NODES] = q.mesh.nodes;
  input[o + IN.MESH_GPUS_PER_NODE] = q.mesh.gpusPerNode;
  input[o + IN.MICRO_BATCH] = q.microBatchSize;
  input[o + IN.GRAD_ACCUM] = q.gradAccumSteps;
  input[o + IN.DP] = q.dp;
  input[o + IN.TP] = q.tp;
  input[o + IN.SP] = q.sequenceParallel ? 1 : 0;
  input[o + IN.CKPT] = q.ckptLayers;
  input[o + IN.ZERO] = q.zero;
  input[o + IN.OFF_WEIGHTS] = q.offload.weights;
  input[o + IN.OFF_GRADS] = q.offload.grads;
  input[o + IN.OFF_OPTIM] = q.offload.optim;
  input[o + IN.OFF_ACT] = q.offload.activations;
  input[o + IN.CP] = q.cp ?? 1;
  input[o + IN.SELECTIVE] = q.selectiveRecompute === true ? 1 : 0;
  input[o + IN.EP] = q.ep ?? 1;
  input[o + IN.OP_RECOMPUTE] = q.opRecompute === true ? 1 : 0;
}

/** Reads result row `i` of a batch output array into a StageEstimate. */
export function readStageEstimate(output: Float64Array, capacityBytes: number, i = 0): StageEstimate {
  const r = i * OUTPUT_WIDTH;
  const v = (c: number): number => output[r + c];
  return {
    steadyTimeS: v(OUT.STEADY),
    firstTimeS: v(OUT.FIRST),
    lastTimeS: v(OUT.LAST),
    peakMemoryBytes: v(OUT.PEAK_MEMORY),
    capacityBytes,
    hostMemoryBytes: v(OUT.HOST_MEMORY),
    hostActivationBytes: v(OUT.HOST_ACTIVATIONS),
    hostCapacityBytes: v(OUT.HOST_CAPACITY),
    deviceFits: v(OUT.FITS_DEVICE) === 1,
    hostFits: v(OUT.FITS_HOST) === 1,
    fits: v(OUT.FITS) === 1,
    memory: {
      weights: v(OUT.MEM_WEIGHTS), grads: v(OUT.MEM_GRADS), optim: v(OUT.MEM_OPTIM),
      activations: v(OUT.MEM_ACTIVATIONS), transient: v(OUT.MEM_TRANSIENT),
      peakForward: v(OUT.MEM_PEAK_FORWARD), peakBackward: v(OUT.MEM_PEAK_BACKWARD), peakLive: v(OUT.MEM_PEAK_LIVE),
    },
    time: {
      forward: v(OUT.T_FORWARD), backward: v(OUT.T_BACKWARD), recompute: v(OUT.T_RECOMPUTE),
      tpComm: v(OUT.T_TP_COMM), dpComm: v(OUT.T_DP_COMM), ppComm: v(OUT.T_PP_COMM),
      offload: v(OUT.T_OFFLOAD), optimizer: v(OUT.T_OPTIMIZER),
    },
  };
}

export function compileStageModel(ctx: AnalyzerContext): CompiledStageModel {
  const built = buildStageExpressions(ctx);
  const cluster = ctx.profile.cluster;
  const derived = derivedSymbols(cluster.nodes, cluster.gpusPerNode);
  const names = Object.keys(OUT) as OutputName[];
  const bound: Record<OutputName, Expr> = {} as Record<OutputName, Expr>;
  const memo = new Map<string, Expr>();
  for (const n of names) bound[n] = substitute(built.outputs[n], built.modelBindings, memo);

  const inputs: BatchInput[] = (Object.keys(IN) as (keyof typeof IN)[]).map((key) => ({ name: INPUT_SYMBOLS[key], column: IN[key] }));
  const ordered = names.slice().sort((x, y) => OUT[x] - OUT[y]).map((n) => bound[n]);
  const spec = { inputs, derived, outputs: ordered, inputWidth: INPUT_WIDTH, outputWidth: OUTPUT_WIDTH };
  const kernelSource = batchKernelSource(spec);
  const kernel: BatchKernel = compileBatchKernel(spec, kernelSource);
  const capacityBytes = built.capacityBytes;
  const hostCapacityBytes = built.hostCapacityBytes;
  const oneIn = new Float64Array(INPUT_WIDTH);
  const oneOut = new Float64Array(OUTPUT_WIDTH);

  const explainText = (q: Partial<StageQuery> | undefined, outs: [string, OutputName][]): string => {
    // A query without cp (ep) means cp (ep) 1, as everywhere else; no query leaves every symbol free.
    const env = queryBindings(q === undefined ? {} : { cp: 1, ep: 1, ...q });
    const bindings: Record<string, Operand> = { ...env };
    for (const d of derived) if (d.deps.every((x) => x in env)) bindings[d.name] = d.value(env);
    const m = new Map<string, Expr>();
    return formatWithDefinitions(outs.map(([label, n]) => {
      const e = substitute(bound[n], bindings, m);
      return { label, expr: e.k === 'ref' ? e.body : e };
    }));
  };

  const estimateUnchecked = (q: StageQuery): StageEstimate => {
    writeStageQuery(q, oneIn);
    kernel(oneIn, oneOut, 1);
    return readStageEstimate(oneOut, capacityBytes);
  };
  return {
    capacityBytes,
    hostCapacityBytes,
    kernelSource,
    evaluateBatch: kernel,
    estimate(q: StageQuery): StageEstimate {
      checkStageQuery(q);
      return estimateUnchecked(q);
    },
    estimateUnchecked,
    explain(q?: Partial<StageQuery>) {
      return {
        time: explainText(q, [['steady [s]', 'STEADY'], ['first [s]', 'FIRST'], ['last (extra) [s]', 'LAST']]),
        memory: explainText(q, [
          ['weights [B]', 'MEM_WEIGHTS'], ['grads [B]', 'MEM_GRADS'], ['optim [B]', 'MEM_OPTIM'],
          ['activations [B]', 'MEM_ACTIVATIONS'], ['peak forward [B]', 'MEM_PEAK_FORWARD'],
          ['peak backward [B]', 'MEM_PEAK_BACKWARD'], [`peak [B] (capacity ${capacityBytes} B)`, 'PEAK_MEMORY'],
          [`host [B] (capacity ${hostCapacityBytes} B)`, 'HOST_MEMORY'],
        ]),
      };
    },
  };
}
