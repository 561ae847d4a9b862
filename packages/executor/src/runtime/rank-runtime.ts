// One rank of a plan: its stage's layers sharded by TP, the 1F1B schedule over gradAccumSteps
// micro-batches with the pipeline send/recv on the world communicator, gradient reduction over DP
// (all-reduce, or reduce-scatter with ZeRO >= 2), the tied-embedding gradient sum between the first
// and last stage (as Megatron-LM does), clipping by the global norm, AdamW on the rank's ZeRO shard,
// activation checkpointing, offload into host pools, and per-step metrics.
//
// The step's loss is the mean token loss over the whole global batch: every last-stage rank scales
// its loss gradient by 1 / (globalBatch * seq) and DP sums the gradients, which is exactly the
// gradient of one process running the whole batch.
import type { ModelSpec, Plan, StageStrategy } from '@mist/core';
import type { Communicator, GroupOp } from '@mist/native';
import { Stage, type StageContext, type StageInput } from '../model';
import { oneFOneBSchedule, type CommOp, type ScheduleStep } from '../schedule/one-f-one-b';
import { dpColor, rankPosition, type RankPosition, tpColor, worldSize as planWorld } from '../topology';
import { offloadActivations, reloadActivations, savedBytes } from '../memory/activations';
import { MemoryPools } from '../memory/pools';
import type { StepMetrics } from '../worker/protocol';
import { batchTokens, type TokenSource } from './data';
import { type AdamWHyper, clipScale, DEFAULT_ADAMW } from './hyper';
import { type FlatView, ShardedAdamW } from './optimizer';
import { recvRoutes, type Route, sendRoutes } from './routes';
import { type DpShard, dpShard, segments } from './shard';
import { StepTimer } from './timer';
import { commTpHooks } from './tp-hooks';

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
  readonly shard: DpShard;
  /** AdamW steps taken (the next step is stepsDone + 1). */
  stepsDone = 0;
  private readonly timer = new StepTimer();
  private readonly hyper: AdamWHyper;
  private readonly optimizer: ShardedAdamW;
  private readonly first: boolean;
  private readonly last: boolean;
  /** ZeRO-3: this rank's shard of the weights (the master copy); stage.params is the gathered working copy. */
  private readonly master: Float32Array | null;
  /** ZeRO >= 2: this rank's shard of the reduced gradients. */
  private readonly gradShard: Float32Array | null;
  /** Weight offload: the last part of the persistent weights lives in the host pool. */
  private readonly hostWeights: { lo: number; data: Float32Array } | null;
  private readonly hostGrads: { lo: number; data: Float32Array } | null;
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
    this.stage = new Stage({
      model, layers: st.layers, embedding: this.first, head: this.last, seed: o.seed, tp: st.tp, tpRank: this.pos.tpIndex,
      hooks: st.tp > 1 ? commTpHooks(tpComm, st.sequenceParallel, this.timer, this.pools) : undefined, ckptLayers: st.ckptLayers,
    });
    const n = this.stage.params.length;
    this.shard = dpShard(n, st.dp, this.pos.dpIndex);
    const { lo, hi } = this.shard;
    // Buffers the stage module allocates itself are accounted here for what they are.
    this.pools.adopt(this.stage.params, 'weights');
    this.pools.adopt(this.stage.grads, 'grads');
    this.master = st.zero >= 3 ? this.pools.f32('weights', this.shard.shardSize) : null;
    if (this.master) this.master.set(this.stage.params.subarray(lo, hi));
    this.gradShard = st.zero >= 2 ? this.pools.f32('grads', this.shard.shardSize) : null;
    const [ulo, uhi] = st.zero >= 1 ? [lo, hi] : [0, n];
    this.optimizer = new ShardedAdamW(this.stage.paramEntries, ulo, uhi, st.offload.optim, this.hyper, this.pools);
    const [wlo, whi] = st.zero >= 3 ? [lo, hi] : [0, n];
    const wcut = whi - Math.round(st.offload.weights * (whi - wlo));
    this.hostWeights = wcut < whi ? { lo: wcut, data: this.pools.f32('weights', whi - wcut, 'host') } : null;
    const gcut = uhi - Math.round(st.offload.grads * (uhi - ulo));
    this.hostGrads = gcut < uhi ? { lo: gcut, data: this.pools.f32('grads', uhi - gcut, 'host') } : null;
    this.storeHostWeights();
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

  private get seq(): number {
    return this.o.plan.seqLen;
  }

  private get hidden(): number {
    return this.o.model.hidden;
  }

  /** Weight offload: the host part is the persistent copy; refresh it from the working weights. */
  private storeHostWeights(): void {
    const h = this.hostWeights;
    if (!h) return;
    const src = this.master ? this.master.subarray(h.lo - this.shard.lo) : this.stage.params.subarray(h.lo);
    this.pools.copy(h.data, src.subarray(0, h.data.length), 'toHost');
  }

  /** Makes the working weights whole before a forward or backward: ZeRO-3 all-gather, offloaded part copied in. */
  private async prepareWeights(): Promise<void> {
    const h = this.hostWeights;
    if (this.master) {
      if (h) this.pools.copy(this.master.subarray(h.lo - this.shard.lo, h.lo - this.shard.lo + h.data.length), h.data, 'toDevice');
      const n = this.stage.params.length;
      const gathered = this.pools.f32('transient', this.shard.padded);
      await this.timer.wait(this.dpComm.allGather(this.master, gathered));
      this.stage.params.set(gathered.subarray(0, n));
      this.pools.release(gathered);
    } else if (h) {
      this.pools.copy(this.stage.params.subarray(h.lo, h.lo + h.data.length), h.data, 'toDevice');
    }
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
    this.stage.zeroGrads();
    const inputs = new Map<number, Float32Array>();
    const outputs = new Map<number, Float32Array>();
    const gradIns = new Map<number, Float32Array>();
    const gradOuts = new Map<number, Float32Array>();
    const contexts = new Map<number, { ctx: StageContext; bytes: number; hostBytes: number }>();
    const hostArrays = new Set<Float32Array>();
    let lossSum = 0;

    const take = <T>(m: Map<number, T>, mb: number, what: string): T => {
      const v = m.get(mb);
      if (v === undefined) throw new Error(`rank ${this.o.rank}: no ${what} for micro-batch ${mb}`);
      m.delete(mb);
      return v;
    };

    for (const s of this.schedule) {
      if (s.kind === 'forward') {
        await this.prepareWeights();
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
          input.hidden = recvd;
        }
        const r = await this.stage.forward(input, { train: true, gradScale });
        if (recvd) this.pools.release(recvd);
        lossSum += r.lossSum;
        const ctx = r.context as StageContext;
        const bytes = savedBytes(ctx);
        const hostBytes = offloadActivations(ctx, st.offload.activations, this.pools, hostArrays);
        this.pools.add('activations', 'device', bytes - hostBytes);
        contexts.set(s.microBatch, { ctx, bytes, hostBytes });
        if (!this.last) outputs.set(s.microBatch, this.pools.adopt(r.output as Float32Array, 'transient'));
      } else if (s.kind === 'backward') {
        await this.prepareWeights();
        const c = take(contexts, s.microBatch, 'saved activations');
        reloadActivations(c.ctx, this.pools, hostArrays);
        this.pools.add('activations', 'device', c.hostBytes);
        const gin = this.last ? undefined : take(gradIns, s.microBatch, 'output gradient');
        const dx = await this.stage.backward(c.ctx, gin);
        if (gin) this.pools.release(gin);
        this.pools.remove('activations', 'device', c.bytes);
        if (!this.first) gradOuts.set(s.microBatch, this.pools.adopt(dx as Float32Array, 'transient'));
      } else {
        await this.communicate(s.ops, rows, H, inputs, outputs, gradIns, gradOuts, take);
      }
    }

    await this.reduceGradients();
    const norm = await this.globalGradNorm();
    await this.optimizerStep(step, clipScale(norm, this.hyper.maxGradNorm));

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
      step, loss, stepTimeS: t.stepTimeS, tokensPerS: (plan.globalBatch * seq) / t.stepTimeS, computeS: t.computeS, waitS: t.waitS,
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
        const buf = this.pools.f32('transient', rows * H);
        inputs.set(op.microBatch, buf);
        for (const r of this.fwdRecv) group.push({ kind: 'recv', buffer: part(buf, r), peer: r.peer });
      } else if (op.op === 'sendForward') {
        const out = take(outputs, op.microBatch, 'output activations');
        sent.push(out);
        for (const r of this.fwdSend) group.push({ kind: 'send', buffer: part(out, r), peer: r.peer });
      } else if (op.op === 'recvBackward') {
        const buf = this.pools.f32('transient', rows * H);
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
  }

  /** Tied embeddings, then DP: all-reduce (ZeRO 0/1) or reduce-scatter into the shard (ZeRO >= 2). */
  private async reduceGradients(): Promise<void> {
    const st = this.strategy;
    const grads = this.stage.grads;
    if (this.embComm && this.stage.paramEntries.some((e) => e.name === WTE)) {
      // Sum the token table's gradient of the first stage (embedding) and the last (LM head) over
      // all their ranks, counting each TP group once; then leave it on DP rank 0 only, so that the
      // DP reduction below yields the total exactly once.
      const g = this.stage.grad(WTE);
      const buf = this.pools.f32('transient', g.length);
      if (this.pos.tpIndex === 0) buf.set(g);
      await this.timer.wait(this.embComm.allReduce(buf, 'sum'));
      if (this.pos.dpIndex === 0) g.set(buf);
      else g.fill(0);
      this.pools.release(buf);
    }
    if (st.dp === 1) {
      if (this.gradShard) this.gradShard.set(grads);
      return;
    }
    if (!this.gradShard) {
      await this.timer.wait(this.dpComm.allReduce(grads, 'sum'));
      return;
    }
    let input = grads;
    if (grads.length !== this.shard.padded) {
      input = this.pools.f32('transient', this.shard.padded);
      input.set(grads);
    }
    await this.timer.wait(this.dpComm.reduceScatter(input, this.gradShard, 'sum'));
    if (input !== grads) this.pools.release(input);
  }

  /** The reduced gradients of the update range as a flat view. */
  private gradView(): FlatView {
    return this.gradShard ? { data: this.gradShard, base: this.shard.lo } : { data: this.stage.grads, base: 0 };
  }

  /**
   * L2 norm of the whole model's gradient: each rank sums the squares of its DP shard, counting
   * tensors replicated over TP on TP rank 0 only and the last stage's copy of a tied token table
   * not at all; one world all-reduce adds the parts.
   */
  private async globalGradNorm(): Promise<number> {
    const g = this.gradView();
    let sum = 0;
    for (const s of segments(this.stage.paramEntries, this.shard.lo, this.shard.hi)) {
      if (s.entry.shard === 'none' && this.pos.tpIndex !== 0) continue;
      if (s.entry.name === WTE && this.stage.tiedEmbeddingCopy) continue;
      const a = g.data.subarray(s.lo - g.base, s.hi - g.base);
      for (let i = 0; i < a.length; i++) sum += a[i] * a[i];
    }
    const buf = Float32Array.of(sum);
    await this.timer.wait(this.o.world.allReduce(buf, 'sum'));
    return Math.sqrt(buf[0]);
  }

  private async optimizerStep(step: number, gradScale: number): Promise<void> {
    const g = this.gradView();
    const hg = this.hostGrads;
    if (hg) {
      // Gradient offload: the reduced gradients' last part waits in the host pool for the optimizer.
      this.pools.copy(hg.data, g.data.subarray(hg.lo - g.base, hg.lo - g.base + hg.data.length), 'toHost');
      this.pools.copy(g.data.subarray(hg.lo - g.base, hg.lo - g.base + hg.data.length), hg.data, 'toDevice');
    }
    const params: FlatView = this.master ? { data: this.master, base: this.shard.lo } : { data: this.stage.params, base: 0 };
    await this.optimizer.step(params, g, step, this.o.lr(step), gradScale);
    if (this.strategy.zero === 1 || this.strategy.zero === 2) {
      if (this.strategy.dp > 1) {
        const own = this.pools.f32('transient', this.shard.shardSize);
        own.set(this.stage.params.subarray(this.shard.lo, this.shard.hi));
        const all = this.pools.f32('transient', this.shard.padded);
        await this.timer.wait(this.dpComm.allGather(own, all));
        this.stage.params.set(all.subarray(0, this.stage.params.length));
        this.pools.release(own);
        this.pools.release(all);
      }
    }
    this.storeHostWeights();
  }

  /**
   * The rank's current state as full-length local vectors (moments only over its DP shard).
   * Collective over the DP group with ZeRO-3 (the weights are gathered).
   */
  async exportState(): Promise<LocalState> {
    await this.prepareWeights();
    const n = this.stage.params.length;
    const params = new Float32Array(n);
    params.set(this.stage.params);
    const m = new Float32Array(n), v = new Float32Array(n);
    const mom = this.optimizer.moments(this.shard.lo, this.shard.hi);
    m.set(mom.m, this.shard.lo);
    v.set(mom.v, this.shard.lo);
    return { params, m, v };
  }

  /** Replaces weights and moments (full-length local vectors) and the step count, e.g. from a checkpoint. */
  importState(s: LocalState, stepsDone: number): void {
    this.stage.params.set(s.params);
    if (this.master) this.master.set(s.params.subarray(this.shard.lo, this.shard.hi));
    this.optimizer.loadMoments(s.m, s.v);
    this.stepsDone = stepsDone;
    this.storeHostWeights();
  }

  async destroy(): Promise<void> {
    for (const c of [this.tpComm, this.dpComm, this.embComm]) if (c) await c.destroy();
  }
}

