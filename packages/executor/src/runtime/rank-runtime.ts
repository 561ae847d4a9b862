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
import type { ModelSpec, Plan, StageStrategy } from '@mist/core';
import type { Communicator, GroupOp } from '@mist/native';
import { type ParamUnit, Stage, type StageContext, type StageInput, type UnitHooks } from '../model';
import { placeSlice, takeSlice } from '../checkpoint/tensor-slice';
import { oneFOneBSchedule, type CommOp, type ScheduleStep } from '../schedule/one-f-one-b';
import { dpColor, rankPosition, type RankPosition, tpColor, worldSize as planWorld } from '../topology';
import { ActivationStash } from '../memory/activations';
import { MemoryPools } from '../memory/pools';
import type { StepMetrics } from '../worker/protocol';
import { batchTokens, type TokenSource } from './data';
import { type AdamWHyper, clipScale, DEFAULT_ADAMW } from './hyper';
import { recvRoutes, type Route, sendRoutes } from './routes';
import { StepTimer } from './timer';
import { commTpHooks } from './tp-hooks';
import { UnitMemory } from './unit-memory';

const WTE = 'embed.wte';

export interface RankRuntimeOptions {
  plan: Plan;
  model: ModelSpec;
  rank: number;
  /** The world communicator (all ranks of the plan). */
  world: Communicator<Float32Array>;
  seed: number;
  /** Learning rate of each 1-based step. */
  lr: (step: number) => number;
  data: TokenSource;
  hyper?: Partial<AdamWHyper>;
}

/** A rank's local flat vectors: params, and the AdamW moments (zero where this rank keeps none). */
export interface LocalState {
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

export class RankRuntime {
  readonly pos: RankPosition;
  readonly strategy: StageStrategy;
  readonly stage: Stage;
  readonly pools = new MemoryPools();
  /** AdamW steps taken (the next step is stepsDone + 1). */
  stepsDone = 0;
  private readonly timer = new StepTimer();
  private readonly hyper: AdamWHyper;
  private readonly memory: UnitMemory;
  private readonly first: boolean;
  private readonly last: boolean;
  private readonly fwdSend: Route[];
  private readonly fwdRecv: Route[];
  private readonly bwdSend: Route[];
  private readonly bwdRecv: Route[];
  private readonly schedule: ScheduleStep[];

  private constructor(
    private readonly o: RankRuntimeOptions,
    private readonly tpComm: Communicator<Float32Array>,
    private readonly dpComm: Communicator<Float32Array>,
    /** First and last stage ranks, for the tied embedding gradient; null elsewhere or when not needed. */
    private readonly embComm: Communicator<Float32Array> | null,
  ) {
    const { plan, model, rank } = o;
    this.pos = rankPosition(plan, rank);
    this.strategy = plan.stages[this.pos.stage];
    const st = this.strategy;
    this.first = this.pos.stage === 0;
    this.last = this.pos.stage === plan.stages.length - 1;
    this.hyper = { ...DEFAULT_ADAMW, ...o.hyper };
    // The stage calls these around each module; they forward to the unit memory built right after it.
    // Saved activations are accounted (and offloaded) module by module through the same hooks.
    let target: UnitMemory | null = null;
    const stash = new ActivationStash(this.pools, st.offload.activations);
    const units: UnitHooks = {
      async enter(u: readonly ParamUnit[], phase, saved) {
        if (phase === 'backward') stash.beforeBackward(saved);
        await (target as UnitMemory).enter(u, phase);
      },
      async exit(u: readonly ParamUnit[], phase, saved) {
        await (target as UnitMemory).exit(u, phase);
        if (phase === 'forward') stash.afterForward(saved);
        else stash.afterBackward(saved);
      },
    };
    const storage = UnitMemory.storage(st);
    this.stage = new Stage({
      model, layers: st.layers, embedding: this.first, head: this.last, seed: o.seed, tp: st.tp, tpRank: this.pos.tpIndex,
      hooks: st.tp > 1 ? commTpHooks(tpComm, st.sequenceParallel, this.timer, this.pools) : undefined, ckptLayers: st.ckptLayers,
      storage, units,
    });
    // The tied token table's gradient is summed across the first and last stage before DP reduces it.
    const deferred = new Set<number>();
    if (embComm && this.stage.paramEntries.some((e) => e.name === WTE)) {
      const u = this.stage.units.find((x) => x.entries.some((e) => e.name === WTE));
      if (u) deferred.add(u.index);
    }
    this.memory = target = new UnitMemory({
      stage: this.stage, strategy: st, dpIndex: this.pos.dpIndex, dpComm, pools: this.pools, timer: this.timer, hyper: this.hyper, deferredUnits: deferred,
    });
    this.fwdSend = this.last ? [] : sendRoutes(plan, this.pos, this.pos.stage + 1);
    this.fwdRecv = this.first ? [] : recvRoutes(plan, this.pos, this.pos.stage - 1);
    this.bwdSend = this.first ? [] : sendRoutes(plan, this.pos, this.pos.stage - 1);
    this.bwdRecv = this.last ? [] : recvRoutes(plan, this.pos, this.pos.stage + 1);
    this.schedule = oneFOneBSchedule({ stage: this.pos.stage, pp: plan.stages.length, gradAccumSteps: plan.gradAccumSteps });
  }

  /** Collective over the world: every rank of the plan creates its runtime at the same time. */
  static async create(o: RankRuntimeOptions): Promise<RankRuntime> {
    const pos = rankPosition(o.plan, o.rank);
    if (o.world.worldSize !== planWorld(o.plan)) throw new Error(`the plan needs ${planWorld(o.plan)} ranks, the communicator has ${o.world.worldSize}`);
    const pp = o.plan.stages.length;
    const tpComm = await o.world.split(tpColor(pos), pos.tpIndex);
    const dpComm = await o.world.split(dpColor(pos), pos.dpIndex);
    const tied = o.model.tiedEmbeddings && pp > 1;
    const inEmb = tied && (pos.stage === 0 || pos.stage === pp - 1);
    const embComm = await o.world.split(inEmb ? 0 : -1, o.rank);
    if (!tpComm || !dpComm) throw new Error(`rank ${o.rank}: communicator split returned no TP/DP group`);
    return new RankRuntime(o, tpComm, dpComm, embComm);
  }

  /** This rank's DP shard of every unit of the flat vector (what it saves in a checkpoint). */
  get ownedRanges(): Array<[number, number]> {
    return this.memory.ownedRanges;
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
    const b = st.microBatchSize, seq = this.seq, H = this.hidden;
    const rows = b * seq;
    const gradScale = 1 / (plan.globalBatch * seq);
    if (this.o.data.globalBatch !== plan.globalBatch || this.o.data.seq !== seq) {
      throw new Error(`the data source draws batches of ${this.o.data.globalBatch} x ${this.o.data.seq}, the plan needs ${plan.globalBatch} x ${seq}`);
    }
    this.pools.resetPeaks();
    const offloadBefore = { ...this.pools.offloadBytes };
    this.timer.start();
    this.memory.zeroGrads();
    const inputs = new Map<number, Float32Array>();
    const outputs = new Map<number, Float32Array>();
    const gradIns = new Map<number, Float32Array>();
    const gradOuts = new Map<number, Float32Array>();
    const contexts = new Map<number, StageContext>();
    // Received activations per micro-batch: the first layer's saved input until that micro-batch's backward.
    const received = new Map<number, Float32Array>();
    let lossSum = 0;

    const take = <T>(m: Map<number, T>, mb: number, what: string): T => {
      const v = m.get(mb);
      if (v === undefined) throw new Error(`rank ${this.o.rank}: no ${what} for micro-batch ${mb}`);
      m.delete(mb);
      return v;
    };

    for (const s of this.schedule) {
      if (s.kind === 'forward') {
        const input: StageInput = { batch: b, seq };
        const { first, count } = this.samples(st, s.microBatch);
        if (this.first || this.last) {
          const t = batchTokens(this.o.data, step, first, count);
          if (this.first) input.tokens = t.tokens;
          if (this.last) input.targets = t.targets;
        }
        let recvd: Float32Array | null = null;
        if (!this.first) {
          recvd = take(inputs, s.microBatch, 'input activations');
          received.set(s.microBatch, recvd);
          input.hidden = recvd;
        }
        const r = await this.timer.phase('forward', () => this.stage.forward(input, { train: true, gradScale }));
        // The received buffer now lives on as the first layer's saved input (accounted by the stash).
        if (recvd) this.pools.release(recvd);
        input.hidden = undefined;
        lossSum += r.lossSum;
        contexts.set(s.microBatch, r.context as StageContext);
        if (!this.last) outputs.set(s.microBatch, this.pools.adopt(r.output as Float32Array, 'transient'));
      } else if (s.kind === 'backward') {
        const ctx = take(contexts, s.microBatch, 'saved activations');
        const gin = this.last ? undefined : take(gradIns, s.microBatch, 'output gradient');
        const dx = await this.timer.phase('backward', () => this.stage.backward(ctx, gin));
        if (gin) this.pools.release(gin);
        if (!this.first) gradOuts.set(s.microBatch, this.pools.adopt(dx as Float32Array, 'transient'));
        // The received input and output gradient are dead now: later receives reuse them.
        const recvd = received.get(s.microBatch);
        received.delete(s.microBatch);
        this.stage.recycle([recvd, gin].filter((a): a is Float32Array => a !== undefined && a !== dx));
      } else {
        await this.communicate(s.ops, rows, H, inputs, outputs, gradIns, gradOuts, take);
      }
    }

    const norm = await this.timer.phase('optimizer', async () => {
      await this.reduceGradients();
      const n = await this.globalGradNorm();
      await this.memory.optimizerStep(step, this.o.lr(step), clipScale(n, this.hyper.maxGradNorm));
      return n;
    });

    // The step's loss: sum over the last stage's DP ranks (every TP rank computes the same).
    let loss: number | null = null;
    if (this.last) {
      const buf = Float32Array.of(lossSum);
      if (st.dp > 1) await this.timer.wait(this.dpComm.allReduce(buf, 'sum'));
      loss = buf[0] * gradScale;
    }
    this.stepsDone = step;
    const t = this.timer.stop();
    return {
      step, loss, stepTimeS: t.stepTimeS, tokensPerS: (plan.globalBatch * seq) / t.stepTimeS, computeS: t.computeS, waitS: t.waitS, phases: t.phases,
      peakBytes: this.pools.peaks(),
      offloadBytes: {
        toHost: this.pools.offloadBytes.toHost - offloadBefore.toHost,
        toDevice: this.pools.offloadBytes.toDevice - offloadBefore.toDevice,
      },
      gradNorm: norm,
    };
  }

  /** The ops of one schedule comm step, issued as one group so paired send/recv cannot deadlock. */
  private async communicate(
    ops: CommOp[], rows: number, H: number, inputs: Map<number, Float32Array>, outputs: Map<number, Float32Array>,
    gradIns: Map<number, Float32Array>, gradOuts: Map<number, Float32Array>,
    take: <T>(m: Map<number, T>, mb: number, what: string) => T,
  ): Promise<void> {
    const seqH = this.seq * H;
    const part = (a: Float32Array, r: Route): Float32Array => a.subarray(r.samples[0] * seqH, r.samples[1] * seqH);
    const group: GroupOp<Float32Array>[] = [];
    const sent: Float32Array[] = [];
    for (const op of ops) {
      if (op.op === 'recvForward') {
        const buf = this.pools.adopt(this.stage.takeBuffer(rows * H), 'transient');
        inputs.set(op.microBatch, buf);
        for (const r of this.fwdRecv) group.push({ kind: 'recv', buffer: part(buf, r), peer: r.peer });
      } else if (op.op === 'sendForward') {
        const out = take(outputs, op.microBatch, 'output activations');
        sent.push(out);
        for (const r of this.fwdSend) group.push({ kind: 'send', buffer: part(out, r), peer: r.peer });
      } else if (op.op === 'recvBackward') {
        const buf = this.pools.adopt(this.stage.takeBuffer(rows * H), 'transient');
        gradIns.set(op.microBatch, buf);
        for (const r of this.bwdRecv) group.push({ kind: 'recv', buffer: part(buf, r), peer: r.peer });
      } else {
        const dx = take(gradOuts, op.microBatch, 'input gradient');
        sent.push(dx);
        for (const r of this.bwdSend) group.push({ kind: 'send', buffer: part(dx, r), peer: r.peer });
      }
    }
    if (group.length > 0) await this.timer.wait(this.o.world.group(group));
    for (const a of sent) this.pools.release(a);
    // Sent activations and gradients are dead here: the stage's layers reuse their buffers.
    this.stage.recycle(sent);
  }

  /**
   * Tied embeddings, then what DP has not reduced yet. The token table's gradient of the first stage
   * (embedding) and the last (LM head) is summed over all their ranks: each rank places its
   * vocabulary rows in a full-size buffer (the two stages may split it over different tp), one
   * all-reduce adds them; DP rank 0 keeps the total of its rows and the others zero, so that the DP
   * reduction yields the total exactly once.
   */
  private async reduceGradients(): Promise<void> {
    if (this.embComm && this.stage.paramEntries.some((e) => e.name === WTE)) {
      const e = this.stage.paramEntries.find((x) => x.name === WTE) as (typeof this.stage.paramEntries)[number];
      const g = this.stage.grad(WTE);
      const full = this.pools.f32('transient', e.shape[0] * (e.shape[1] ?? 1));
      placeSlice(e, this.pos.tp, this.pos.tpIndex, full, g);
      await this.timer.wait(this.embComm.allReduce(full, 'sum'));
      if (this.pos.dpIndex === 0) g.set(takeSlice(e, this.pos.tp, this.pos.tpIndex, full, e.size));
      else g.fill(0);
      this.pools.release(full);
    }
    await this.memory.finishGradients();
  }

  /**
   * L2 norm of the whole model's gradient: each rank sums the squares of its DP shards, counting
   * tensors replicated over TP on TP rank 0 only and the last stage's copy of a tied token table
   * not at all; one world all-reduce adds the parts.
   */
  private async globalGradNorm(): Promise<number> {
    const sum = this.memory.gradSquares((name, shard) =>
      (shard === 'none' && this.pos.tpIndex !== 0) || (name === WTE && this.stage.tiedEmbeddingCopy));
    const buf = Float32Array.of(sum);
    await this.timer.wait(this.o.world.allReduce(buf, 'sum'));
    return Math.sqrt(buf[0]);
  }

  /**
   * The rank's current state as full-length local vectors (moments only over its DP shards).
   * Collective over the DP group with ZeRO-3 (the weights are gathered).
   */
  async exportState(): Promise<LocalState> {
    return this.memory.exportState(this.stage.paramCount);
  }

  /** Replaces weights and moments (full-length local vectors) and the step count, e.g. from a checkpoint. */
  importState(s: LocalState, stepsDone: number): void {
    this.memory.importState(s);
    this.stepsDone = stepsDone;
  }

  async destroy(): Promise<void> {
    for (const c of [this.tpComm, this.dpComm, this.embComm]) if (c) await c.destroy();
  }
}

