// One rank of a plan: its stage's layers sharded by TP, the 1F1B schedule over gradAccumSteps
// micro-batches with the pipeline send/recv on the world communicator, gradient reduction over DP
// (all-reduce, or reduce-scatter with ZeRO >= 2), the tied-embedding gradient sum between the first
// and last stage (as Megatron-LM does), clipping by the global norm, AdamW on the rank's ZeRO shard,
// activation checkpointing, offload into host pools, and per-step metrics. Where each unit of the
// weights, gradients and moments lives (ZeRO-3 per-layer gathers, offload) is unit-memory.ts.
//
// The step's loss is the mean token loss over the whole global batch: every last-stage rank scales
// its loss gradient by 1 / (globalBatch * seq) and DP sums the gradients, which is exactly the
// gradient of one process running the whole batch.
//
// An interleaved plan (virtualStages v > 1) gives the rank v model chunks (core's rankChunkLayers),
// each its own Stage with its own unit memory, run by core's interleavedSchedule; a chunk's messages
// go to the neighbouring virtual stage (the last rank's chunk c feeds the first rank's chunk c + 1).
// The DP, ZeRO and optimizer work runs chunk by chunk in chunk order on every rank of a DP group.
//
// Context parallelism (a stage's cp > 1): the rank holds chunks cpIndex and 2cp-1-cpIndex of every
// sequence of its micro-batch (model/context-parallel.ts) with their tokens and targets, its layers'
// attention is a K/V ring over the stage's CP group (model/ring-attention.ts), and the gradient
// group, in which gradients are summed (each cp rank's tokens give part of every gradient) and
// ZeRO shards are cut, is the stage's dp * cp ranks with the rank's tp index. The loss is the sum
// over that group of the ranks' token losses, scaled by 1 / (globalBatch * seq) as without cp.
//
// Expert parallelism (a stage's ep > 1, mixture-of-experts models): the rank holds experts/ep of
// each layer's experts, its layers exchange token rows all-to-all over the stage's expert-parallel
// group (model/moe.ts, runtime/all-to-all.ts), and the experts' gradients are summed over the
// expert-data-parallel group instead of the DP group (runtime/expert-sync.ts; topology/expert-groups.ts).
//
// The runtime is generic over the Device (device/device.ts) like the single-process trainer: the
// stages, unit memory and pools allocate its tensors, the communicators move them, and every copy,
// view, zeroing and host read goes through it (the CPU device by default, whose operations are
// what the runtime did before the seam). Not yet on another device: mixture-of-experts layers
// (expert parallelism's all-to-all and expert gradient sync are CPU-only). fp16 compute scales the
// loss dynamically (train/loss-scaler.ts: a step whose gradients overflow is skipped on every rank
// alike). bf16 and fp16 compute keep fp32 master weights and moments in the sharded
// optimizer (optimizer.ts); gradients are reduced in the compute dtype.
import { expertRankIndices, interleavedSchedule, type ModelSpec, type Plan, rankChunkLayers, stageCp, stageEp, type StageStrategy, virtualNeighbour } from '@mist/core';
import type { CommBuffer, Communicator, GroupOp } from '@mist/native';
import { cpuDevice } from '../device/cpu-device';
import type { Device } from '../device/device';
import { contextParallelLayout, type CpRing, type ParamUnit, type SeqLayout, Stage, type StageContext, type StageInput, type UnitHooks } from '../model';
import { placeSlice, takeSlice } from '../checkpoint/tensor-slice';
import { oneFOneBSchedule, type CommOp, type ScheduleStep } from '../schedule/one-f-one-b';
import { cpColor, dpColor, dpcpIndex, edpColor, epColor, rankPosition, type RankPosition, tpColor, worldSize as planWorld } from '../topology';
import { ActivationStash } from '../memory/activations';
import { MemoryPools } from '../memory/pools';
import type { StepMetrics } from '../worker/protocol';
import { batchTokens, type TokenSource } from './data';
import { type AdamWHyper, clipScale, DEFAULT_ADAMW } from './hyper';
import { LOSS_SCALER_DEFAULTS, LossScaler, type LossScalerOptions } from '../train/loss-scaler';
import { recvRoutes, type Route, sendRoutes } from './routes';
import { StepTimer } from './timer';
import { commExpertGroup } from './all-to-all';
import { commTpHooks } from './tp-hooks';
import { UnitMemory } from './unit-memory';

const WTE = 'embed.wte';

/** F, I: the device's float and int32 tensor types (Float32Array, Int32Array on the CPU). */
export interface RankRuntimeOptions<F extends CommBuffer = Float32Array, I = Int32Array> {
  plan: Plan;
  model: ModelSpec;
  rank: number;
  /** The world communicator (all ranks of the plan); it moves the device's tensors. */
  world: Communicator<F>;
  /** Where the rank's tensors live and its kernels run (default the CPU). */
  device?: Device<F, I>;
  seed: number;
  /** Learning rate of each 1-based step. */
  lr: (step: number) => number;
  data: TokenSource;
  hyper?: Partial<AdamWHyper>;
  /** fp16 compute: the dynamic loss scaler's settings (default PyTorch GradScaler's, train/loss-scaler.ts). */
  lossScaler?: Partial<LossScalerOptions>;
  /**
   * Communication beside compute (unit-memory.ts): flat gradients (ZeRO 0-1) all-reduce each unit's
   * part over DP beside the last micro-batch's backward instead of the whole vector after it, and
   * ZeRO-3 gathers the next module's weights while a module runs. Default: on a GPU device, where
   * NCCL runs on its own stream; off on the CPU, where the communicator's thread takes cores from
   * the kernels (gpt-tiny dp 2 on a 2-core VM: 40 ms a step with the gradient overlap, 33 ms without).
   */
  overlapComm?: boolean;
}

/** A rank's local flat vectors: params, and the AdamW moments (zero where this rank keeps none). */
export interface LocalState {
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

/** Map key of a (micro-batch, chunk) pair of a rank with `chunks` chunks. */
function keyOf(microBatch: number, chunk: number | undefined, chunks: number): number {
  return microBatch * chunks + (chunk ?? 0);
}

function keyMicroBatch(key: number, chunks: number): string {
  return chunks === 1 ? String(key) : `${Math.floor(key / chunks)} (chunk ${key % chunks})`;
}

/** One model chunk of the rank: its layers, where its weights live and where its messages go. */
interface Chunk<F extends CommBuffer, I> {
  stage: Stage<F, I>;
  memory: UnitMemory<F, I>;
  /** The pipeline's first (embedding) and last (head and loss) virtual stage. */
  first: boolean;
  last: boolean;
  fwdSend: Route[];
  fwdRecv: Route[];
  bwdSend: Route[];
  bwdRecv: Route[];
}

export class RankRuntime<F extends CommBuffer = Float32Array, I = Int32Array> {
  readonly pos: RankPosition;
  readonly strategy: StageStrategy;
  /** The rank's model chunks' stages, in chunk order (one unless the plan is interleaved). */
  readonly stages: readonly Stage<F, I>[];
  readonly device: Device<F, I>;
  /** fp16: the dynamic loss scale (the loss gradient is multiplied by it, the optimizer divides it out); null otherwise. */
  private readonly scaler: LossScaler | null;
  readonly pools: MemoryPools<F>;
  /** AdamW steps taken (the next step is stepsDone + 1). */
  stepsDone = 0;
  private readonly timer = new StepTimer();
  private readonly hyper: AdamWHyper;
  private readonly chunks: Chunk<F, I>[];
  private readonly schedule: ScheduleStep[];

  private constructor(
    private readonly o: RankRuntimeOptions<F, I>,
    private readonly tpComm: Communicator<F>,
    private readonly dpComm: Communicator<F>,
    /** First and last stage ranks, for the tied embedding gradient; null elsewhere or when not needed. */
    private readonly embComm: Communicator<F> | null,
    /** The stage's CP group (the K/V ring); null when its cp is 1. */
    private readonly cpComm: Communicator<F> | null,
    /** Expert parallelism (the stage's ep > 1): the expert-parallel and expert-data-parallel groups, else null. */
    private readonly epComm: Communicator<F> | null = null,
    private readonly edpComm: Communicator<F> | null = null,
  ) {
    const { plan, model, rank } = o;
    const device = this.device = RankRuntime.deviceOf(o);
    this.scaler = device.computeDtype === 'fp16' ? new LossScaler({ ...LOSS_SCALER_DEFAULTS, ...o.lossScaler }) : null;
    this.pools = new MemoryPools<F>(device);
    this.pos = rankPosition(plan, rank);
    this.strategy = plan.stages[this.pos.stage];
    const st = this.strategy;
    const pp = plan.stages.length;
    const ranges = rankChunkLayers(plan, this.pos.stage);
    const v = ranges.length;
    this.hyper = { ...DEFAULT_ADAMW, ...o.hyper };
    // Checkpointed layers split evenly over the chunks (the first ones get the remainder), as
    // Megatron-LM's --recompute-num-layers applies to every chunk.
    const ckptOf = (c: number): number => Math.floor(st.ckptLayers / v) + (c < st.ckptLayers % v ? 1 : 0);
    this.layout = contextParallelLayout(plan.seqLen, this.pos.cp, this.pos.cpIndex);
    const ring = cpComm ? this.ring(cpComm) : undefined;
    // Expert parallelism is CPU-only (checked above): its communicator moves Float32Arrays.
    const experts = epComm ? commExpertGroup(epComm as unknown as Communicator<Float32Array>, this.timer) : undefined;
    const ex = expertRankIndices(plan, rank);
    // Gradients and ZeRO shards span the stage's dp * cp ranks (UnitMemory reads dp as the group size).
    const gradGroup: StageStrategy = { ...st, dp: st.dp * this.pos.cp };
    this.chunks = ranges.map((layers, c): Chunk<F, I> => {
      const first = this.pos.stage === 0 && c === 0;
      const last = this.pos.stage === pp - 1 && c === v - 1;
      // The stage calls these around each module; they forward to the unit memory built right after it.
      // Saved activations are accounted (and offloaded) module by module through the same hooks.
      let target: UnitMemory<F, I> | null = null;
      const stash = new ActivationStash(this.pools, st.offload.activations);
      const units: UnitHooks = {
        async enter(u: readonly ParamUnit[], phase, saved) {
          if (phase === 'backward') stash.beforeBackward(saved);
          await (target as UnitMemory<F, I>).enter(u, phase);
        },
        async exit(u: readonly ParamUnit[], phase, saved) {
          await (target as UnitMemory<F, I>).exit(u, phase);
          if (phase === 'forward') stash.afterForward(saved);
          else stash.afterBackward(saved);
        },
      };
      const stage = new Stage<F, I>({
        model, layers, embedding: first, head: last, seed: o.seed, tp: st.tp, tpRank: this.pos.tpIndex,
        hooks: st.tp > 1 ? commTpHooks(tpComm, this.timer) : undefined, sequenceParallel: st.sequenceParallel, ckptLayers: ckptOf(c),
        selectiveRecompute: st.selectiveRecompute ?? false, flashAttention: plan.flashAttention ?? true, storage: UnitMemory.storage(st), units, ring, experts, device,
      });
      // The tied token table's gradient is summed across the first and last stage before DP reduces it.
      const deferred = new Set<number>();
      if (embComm && stage.paramEntries.some((e) => e.name === WTE)) {
        const u = stage.units.find((x) => x.entries.some((e) => e.name === WTE));
        if (u) deferred.add(u.index);
      }
      const memory = target = new UnitMemory<F, I>({
        stage, strategy: gradGroup, dpIndex: dpcpIndex(this.pos), dpComm, pools: this.pools, timer: this.timer, hyper: this.hyper, deferredUnits: deferred,
        overlapComm: o.overlapComm ?? device.kind === 'cuda',
        // CPU-only (checked above): the expert-data-parallel communicator moves Float32Arrays.
        experts: ex.ep > 1 ? { comm: edpComm as unknown as Communicator<Float32Array> | null, edp: ex.edp, edpIndex: ex.edpIndex } : undefined,
      });
      const next = virtualNeighbour(this.pos.stage, c, pp, v, 'next');
      const prev = virtualNeighbour(this.pos.stage, c, pp, v, 'prev');
      return {
        stage, memory, first, last,
        fwdSend: next ? sendRoutes(plan, this.pos, next.stage) : [],
        fwdRecv: prev ? recvRoutes(plan, this.pos, prev.stage) : [],
        bwdSend: prev ? sendRoutes(plan, this.pos, prev.stage) : [],
        bwdRecv: next ? recvRoutes(plan, this.pos, next.stage) : [],
      };
    });
    this.stages = this.chunks.map((c) => c.stage);
    this.schedule = v > 1
      ? interleavedSchedule({ stage: this.pos.stage, pp, gradAccumSteps: plan.gradAccumSteps, chunks: v })
      : oneFOneBSchedule({ stage: this.pos.stage, pp, gradAccumSteps: plan.gradAccumSteps });
  }

  /** The rank's rows of every sequence (the whole sequence when the stage's cp is 1). */
  private readonly layout: SeqLayout;

  /** The K/V ring of the CP group: each step one grouped send to the next cp rank and receive from the previous. */
  private ring(comm: Communicator<F>): CpRing<F> {
    const { cp, cpIndex } = this.pos;
    const next = (cpIndex + 1) % cp, prev = (cpIndex + cp - 1) % cp;
    return {
      cp, rank: cpIndex,
      shift: (send, recv) => comm.group([
        ...send.map((buffer): GroupOp<F> => ({ kind: 'send', buffer, peer: next })),
        ...recv.map((buffer): GroupOp<F> => ({ kind: 'recv', buffer, peer: prev })),
      ]),
      wait: (p) => this.timer.wait(p),
    };
  }

  /** A micro-batch's tokens or targets [count x seq] cut to this rank's rows of each sequence. */
  private ownRows(all: Int32Array, count: number): Int32Array {
    const l = this.layout;
    if (l.seq === l.globalSeq) return all;
    const out = new Int32Array(count * l.seq);
    for (let g = 0; g < count; g++) {
      for (const p of l.pieces) out.set(all.subarray(g * l.globalSeq + p.global, g * l.globalSeq + p.global + p.length), g * l.seq + p.local);
    }
    return out;
  }

  /** The rank's stage (its only model chunk); an interleaved rank has several (`stages`). */
  get stage(): Stage<F, I> {
    if (this.chunks.length > 1) throw new Error(`not implemented: one stage of an interleaved rank (${this.chunks.length} model chunks); read RankRuntime.stages`);
    return this.chunks[0].stage;
  }

  private chunk(c: number): Chunk<F, I> {
    const k = this.chunks[c];
    if (!k) throw new RangeError(`chunk ${c}: the rank holds chunks 0..${this.chunks.length - 1}`);
    return k;
  }

  /** The options' device (default the CPU), refused when the runtime cannot train there. */
  private static deviceOf<F extends CommBuffer, I>(o: RankRuntimeOptions<F, I>): Device<F, I> {
    const device = o.device ?? (cpuDevice as unknown as Device<F, I>);
    if (o.model.moe && device.kind !== 'cpu') throw new Error(`model ${o.model.name}: mixture-of-experts layers run on the CPU device only, not ${device.kind}`);
    return device;
  }

  /** Collective over the world: every rank of the plan creates its runtime at the same time. */
  static async create<F extends CommBuffer = Float32Array, I = Int32Array>(o: RankRuntimeOptions<F, I>): Promise<RankRuntime<F, I>> {
    // Refused before the collective splits, on every rank alike (the device and model are the job's).
    RankRuntime.deviceOf(o);
    const pos = rankPosition(o.plan, o.rank);
    if (o.world.worldSize !== planWorld(o.plan)) throw new Error(`the plan needs ${planWorld(o.plan)} ranks, the communicator has ${o.world.worldSize}`);
    const pp = o.plan.stages.length;
    const tpComm = await o.world.split(tpColor(pos), pos.tpIndex);
    const dpComm = await o.world.split(dpColor(pos), dpcpIndex(pos));
    // Every rank takes part in the CP split when some stage has cp > 1 (the split is collective).
    const anyCp = o.plan.stages.some((s) => stageCp(s) > 1);
    const cpComm = anyCp ? await o.world.split(pos.cp > 1 ? cpColor(pos) : -1, pos.cpIndex) : null;
    // Expert parallelism: every rank takes part in both splits when some stage has ep > 1.
    const anyEp = o.plan.stages.some((s) => stageEp(s) > 1);
    const ep = stageEp(o.plan.stages[pos.stage]);
    const epComm = anyEp ? await o.world.split(ep > 1 ? epColor(o.plan, pos) : -1, pos.rank) : null;
    const edpComm = anyEp ? await o.world.split(ep > 1 ? edpColor(o.plan, pos) : -1, pos.rank) : null;
    const tied = o.model.tiedEmbeddings && pp > 1;
    const inEmb = tied && (pos.stage === 0 || pos.stage === pp - 1);
    const embComm = await o.world.split(inEmb ? 0 : -1, o.rank);
    if (!tpComm || !dpComm) throw new Error(`rank ${o.rank}: communicator split returned no TP/DP group`);
    if (pos.cp > 1 && !cpComm) throw new Error(`rank ${o.rank}: communicator split returned no CP group`);
    if (ep > 1 && !epComm) throw new Error(`rank ${o.rank}: communicator split returned no expert-parallel group`);
    return new RankRuntime<F, I>(o, tpComm, dpComm, embComm, cpComm, epComm, edpComm);
  }

  /** This rank's DP shard of every unit of the flat vector (what it saves in a checkpoint). */
  get ownedRanges(): Array<[number, number]> {
    return this.ownedRangesOf(0);
  }

  /** This rank's DP shard of every unit of chunk c's flat vector (stages[c]'s layout). */
  ownedRangesOf(c: number): Array<[number, number]> {
    return this.chunk(c).memory.ownedRanges;
  }

  private get seq(): number {
    return this.o.plan.seqLen;
  }

  private get hidden(): number {
    return this.o.model.hidden;
  }

  private samples(st: StageStrategy, mb: number): { first: number; count: number } {
    const perMb = st.microBatchSize * st.dp;
    return { first: mb * perMb + this.pos.dpIndex * st.microBatchSize, count: st.microBatchSize };
  }

  /** Runs one training iteration; returns its metrics. */
  async step(): Promise<StepMetrics> {
    const { plan } = this.o;
    const st = this.strategy;
    const step = this.stepsDone + 1;
    const b = st.microBatchSize, seq = this.layout.seq, H = this.hidden;
    const rows = b * seq;
    const gradScale = 1 / (plan.globalBatch * this.seq);
    // fp16: the loss gradient is scaled up so that small gradients survive fp16 (1 otherwise: exact).
    const lossScale = this.scaler ? this.scaler.scale : 1;
    if (this.o.data.globalBatch !== plan.globalBatch || this.o.data.seq !== this.seq) {
      throw new Error(`the data source draws batches of ${this.o.data.globalBatch} x ${this.o.data.seq}, the plan needs ${plan.globalBatch} x ${this.seq}`);
    }
    this.pools.resetPeaks();
    const offloadBefore = { ...this.pools.offloadBytes };
    this.timer.start();
    for (const c of this.chunks) c.memory.zeroGrads();
    // Per (micro-batch, chunk), keyed by keyOf.
    const inputs = new Map<number, F>();
    const outputs = new Map<number, F>();
    const gradIns = new Map<number, F>();
    const gradOuts = new Map<number, F>();
    const contexts = new Map<number, StageContext<F>>();
    // Received activations per micro-batch: the first layer's saved input until that micro-batch's backward.
    const received = new Map<number, F>();
    let lossSum = 0;

    const take = <T>(m: Map<number, T>, key: number, what: string): T => {
      const v = m.get(key);
      if (v === undefined) throw new Error(`rank ${this.o.rank}: no ${what} for micro-batch ${keyMicroBatch(key, this.chunks.length)}`);
      m.delete(key);
      return v;
    };

    for (const s of this.schedule) {
      if (s.kind === 'forward') {
        const chunk = this.chunks[s.chunk ?? 0];
        const key = keyOf(s.microBatch, s.chunk, this.chunks.length);
        const input: StageInput<F> = { batch: b, seq };
        const { first, count } = this.samples(st, s.microBatch);
        if (chunk.first || chunk.last) {
          const t = batchTokens(this.o.data, step, first, count);
          if (chunk.first) input.tokens = this.ownRows(t.tokens, count);
          if (chunk.last) input.targets = this.ownRows(t.targets, count);
        }
        let recvd: F | null = null;
        if (!chunk.first) {
          recvd = take(inputs, key, 'input activations');
          // With sequence parallelism the stage copies its rows: the received buffer is dead after the forward.
          if (!chunk.stage.sp) received.set(key, recvd);
          input.hidden = recvd;
        }
        const dropout = { step, firstSample: first };
        const r = await this.timer.phase('forward', () => chunk.stage.forward(input, { train: true, gradScale: gradScale * lossScale, dropout }));
        // The received buffer now lives on as the first layer's saved input (accounted by the stash).
        if (recvd) this.pools.release(recvd);
        if (recvd && chunk.stage.sp) chunk.stage.recycle([recvd]);
        input.hidden = undefined;
        lossSum += r.lossSum;
        contexts.set(key, r.context as StageContext<F>);
        if (!chunk.last) outputs.set(key, this.pools.adopt(r.output as F, 'transient'));
      } else if (s.kind === 'backward') {
        const chunk = this.chunks[s.chunk ?? 0];
        const key = keyOf(s.microBatch, s.chunk, this.chunks.length);
        const ctx = take(contexts, key, 'saved activations');
        const gin = chunk.last ? undefined : take(gradIns, key, 'output gradient');
        if (s.microBatch === plan.gradAccumSteps - 1) chunk.memory.lastBackwardBegins();
        const dx = await this.timer.phase('backward', () => chunk.stage.backward(ctx, gin));
        if (gin) this.pools.release(gin);
        if (!chunk.first) gradOuts.set(key, this.pools.adopt(dx as F, 'transient'));
        // The received input and output gradient are dead now: later receives reuse them.
        const recvd = received.get(key);
        received.delete(key);
        chunk.stage.recycle([recvd, gin].filter((a): a is F => a !== undefined && a !== dx));
      } else {
        await this.communicate(s.ops, rows, H, inputs, outputs, gradIns, gradOuts, take);
      }
    }

    let skipped = false;
    const norm = await this.timer.phase('optimizer', async () => {
      await this.reduceGradients();
      // The norm is all-reduced over the world, so every rank takes the same decision on an overflow.
      const n = (await this.globalGradNorm()) / lossScale;
      if (this.scaler && !Number.isFinite(n)) {
        skipped = true; // fp16 overflow: the update is skipped and the scale backs off
        this.scaler.update(false);
        return n;
      }
      for (const c of this.chunks) await c.memory.optimizerStep(step, this.o.lr(step), clipScale(n, this.hyper.maxGradNorm) / lossScale);
      this.scaler?.update(true);
      return n;
    });

    // The step's loss: sum over the last stage's DP (x CP) ranks (every TP rank computes the same).
    let loss: number | null = null;
    if (this.chunks[this.chunks.length - 1].last) {
      // One fp32 number through the device (the communicator moves device tensors), read back once.
      const buf = this.device.upload(Float32Array.of(lossSum), 'fp32');
      if (st.dp * this.pos.cp > 1) await this.timer.wait(this.dpComm.allReduce(buf, 'sum'));
      loss = this.device.read(buf)[0] * gradScale;
    }
    this.stepsDone = step;
    const t = this.timer.stop();
    return {
      step, loss, stepTimeS: t.stepTimeS, tokensPerS: (plan.globalBatch * this.seq) / t.stepTimeS, computeS: t.computeS, waitS: t.waitS, phases: t.phases,
      peakBytes: this.pools.peaks(),
      offloadBytes: {
        toHost: this.pools.offloadBytes.toHost - offloadBefore.toHost,
        toDevice: this.pools.offloadBytes.toDevice - offloadBefore.toDevice,
      },
      gradNorm: norm,
      ...(this.scaler ? { lossScale, skipped } : {}),
    };
  }

  /** The ops of one schedule comm step, issued as one group so paired send/recv cannot deadlock. */
  private async communicate(
    ops: CommOp[], rows: number, H: number, inputs: Map<number, F>, outputs: Map<number, F>,
    gradIns: Map<number, F>, gradOuts: Map<number, F>,
    take: <T>(m: Map<number, T>, key: number, what: string) => T,
  ): Promise<void> {
    // A route's rows: a view when they are one run, else a packed copy (send) or a staging
    // buffer scattered into place once the group is done (receive: cp changes at the boundary).
    const d = this.device;
    const scatters: Array<{ from: F; to: F; r: Route }> = [];
    const rowCount = (r: Route): number => r.rows.reduce((n, [, c]) => n + c, 0);
    const sendPart = (a: F, r: Route): F => {
      if (r.rows.length === 1) return d.view(a, r.rows[0][0] * H, (r.rows[0][0] + r.rows[0][1]) * H);
      const msg = d.zeros(rowCount(r) * H);
      let at = 0;
      for (const [r0, n] of r.rows) {
        d.copy(d.view(msg, at, at + n * H), d.view(a, r0 * H, (r0 + n) * H));
        at += n * H;
      }
      return msg;
    };
    const recvPart = (a: F, r: Route): F => {
      if (r.rows.length === 1) return d.view(a, r.rows[0][0] * H, (r.rows[0][0] + r.rows[0][1]) * H);
      const msg = d.zeros(rowCount(r) * H);
      scatters.push({ from: msg, to: a, r });
      return msg;
    };
    const group: GroupOp<F>[] = [];
    const sent: Array<{ chunk: Chunk<F, I>; buffer: F }> = [];
    for (const op of ops) {
      const chunk = this.chunks[op.chunk ?? 0];
      const key = keyOf(op.microBatch, op.chunk, this.chunks.length);
      if (op.op === 'recvForward') {
        const buf = this.pools.adopt(chunk.stage.takeBuffer(rows * H), 'transient');
        inputs.set(key, buf);
        for (const r of chunk.fwdRecv) group.push({ kind: 'recv', buffer: recvPart(buf, r), peer: r.peer });
      } else if (op.op === 'sendForward') {
        const out = take(outputs, key, 'output activations');
        sent.push({ chunk, buffer: out });
        for (const r of chunk.fwdSend) group.push({ kind: 'send', buffer: sendPart(out, r), peer: r.peer });
      } else if (op.op === 'recvBackward') {
        const buf = this.pools.adopt(chunk.stage.takeBuffer(rows * H), 'transient');
        gradIns.set(key, buf);
        for (const r of chunk.bwdRecv) group.push({ kind: 'recv', buffer: recvPart(buf, r), peer: r.peer });
      } else {
        const dx = take(gradOuts, key, 'input gradient');
        sent.push({ chunk, buffer: dx });
        for (const r of chunk.bwdSend) group.push({ kind: 'send', buffer: sendPart(dx, r), peer: r.peer });
      }
    }
    if (group.length > 0) await this.timer.wait(this.o.world.group(group));
    for (const { from, to, r } of scatters) {
      let at = 0;
      for (const [r0, n] of r.rows) {
        d.copy(d.view(to, r0 * H, (r0 + n) * H), d.view(from, at, at + n * H));
        at += n * H;
      }
    }
    for (const a of sent) this.pools.release(a.buffer);
    // Sent activations and gradients are dead here: the chunk's layers reuse their buffers.
    for (const c of this.chunks) c.stage.recycle(sent.filter((a) => a.chunk === c).map((a) => a.buffer));
  }

  /**
   * Tied embeddings, then what DP has not reduced yet. The token table's gradient of the first stage
   * (embedding) and the last (LM head) is summed over all their ranks: each rank places its
   * vocabulary rows in a full-size buffer (the two stages may split it over different tp), one
   * all-reduce adds them; rank 0 of the gradient group (DP x CP) keeps the total of its rows and the
   * others zero, so that the group's reduction yields the total exactly once.
   */
  private async reduceGradients(): Promise<void> {
    const withWte = this.chunks.find((c) => c.stage.paramEntries.some((e) => e.name === WTE));
    if (this.embComm && withWte) {
      const stage = withWte.stage;
      const e = stage.paramEntries.find((x) => x.name === WTE) as (typeof stage.paramEntries)[number];
      const d = this.device;
      const g = stage.grad(WTE);
      const full = this.pools.tensor('transient', e.shape[0] * (e.shape[1] ?? 1));
      // The slices are placed on the host: the full tensor's values there (the tensor itself on
      // the CPU device, a zero download elsewhere), written back when they are a copy.
      const host = d.read(full);
      placeSlice(e, this.pos.tp, this.pos.tpIndex, host, d.read(g));
      if ((host as unknown) !== full) d.write(full, host);
      await this.timer.wait(this.embComm.allReduce(full, 'sum'));
      if (dpcpIndex(this.pos) === 0) d.write(g, takeSlice(e, this.pos.tp, this.pos.tpIndex, d.read(full), e.size));
      else d.zero(g);
      this.pools.release(full);
    }
    for (const c of this.chunks) await c.memory.finishGradients();
  }

  /**
   * L2 norm of the whole model's gradient: each rank sums the squares of its DP shards, counting
   * tensors replicated over TP on TP rank 0 only and the last stage's copy of a tied token table
   * not at all; one world all-reduce adds the parts.
   */
  private async globalGradNorm(): Promise<number> {
    let sum = 0;
    for (const c of this.chunks) {
      sum += await c.memory.gradSquares((name, shard) => (shard === 'none' && this.pos.tpIndex !== 0) || (name === WTE && c.stage.tiedEmbeddingCopy));
    }
    // One fp32 number through the device (the communicator moves device tensors), read back once.
    const buf = this.device.upload(Float32Array.of(sum), 'fp32');
    await this.timer.wait(this.o.world.allReduce(buf, 'sum'));
    return Math.sqrt(this.device.read(buf)[0]);
  }

  /**
   * Chunk c's current state as full-length local vectors of stages[c] (moments only over its DP
   * shards). Collective over the DP group with ZeRO-3 (the weights are gathered).
   */
  async exportState(c = 0): Promise<LocalState> {
    const k = this.chunk(c);
    return k.memory.exportState(k.stage.paramCount);
  }

  /**
   * Replaces chunk c's weights and moments (full-length local vectors of stages[c]) and the step
   * count, e.g. from a checkpoint.
   */
  importState(s: LocalState, stepsDone: number, c = 0): void {
    this.chunk(c).memory.importState(s);
    this.stepsDone = stepsDone;
  }

  async destroy(): Promise<void> {
    for (const c of [this.tpComm, this.dpComm, this.embComm, this.cpComm, this.epComm, this.edpComm]) if (c) await c.destroy();
  }
}

