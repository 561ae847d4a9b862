// Where a rank keeps each unit (embedding, layer, head) of its stage's weights, gradients and AdamW
// moments under its ZeRO level and offload ratios, and the per-unit hooks the stage calls around
// every module (Stage's UnitHooks):
//   weights  ZeRO 0-2 without weight offload: the flat vector, always resident. ZeRO-3: only this
//            rank's DP shard of each unit is resident; enter() all-gathers the unit over DP into a
//            working buffer just before the module's forward or backward (a checkpointed layer
//            recomputes inside its backward, so it is gathered again), exit() frees it. With
//            overlapComm, entering a module starts the gather of the next module's units (the one
//            after it in forward, before it in backward) on the communicator's thread or stream:
//            two layers' weights whole at once, as the analyzer's gather buffer counts. Weight
//            offload: the last `offload.weights` of the resident part lives in the host pool and
//            enter() brings it back into the working buffer.
//   grads    ZeRO 0-1 without grad offload: the flat vector, accumulated over micro-batches and
//            all-reduced over DP after the last one; with overlapComm (RankRuntime's default
//            on a GPU) each unit's part as soon as the last micro-batch's backward is done with it
//            (lastBackwardBegins), beside the backward of the units before it on the communicator's
//            own thread or stream (Megatron-Core's --overlap-grad-reduce; the analyzer's
//            gradReduceOverlap, which core's backend table sets per device); finishGradients waits for them. ZeRO >= 2 (or grad
//            offload): enter() of a backward gives the unit a zeroed full gradient buffer; after the
//            unit's last module of the micro-batch, exit() reduce-scatters it over DP (all-reduces
//            below ZeRO-2) into the resident accumulator — this rank's shard, its last
//            `offload.grads` in the host pool — and frees it; with overlapComm the reduction runs
//            beside the next module's backward and completes when the next one starts or the pass
//            ends (two units' gradient buffers at once, as the analyzer's gradient buffer counts).
//            A tied token table copy on a last stage keeps its full buffer until the end of the
//            step (its gradient is summed with the first stage's before the DP reduction).
//   optim    AdamW moments over the unit's DP shard (ZeRO >= 1) or the whole unit, the last
//            `offload.optim` in the host pool (see optimizer.ts).
// Working buffers and full unit gradients are accounted to the 'transient' pool, like the
// analyzer's gather and gradient buffers; resident state to 'weights', 'grads' and 'optim'.
// Every unit is sharded and reduced over its group: the DP group (dp * cp ranks), except, with
// expert parallelism, a layer's experts unit, whose group is the expert-data-parallel one (the
// ranks holding the same experts; Megatron-Core's distributed optimizer shards expert parameters
// over that group likewise, megatron/core/distributed/distributed_data_parallel.py).
// Generic over the stage's Device: resident and working buffers are its tensors (the pools'
// device), offloaded parts host Float32Arrays; every copy, view, zeroing and host read goes
// through the device. Expert parallelism stays on the CPU device (RankRuntime and the block runner
// refuse mixture-of-experts layers elsewhere).
import { type CommBuffer, type Communicator, kernels } from '@mist/native';
import type { StageStrategy } from '@mist/core';
import { isExpertParam, type ParamUnit, type Stage, type UnitHooks } from '../model';
import { syncExpertSplit } from './expert-sync';
import type { Device } from '../device/device';
import type { MemoryPools } from '../memory/pools';
import type { AdamWHyper } from './hyper';
import { ShardedAdamW, StepBatches } from './optimizer';
import { type DpShard, dpShard } from './shard';
import { SplitVec } from './split-vec';
import type { StepTimer } from './timer';

/** The ranks that hold the same copy of a unit: they shard it (ZeRO) and sum its gradients. */
interface UnitGroup<F extends CommBuffer> {
  comm: Communicator<F> | null;
  size: number;
  index: number;
}

interface UnitState<F extends CommBuffer> {
  unit: ParamUnit;
  /** The DP group, or for a layer's experts with expert parallelism the expert-data-parallel group. */
  group: UnitGroup<F>;
  shard: DpShard;
  /** Resident weights: the DP shard (ZeRO-3) or the whole unit. */
  weights: SplitVec<F>;
  /** Reduced gradient accumulator: the DP shard (ZeRO >= 2) or the whole unit. */
  grads: SplitVec<F>;
  optimizer: ShardedAdamW<F>;
  /** Modules using the unit in one backward pass. */
  uses: number;
  /** Kept whole until the end of the step (tied token table copy). */
  deferred: boolean;
  refs: number;
  working: F | null;
  gradBuf: F | null;
  usesDone: number;
  /** Flat gradients: modules done with the unit in the last micro-batch's backward. */
  lastUsesDone: number;
  /** Flat gradients: its DP all-reduce was started during the last backward. */
  reducing: boolean;
  /** ZeRO-3 with overlapComm: the gather started ahead of the module that uses the unit next. */
  prefetched: { buf: F; done: Promise<void> } | null;
}

/** F, I: the stage's device tensor types (Float32Array, Int32Array on the CPU). */
export interface UnitMemoryOptions<F extends CommBuffer = Float32Array, I = Int32Array> {
  stage: Stage<F, I>;
  strategy: StageStrategy;
  dpIndex: number;
  dpComm: Communicator<F>;
  /** The rank's pools; their device is the stage's. */
  pools: MemoryPools<F>;
  timer: StepTimer;
  hyper: AdamWHyper;
  /** Units whose gradients wait for the end of the step (their full buffer is kept). */
  deferredUnits: ReadonlySet<number>;
  /**
   * Communication beside compute (default off): flat gradients over DP all-reduce each unit's part
   * beside the last backward (lastBackwardBegins), and ZeRO-3 gathers the next module's weights while
   * a module runs.
   */
  overlapComm?: boolean;
  /**
   * Expert parallelism (ep > 1): the experts' weights differ across the DP group, so a layer's
   * experts unit (Stage: `layers.<i>.experts`) is sharded, gathered and has its gradients summed
   * over the expert-data-parallel group instead (the dp / ep ranks holding the same experts; comm
   * null when it is this rank alone), and counts once per such group in the gradient norm.
   * CPU device only.
   */
  experts?: ExpertSync;
}

/** The expert-data-parallel group of a rank's expert weights (expert-sync.ts says how they sync). */
export interface ExpertSync {
  comm: Communicator<Float32Array> | null;
  edp: number;
  edpIndex: number;
}

export class UnitMemory<F extends CommBuffer = Float32Array, I = Int32Array> implements UnitHooks {
  readonly paramsPerUnit: boolean;
  readonly gradsPerUnit: boolean;
  private readonly units: UnitState<F>[];
  private readonly st: StageStrategy;
  /** Flat gradients over DP (no experts): each unit's all-reduce overlaps the last backward. */
  private readonly overlapReduce: boolean;
  /** ZeRO-3 over DP: the next module's units are gathered while a module runs. */
  private readonly prefetch: boolean;
  /** Per-unit gradients: a unit's reduction runs beside the next module's backward (at most one at a time). */
  private readonly overlapUnitReduce: boolean;
  private pendingReduce: { u: UnitState<F>; buf: F; mine: F | null; done: Promise<void> } | null = null;
  /** The stage's modules in forward order, and each module's place in it (by its units array). */
  private readonly modules: readonly (readonly ParamUnit[])[];
  private readonly moduleIndex = new Map<readonly ParamUnit[], number>();
  private inLastBackward = false;
  private readonly reductions: Promise<void>[] = [];

  /** Storage modes the stage must be built with for a strategy. */
  static storage(st: StageStrategy): { params: 'flat' | 'units'; grads: 'flat' | 'units' } {
    return { params: st.zero >= 3 || st.offload.weights > 0 ? 'units' : 'flat', grads: st.zero >= 2 || st.offload.grads > 0 ? 'units' : 'flat' };
  }

  constructor(private readonly o: UnitMemoryOptions<F, I>) {
    const { stage, pools } = o;
    if (pools.device !== stage.device) throw new Error(`unit memory: the pools' device (${pools.device.kind}) is not the stage's (${stage.device.kind})`);
    if (o.experts && stage.device.kind !== 'cpu') throw new Error(`unit memory: expert parallelism runs on the CPU device only, not ${stage.device.kind}`);
    const device = stage.device;
    const st = (this.st = o.strategy);
    const mode = UnitMemory.storage(st);
    this.paramsPerUnit = mode.params === 'units';
    this.gradsPerUnit = mode.grads === 'units';
    if (!this.paramsPerUnit) pools.adopt(stage.params, 'weights');
    if (!this.gradsPerUnit) pools.adopt(stage.grads, 'grads');
    const uses = new Map<number, number>();
    for (const m of stage.moduleUnits) for (const u of m) uses.set(u.index, (uses.get(u.index) ?? 0) + 1);
    const dpGroup: UnitGroup<F> = { comm: o.dpComm, size: st.dp, index: o.dpIndex };
    const ex = o.experts;
    this.units = stage.units.map((unit) => {
      const n = unit.hi - unit.lo;
      const expertUnit = unit.entries.length > 0 && unit.entries.every((e) => isExpertParam(e.name));
      if (!expertUnit && unit.entries.some((e) => isExpertParam(e.name))) throw new Error(`unit ${unit.name} mixes expert and dense weights; the stage keeps a layer's experts in their own unit`);
      // Expert parallelism runs on the CPU device only (checked above), where F is Float32Array.
      const group: UnitGroup<F> = ex && expertUnit ? { comm: ex.comm as unknown as Communicator<F> | null, size: ex.edp, index: ex.edpIndex } : dpGroup;
      const shard = dpShard(n, group.size, group.index, unit.lo);
      let weights: SplitVec<F>;
      if (!this.paramsPerUnit) {
        weights = SplitVec.view(device, stage.params, 0, unit.lo, unit.hi);
      } else {
        const [a, b] = st.zero >= 3 ? [shard.lo, shard.hi] : [unit.lo, unit.hi];
        weights = SplitVec.alloc(pools, 'weights', a, b, st.offload.weights);
        const init = stage.initialValues(unit);
        weights.load(a, b, init.subarray(a - unit.lo, b - unit.lo));
      }
      const grads = !this.gradsPerUnit
        ? SplitVec.view(device, stage.grads, 0, unit.lo, unit.hi)
        : st.zero >= 2 ? SplitVec.alloc(pools, 'grads', shard.lo, shard.hi, st.offload.grads) : SplitVec.alloc(pools, 'grads', unit.lo, unit.hi, st.offload.grads);
      const [olo, ohi] = st.zero >= 1 ? [shard.lo, shard.hi] : [unit.lo, unit.hi];
      const optimizer = new ShardedAdamW(unit.entries, olo, ohi, st.offload.optim, o.hyper, pools, () => stage.initialValues(unit).subarray(olo - unit.lo, ohi - unit.lo));
      return {
        unit, group, shard, weights, grads, optimizer, uses: uses.get(unit.index) ?? 0, deferred: this.gradsPerUnit && o.deferredUnits.has(unit.index),
        refs: 0, working: null, gradBuf: null, usesDone: 0, lastUsesDone: 0, reducing: false, prefetched: null,
      };
    });
    this.overlapReduce = o.overlapComm === true && !this.gradsPerUnit && st.dp > 1 && !o.experts;
    this.prefetch = o.overlapComm === true && st.zero >= 3 && st.dp > 1;
    this.overlapUnitReduce = o.overlapComm === true && this.gradsPerUnit && st.dp > 1 && !o.experts;
    this.modules = stage.moduleUnits;
    this.modules.forEach((m, i) => this.moduleIndex.set(m, i));
  }

  /**
   * The next backward is the step's last micro-batch's: from now on a unit whose modules are all
   * done has its final gradient, and (flat gradients over DP) its all-reduce starts at once. Every
   * DP rank of the stage runs the same modules in the same order, so the all-reduces are issued in
   * the same order on each.
   */
  lastBackwardBegins(): void {
    this.inLastBackward = true;
  }

  /** This rank's DP shard of every unit: what it saves in a checkpoint and counts in the gradient norm. */
  get ownedRanges(): Array<[number, number]> {
    return this.units.flatMap((u) => this.owned(u));
  }

  /** The range of a unit this rank answers for: its shard over the unit's group. */
  private owned(u: UnitState<F>): Array<[number, number]> {
    return [[u.shard.lo, u.shard.hi]];
  }

  /** The unit group's communicator (only read when the group has more than one rank). */
  private comm(u: UnitState<F>): Communicator<F> {
    if (!u.group.comm) throw new Error(`unit ${u.unit.name}: a group of ${u.group.size} ranks needs its communicator`);
    return u.group.comm;
  }

  private get device(): Device<F, I> {
    return this.o.stage.device;
  }

  private get dp(): number {
    return this.st.dp;
  }

  /** The unit's whole weights, on the device, in a fresh transient buffer (ZeRO-3: all-gathered over DP). */
  private async gather(u: UnitState<F>): Promise<F> {
    const { pools, timer } = this.o;
    const { unit, shard } = u;
    if (this.st.zero < 3) {
      const w = pools.tensor('transient', unit.hi - unit.lo);
      u.weights.read(unit.lo, unit.hi, w, pools);
      return w;
    }
    const w = pools.tensor('transient', shard.padded);
    const own = pools.tensor('transient', shard.shardSize);
    try {
      u.weights.read(shard.lo, shard.hi, own, pools);
      if (u.group.size > 1) await timer.wait(this.comm(u).allGather(own, w));
      else this.device.copy(this.device.view(w, 0, unit.hi - unit.lo), this.device.view(own, 0, unit.hi - unit.lo));
    } finally {
      pools.release(own);
    }
    return w;
  }

  /**
   * Starts the DP all-gather of a unit's weights (ZeRO-3) into a fresh transient buffer; `done`
   * settles when it is whole (the own shard's buffer is released then).
   */
  private startGather(u: UnitState<F>): { buf: F; done: Promise<void> } {
    const { pools } = this.o;
    const w = pools.tensor('transient', u.shard.padded);
    const own = pools.tensor('transient', u.shard.shardSize);
    u.weights.read(u.shard.lo, u.shard.hi, own, pools);
    return { buf: w, done: this.comm(u).allGather(own, w).finally(() => pools.release(own)) };
  }

  /** Starts the gathers of the units of the module that runs after `units` in this pass (see the header). */
  private prefetchNext(units: readonly ParamUnit[], phase: 'forward' | 'backward'): void {
    const i = this.moduleIndex.get(units);
    if (i === undefined) return;
    const next = this.modules[phase === 'forward' ? i + 1 : i - 1];
    if (!next) return;
    for (const unit of next) {
      const u = this.units[unit.index];
      // Only over the DP group (the experts' group gathers when it runs), and not what is whole already.
      if (u.refs > 0 || u.prefetched || u.group.comm !== this.o.dpComm || u.group.size < 2) continue;
      u.prefetched = this.startGather(u);
    }
  }

  async enter(units: readonly ParamUnit[], phase: 'forward' | 'backward'): Promise<void> {
    for (const unit of units) {
      const u = this.units[unit.index];
      if (this.paramsPerUnit && u.refs++ === 0) {
        const ahead = u.prefetched;
        if (ahead) {
          u.prefetched = null;
          await this.o.timer.wait(ahead.done);
          u.working = ahead.buf;
        } else u.working = await this.gather(u);
        this.o.stage.attachParams(unit, u.working);
      }
      if (phase === 'backward' && this.gradsPerUnit && !u.gradBuf) {
        // Padded for the reduce-scatter; a deferred unit's buffer lives all step: a resident gradient.
        const n = this.st.zero >= 2 ? u.shard.padded : unit.hi - unit.lo;
        u.gradBuf = this.o.pools.tensor(u.deferred ? 'grads' : 'transient', n);
        this.o.stage.attachGrads(unit, u.gradBuf);
      }
    }
    if (this.prefetch) this.prefetchNext(units, phase);
  }

  async exit(units: readonly ParamUnit[], phase: 'forward' | 'backward'): Promise<void> {
    for (const unit of units) {
      const u = this.units[unit.index];
      if (this.paramsPerUnit && --u.refs === 0) {
        this.o.stage.attachParams(unit, null);
        this.o.pools.release(u.working as F);
        u.working = null;
      }
      if (phase === 'backward' && this.gradsPerUnit && ++u.usesDone === u.uses) {
        u.usesDone = 0;
        if (!u.deferred) await (this.overlapUnitReduce ? this.startReduce(u) : this.reduceUnit(u));
      }
      // The tied token table (deferredUnits) is summed with the other stage's copy first: it waits.
      if (phase === 'backward' && this.overlapReduce && this.inLastBackward && !this.o.deferredUnits.has(unit.index) &&
        ++u.lastUsesDone === u.uses) {
        u.reducing = true;
        this.reductions.push(this.o.dpComm.allReduce(this.device.view(this.o.stage.grads, unit.lo, unit.hi), 'sum'));
      }
    }
    // The stage's first module ends the backward pass: nothing runs beside a reduction started now.
    if (phase === 'backward' && this.overlapUnitReduce && this.moduleIndex.get(units) === 0) await this.completeReduce();
  }

  /** Reduces a unit's full gradient buffer over DP into its accumulator and frees it. */
  private async reduceUnit(u: UnitState<F>): Promise<void> {
    await this.startReduce(u);
    await this.completeReduce();
  }

  /**
   * Starts the DP reduction of a unit's full gradient buffer (reduce-scatter into its shard from
   * ZeRO-2, all-reduce below) and detaches the buffer from the stage; completeReduce adds the result
   * to the accumulator. One at a time: an earlier one is completed first.
   */
  private async startReduce(u: UnitState<F>): Promise<void> {
    await this.completeReduce();
    const { pools } = this.o;
    const buf = u.gradBuf as F;
    const { unit, shard } = u;
    let mine: F | null = null;
    let done: Promise<void> = Promise.resolve();
    if (this.st.zero >= 2) {
      mine = pools.tensor('transient', shard.shardSize);
      if (u.group.size > 1) done = this.comm(u).reduceScatter(buf, mine, 'sum');
      else this.device.copy(mine, this.device.view(buf, 0, shard.shardSize));
    } else if (u.group.size > 1) done = this.comm(u).allReduce(buf, 'sum');
    this.o.stage.attachGrads(unit, null);
    u.gradBuf = null;
    this.pendingReduce = { u, buf, mine, done };
  }

  /** Waits for the reduction started last (if any), adds it to its unit's accumulator and frees its buffers. */
  private async completeReduce(): Promise<void> {
    const p = this.pendingReduce;
    if (!p) return;
    this.pendingReduce = null;
    const { pools, timer } = this.o;
    await timer.wait(p.done);
    const { unit, shard } = p.u;
    if (p.mine) {
      await p.u.grads.add(shard.lo, shard.hi, p.mine, pools);
      pools.release(p.mine);
    } else await p.u.grads.add(unit.lo, unit.hi, p.buf, pools);
    pools.release(p.buf);
  }

  /** Before a step's first micro-batch: empty gradient accumulators. */
  zeroGrads(): void {
    if (!this.gradsPerUnit) this.o.stage.zeroGrads();
    else for (const u of this.units) u.grads.zero();
  }

  /**
   * After the last micro-batch (the tied token table already summed): the DP reduction of what is
   * not reduced yet — the flat gradients (all-reduce) or the deferred units.
   */
  async finishGradients(): Promise<void> {
    if (!this.gradsPerUnit) {
      // Expert parallelism is CPU-only (the constructor checks): F is Float32Array there.
      if (this.o.experts) {
        await syncExpertSplit(
          this.o.stage.grads as unknown as Float32Array, this.units.map((u) => u.unit), this.o.dpComm as unknown as Communicator<Float32Array>, this.dp, this.o.experts,
          this.o.pools as unknown as MemoryPools, this.o.timer,
        );
      }
      else if (this.overlapReduce && this.units.some((u) => u.reducing)) {
        // The all-reduces started in the last backward, then those of the units still to do, in
        // unit order (the same on every DP rank).
        await this.o.timer.wait(Promise.all(this.reductions));
        for (const u of this.units) {
          if (!u.reducing) await this.o.timer.wait(this.o.dpComm.allReduce(this.device.view(this.o.stage.grads, u.unit.lo, u.unit.hi), 'sum'));
        }
      } else if (this.dp > 1) await this.o.timer.wait(this.o.dpComm.allReduce(this.o.stage.grads, 'sum'));
      this.inLastBackward = false;
      this.reductions.length = 0;
      for (const u of this.units) {
        u.reducing = false;
        u.lastUsesDone = 0;
      }
      return;
    }
    await this.completeReduce();
    for (const u of this.units) if (u.gradBuf) await this.reduceUnit(u);
  }

  /**
   * Sum of squares of the reduced gradients over this rank's shards, skipping entries `skip` rejects.
   * The sumSquares kernel sums each part in double (a JavaScript loop cost 5-12 ms a step on
   * gpt-tiny, work the analyzer does not charge); the parts' float32 sums add up in double here, in
   * part order. Device parts run in one batch writing one element each of an fp32 tensor that is
   * read back once; host (offloaded) parts run on the CPU kernels.
   */
  async gradSquares(skip: (name: string, shard: string) => boolean): Promise<number> {
    const device = this.device;
    // Per part in order: its index among the device parts, or its host sum.
    const order: Array<{ dev: number } | { host: number }> = [];
    const devParts: F[] = [];
    const out = new Float32Array(1);
    for (const u of this.units) {
      const owned = this.owned(u);
      for (const e of u.unit.entries) {
        if (skip(e.name, e.shard)) continue;
        for (const [lo, hi] of owned) {
          const a = Math.max(lo, e.offset), b = Math.min(hi, e.offset + e.size);
          if (a >= b) continue;
          for (const p of u.grads.parts(a, b)) {
            if (p.place === 'device') {
              order.push({ dev: devParts.length });
              devParts.push(p.part);
            } else {
              kernels.sumSquares(out, p.part);
              order.push({ host: out[0] });
            }
          }
        }
      }
    }
    let sums: Float32Array = new Float32Array(0);
    if (devParts.length > 0) {
      const t = device.zeros(devParts.length, 'fp32');
      const k = device.batch();
      devParts.forEach((p, i) => k.sumSquares(device.view(t, i, i + 1), p));
      await k.run();
      sums = device.read(t);
    }
    let sum = 0;
    for (const o of order) sum += 'dev' in o ? sums[o.dev] : o.host;
    return sum;
  }

  /**
   * AdamW on every unit's range, then (ZeRO-1/2) the all-gather of the updated shards over DP.
   * Units whose step needs no host/device copies run in one kernel batch (one hand-off to the
   * native threads a step instead of one a unit); the others step one by one.
   */
  async optimizerStep(step: number, lr: number, gradScale: number): Promise<void> {
    const { pools, timer } = this.o;
    const batch = new StepBatches(this.device);
    for (const u of this.units) {
      if (u.optimizer.needsCopies(u.weights, u.grads)) await u.optimizer.step(u.weights, u.grads, step, lr, gradScale);
      else u.optimizer.record(batch, u.weights, u.grads, step, lr, gradScale);
    }
    await batch.run();
    if (!(this.st.zero === 1 || this.st.zero === 2)) return;
    for (const u of this.units) {
      if (u.group.size === 1) continue;
      const own = pools.tensor('transient', u.shard.shardSize);
      u.weights.read(u.shard.lo, u.shard.hi, own, pools);
      const all = pools.tensor('transient', u.shard.padded);
      await timer.wait(this.comm(u).allGather(own, all));
      u.weights.write(u.unit.lo, u.unit.hi, this.device.view(all, 0, u.unit.hi - u.unit.lo), pools);
      pools.release(own);
      pools.release(all);
    }
  }

  /**
   * Full-length local vectors of weights (collective over DP with ZeRO-3) and of the moments over the
   * shards. With master weights (compute dtype not fp32) the weights over each unit's optimizer
   * range are the fp32 master's, elsewhere the compute copy's.
   */
  async exportState(n: number): Promise<{ params: Float32Array; m: Float32Array; v: Float32Array }> {
    const params = new Float32Array(n), m = new Float32Array(n), v = new Float32Array(n);
    for (const u of this.units) {
      if (this.st.zero >= 3) {
        const w = await this.gather(u);
        params.set(this.device.read(this.device.view(w, 0, u.unit.hi - u.unit.lo)), u.unit.lo);
        this.o.pools.release(w);
      } else {
        params.set(u.weights.snapshot(u.unit.lo, u.unit.hi), u.unit.lo);
      }
      const master = u.optimizer.masterValues(u.optimizer.lo, u.optimizer.hi);
      if (master) params.set(master, u.optimizer.lo);
      for (const [lo, hi] of this.owned(u)) {
        const mom = u.optimizer.moments(lo, hi);
        m.set(mom.m, lo);
        v.set(mom.v, lo);
      }
    }
    return { params, m, v };
  }

  importState(s: { params: Float32Array; m: Float32Array; v: Float32Array }): void {
    for (const u of this.units) {
      u.weights.load(u.weights.lo, u.weights.hi, s.params.subarray(u.weights.lo, u.weights.hi));
      u.optimizer.loadMoments(s.m, s.v);
      u.optimizer.loadMaster(s.params);
    }
  }
}
