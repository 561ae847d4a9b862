// Where a rank keeps each unit (embedding, layer, head) of its stage's weights, gradients and AdamW
// moments under its ZeRO level and offload ratios, and the per-unit hooks the stage calls around
// every module (Stage's UnitHooks):
//   weights  ZeRO 0-2 without weight offload: the flat vector, always resident. ZeRO-3: only this
//            rank's DP shard of each unit is resident; enter() all-gathers the unit over DP into a
//            working buffer just before the module's forward or backward (a checkpointed layer
//            recomputes inside its backward, so it is gathered again), exit() frees it. Weight
//            offload: the last `offload.weights` of the resident part lives in the host pool and
//            enter() brings it back into the working buffer.
//   grads    ZeRO 0-1 without grad offload: the flat vector, accumulated over micro-batches and
//            all-reduced over DP after the last one. ZeRO >= 2 (or grad offload): enter() of a
//            backward gives the unit a zeroed full gradient buffer; after the unit's last module of
//            the micro-batch, exit() reduce-scatters it over DP (all-reduces below ZeRO-2) into the
//            resident accumulator — this rank's shard, its last `offload.grads` in the host pool —
//            and frees it. A tied token table copy on a last stage keeps its full buffer until the
//            end of the step (its gradient is summed with the first stage's before the DP reduction).
//   optim    AdamW moments over the unit's DP shard (ZeRO >= 1) or the whole unit, the last
//            `offload.optim` in the host pool (see optimizer.ts).
// Working buffers and full unit gradients are accounted to the 'transient' pool, like the
// analyzer's gather and gradient buffers; resident state to 'weights', 'grads' and 'optim'.
// Every unit is sharded and reduced over its group: the DP group (dp * cp ranks), except, with
// expert parallelism, a layer's experts unit, whose group is the expert-data-parallel one (the
// ranks holding the same experts; Megatron-Core's distributed optimizer shards expert parameters
// over that group likewise, megatron/core/distributed/distributed_data_parallel.py).
import { type Communicator, KernelBatch, kernels } from '@mist/native';
import type { StageStrategy } from '@mist/core';
import { isExpertParam, type ParamUnit, type Stage, type UnitHooks } from '../model';
import { syncExpertSplit } from './expert-sync';
import type { MemoryPools } from '../memory/pools';
import type { AdamWHyper } from './hyper';
import { ShardedAdamW } from './optimizer';
import { type DpShard, dpShard } from './shard';
import { SplitVec } from './split-vec';
import type { StepTimer } from './timer';

/** The ranks that hold the same copy of a unit: they shard it (ZeRO) and sum its gradients. */
interface UnitGroup {
  comm: Communicator<Float32Array> | null;
  size: number;
  index: number;
}

interface UnitState {
  unit: ParamUnit;
  /** The DP group, or for a layer's experts with expert parallelism the expert-data-parallel group. */
  group: UnitGroup;
  shard: DpShard;
  /** Resident weights: the DP shard (ZeRO-3) or the whole unit. */
  weights: SplitVec;
  /** Reduced gradient accumulator: the DP shard (ZeRO >= 2) or the whole unit. */
  grads: SplitVec;
  optimizer: ShardedAdamW;
  /** Modules using the unit in one backward pass. */
  uses: number;
  /** Kept whole until the end of the step (tied token table copy). */
  deferred: boolean;
  refs: number;
  working: Float32Array | null;
  gradBuf: Float32Array | null;
  usesDone: number;
}

export interface UnitMemoryOptions {
  stage: Stage;
  strategy: StageStrategy;
  dpIndex: number;
  dpComm: Communicator<Float32Array>;
  pools: MemoryPools;
  timer: StepTimer;
  hyper: AdamWHyper;
  /** Units whose gradients wait for the end of the step (their full buffer is kept). */
  deferredUnits: ReadonlySet<number>;
  /**
   * Expert parallelism (ep > 1): the experts' weights differ across the DP group, so a layer's
   * experts unit (Stage: `layers.<i>.experts`) is sharded, gathered and has its gradients summed
   * over the expert-data-parallel group instead (the dp / ep ranks holding the same experts; comm
   * null when it is this rank alone), and counts once per such group in the gradient norm.
   */
  experts?: ExpertSync;
}

/** The expert-data-parallel group of a rank's expert weights (expert-sync.ts says how they sync). */
export interface ExpertSync {
  comm: Communicator<Float32Array> | null;
  edp: number;
  edpIndex: number;
}

export class UnitMemory implements UnitHooks {
  readonly paramsPerUnit: boolean;
  readonly gradsPerUnit: boolean;
  private readonly units: UnitState[];
  private readonly st: StageStrategy;

  /** Storage modes the stage must be built with for a strategy. */
  static storage(st: StageStrategy): { params: 'flat' | 'units'; grads: 'flat' | 'units' } {
    return { params: st.zero >= 3 || st.offload.weights > 0 ? 'units' : 'flat', grads: st.zero >= 2 || st.offload.grads > 0 ? 'units' : 'flat' };
  }

  constructor(private readonly o: UnitMemoryOptions) {
    const { stage, pools } = o;
    const st = (this.st = o.strategy);
    const mode = UnitMemory.storage(st);
    this.paramsPerUnit = mode.params === 'units';
    this.gradsPerUnit = mode.grads === 'units';
    if (!this.paramsPerUnit) pools.adopt(stage.params, 'weights');
    if (!this.gradsPerUnit) pools.adopt(stage.grads, 'grads');
    const uses = new Map<number, number>();
    for (const m of stage.moduleUnits) for (const u of m) uses.set(u.index, (uses.get(u.index) ?? 0) + 1);
    const dpGroup: UnitGroup = { comm: o.dpComm, size: st.dp, index: o.dpIndex };
    const ex = o.experts;
    this.units = stage.units.map((unit) => {
      const n = unit.hi - unit.lo;
      const expertUnit = unit.entries.length > 0 && unit.entries.every((e) => isExpertParam(e.name));
      if (!expertUnit && unit.entries.some((e) => isExpertParam(e.name))) throw new Error(`unit ${unit.name} mixes expert and dense weights; the stage keeps a layer's experts in their own unit`);
      const group: UnitGroup = ex && expertUnit ? { comm: ex.comm, size: ex.edp, index: ex.edpIndex } : dpGroup;
      const shard = dpShard(n, group.size, group.index, unit.lo);
      let weights: SplitVec;
      if (!this.paramsPerUnit) {
        weights = SplitVec.view(stage.params, 0, unit.lo, unit.hi);
      } else {
        const [a, b] = st.zero >= 3 ? [shard.lo, shard.hi] : [unit.lo, unit.hi];
        weights = SplitVec.alloc(pools, 'weights', a, b, st.offload.weights);
        const init = stage.initialValues(unit);
        weights.load(a, b, init.subarray(a - unit.lo, b - unit.lo));
      }
      const grads = !this.gradsPerUnit
        ? SplitVec.view(stage.grads, 0, unit.lo, unit.hi)
        : st.zero >= 2 ? SplitVec.alloc(pools, 'grads', shard.lo, shard.hi, st.offload.grads) : SplitVec.alloc(pools, 'grads', unit.lo, unit.hi, st.offload.grads);
      const [olo, ohi] = st.zero >= 1 ? [shard.lo, shard.hi] : [unit.lo, unit.hi];
      const optimizer = new ShardedAdamW(unit.entries, olo, ohi, st.offload.optim, o.hyper, pools);
      return {
        unit, group, shard, weights, grads, optimizer, uses: uses.get(unit.index) ?? 0, deferred: this.gradsPerUnit && o.deferredUnits.has(unit.index),
        refs: 0, working: null, gradBuf: null, usesDone: 0,
      };
    });
  }

  /** This rank's DP shard of every unit: what it saves in a checkpoint and counts in the gradient norm. */
  get ownedRanges(): Array<[number, number]> {
    return this.units.flatMap((u) => this.owned(u));
  }

  /** The range of a unit this rank answers for: its shard over the unit's group. */
  private owned(u: UnitState): Array<[number, number]> {
    return [[u.shard.lo, u.shard.hi]];
  }

  /** The unit group's communicator (only read when the group has more than one rank). */
  private comm(u: UnitState): Communicator<Float32Array> {
    if (!u.group.comm) throw new Error(`unit ${u.unit.name}: a group of ${u.group.size} ranks needs its communicator`);
    return u.group.comm;
  }

  private get dp(): number {
    return this.st.dp;
  }

  /** The unit's whole weights, on the device, in a fresh transient buffer (ZeRO-3: all-gathered over DP). */
  private async gather(u: UnitState): Promise<Float32Array> {
    const { pools, timer } = this.o;
    const { unit, shard } = u;
    if (this.st.zero < 3) {
      const w = pools.f32('transient', unit.hi - unit.lo);
      u.weights.read(unit.lo, unit.hi, w, pools);
      return w;
    }
    const w = pools.f32('transient', shard.padded);
    const own = pools.f32('transient', shard.shardSize);
    try {
      u.weights.read(shard.lo, shard.hi, own, pools);
      if (u.group.size > 1) await timer.wait(this.comm(u).allGather(own, w));
      else w.set(own.subarray(0, unit.hi - unit.lo));
    } finally {
      pools.release(own);
    }
    return w;
  }

  async enter(units: readonly ParamUnit[], phase: 'forward' | 'backward'): Promise<void> {
    for (const unit of units) {
      const u = this.units[unit.index];
      if (this.paramsPerUnit && u.refs++ === 0) {
        u.working = await this.gather(u);
        this.o.stage.attachParams(unit, u.working);
      }
      if (phase === 'backward' && this.gradsPerUnit && !u.gradBuf) {
        // Padded for the reduce-scatter; a deferred unit's buffer lives all step: a resident gradient.
        const n = this.st.zero >= 2 ? u.shard.padded : unit.hi - unit.lo;
        u.gradBuf = this.o.pools.f32(u.deferred ? 'grads' : 'transient', n);
        this.o.stage.attachGrads(unit, u.gradBuf);
      }
    }
  }

  async exit(units: readonly ParamUnit[], phase: 'forward' | 'backward'): Promise<void> {
    for (const unit of units) {
      const u = this.units[unit.index];
      if (this.paramsPerUnit && --u.refs === 0) {
        this.o.stage.attachParams(unit, null);
        this.o.pools.release(u.working as Float32Array);
        u.working = null;
      }
      if (phase === 'backward' && this.gradsPerUnit && ++u.usesDone === u.uses) {
        u.usesDone = 0;
        if (!u.deferred) await this.reduceUnit(u);
      }
    }
  }

  /** Reduces a unit's full gradient buffer over DP into its accumulator and frees it. */
  private async reduceUnit(u: UnitState): Promise<void> {
    const { pools, timer } = this.o;
    const buf = u.gradBuf as Float32Array;
    const { unit, shard } = u;
    if (this.st.zero >= 2) {
      const mine = pools.f32('transient', shard.shardSize);
      if (u.group.size > 1) await timer.wait(this.comm(u).reduceScatter(buf, mine, 'sum'));
      else mine.set(buf.subarray(0, shard.shardSize));
      u.grads.add(shard.lo, shard.hi, mine, pools);
      pools.release(mine);
    } else {
      if (u.group.size > 1) await timer.wait(this.comm(u).allReduce(buf, 'sum'));
      u.grads.add(unit.lo, unit.hi, buf, pools);
    }
    this.o.stage.attachGrads(unit, null);
    pools.release(buf);
    u.gradBuf = null;
  }

  /** Before a step's first micro-batch: empty gradient accumulators. */
  zeroGrads(): void {
    if (!this.gradsPerUnit) this.o.stage.zeroGrads();
    else for (const u of this.units) u.grads.fill(0);
  }

  /**
   * After the last micro-batch (the tied token table already summed): the DP reduction of what is
   * not reduced yet — the flat gradients (all-reduce) or the deferred units.
   */
  async finishGradients(): Promise<void> {
    if (!this.gradsPerUnit) {
      if (this.o.experts) await syncExpertSplit(this.o.stage.grads, this.units.map((u) => u.unit), this.o.dpComm, this.dp, this.o.experts, this.o.pools, this.o.timer);
      else if (this.dp > 1) await this.o.timer.wait(this.o.dpComm.allReduce(this.o.stage.grads, 'sum'));
      return;
    }
    for (const u of this.units) if (u.gradBuf) await this.reduceUnit(u);
  }

  /**
   * Sum of squares of the reduced gradients over this rank's shards, skipping entries `skip` rejects.
   * The native sumSquares kernel sums each part in double (a JavaScript loop cost 5-12 ms a step on
   * gpt-tiny, work the analyzer does not charge); the parts' float32 sums add up in double here.
   */
  gradSquares(skip: (name: string, shard: string) => boolean): number {
    let sum = 0;
    const out = new Float32Array(1);
    for (const u of this.units) {
      const owned = this.owned(u);
      for (const e of u.unit.entries) {
        if (skip(e.name, e.shard)) continue;
        for (const [lo, hi] of owned) {
          const a = Math.max(lo, e.offset), b = Math.min(hi, e.offset + e.size);
          if (a >= b) continue;
          u.grads.forParts(a, b, (p) => {
            kernels.sumSquares(out, p);
            sum += out[0];
          });
        }
      }
    }
    return sum;
  }

  /**
   * AdamW on every unit's range, then (ZeRO-1/2) the all-gather of the updated shards over DP.
   * Units whose step needs no host/device copies run in one kernel batch (one hand-off to the
   * native threads a step instead of one a unit); the others step one by one.
   */
  async optimizerStep(step: number, lr: number, gradScale: number): Promise<void> {
    const { pools, timer } = this.o;
    const batch = new KernelBatch();
    for (const u of this.units) {
      if (u.optimizer.needsCopies(u.weights, u.grads)) await u.optimizer.step(u.weights, u.grads, step, lr, gradScale);
      else u.optimizer.record(batch, u.weights, u.grads, step, lr, gradScale);
    }
    await batch.run();
    if (!(this.st.zero === 1 || this.st.zero === 2)) return;
    for (const u of this.units) {
      if (u.group.size === 1) continue;
      const own = pools.f32('transient', u.shard.shardSize);
      u.weights.read(u.shard.lo, u.shard.hi, own, pools);
      const all = pools.f32('transient', u.shard.padded);
      await timer.wait(this.comm(u).allGather(own, all));
      u.weights.write(u.unit.lo, u.unit.hi, all.subarray(0, u.unit.hi - u.unit.lo), pools);
      pools.release(own);
      pools.release(all);
    }
  }

  /** Full-length local vectors of weights (collective over DP with ZeRO-3) and of the moments over the shards. */
  async exportState(n: number): Promise<{ params: Float32Array; m: Float32Array; v: Float32Array }> {
    const params = new Float32Array(n), m = new Float32Array(n), v = new Float32Array(n);
    for (const u of this.units) {
      if (this.st.zero >= 3) {
        const w = await this.gather(u);
        params.set(w.subarray(0, u.unit.hi - u.unit.lo), u.unit.lo);
        this.o.pools.release(w);
      } else {
        params.set(u.weights.snapshot(u.unit.lo, u.unit.hi), u.unit.lo);
      }
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
    }
  }
}
