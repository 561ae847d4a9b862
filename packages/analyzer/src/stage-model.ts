// The stage cost model as expressions: time of the steady, first and last 1F1B micro-batch and the
// memory peak of one pipeline stage under a strategy, following the Cost model section of
// ARCHITECTURE.md and Mist (Zhu et al., EuroSys 2025), Sec. 5.
//
// Time (per micro-batch unless noted):
//   forward/backward = sum of the ops' roofline times over the stage's layers (+ embedding / head),
//   plus the executor's host cost per module pass (the profile's backend section, read through
//   backend-terms.ts: modulePassOverhead), both slower when the plan keeps more of a node's devices
//   busy (its allBusy; a pipeline stage's passes at its pipeline figure);
//   recompute = forward time of the ckptLayers, plus with selective recompute (sel, Korthikanti et
//   al. 2022, Sec. 5) the forward time of the attention core of the other layers (core's
//   selectiveSet; none with flash attention, whose kernel recomputes it anyway), or with
//   torchtitan's per-op checkpointing (osac) the forward time of what it recomputes in the other
//   layers (core's opCheckpointSet: every other GEMM and every op outside its save list) with the
//   TP entries' all-gathers, as one more module pass;
//   tpComm = the TP collectives of forward, backward and recompute, on the critical path (exposed);
//   with training.tpCommOverlap (Megatron-Core --tp-comm-overlap) a layer's sequence-parallel
//   all-gathers and reduce-scatters are pipelined with the GEMMs they feed or follow, each adding
//   only besideExtra(gemm, comm) (tpExposed; the T_TP_COMM column stays the raw time);
//   ZeRO-3 all-gathers (forward and backward), ZeRO-2/3 gradient reduce-scatters (backward) and
//   offload copies run beside compute, which runs the profile's slowdown s times slower only while
//   they run: phase = max(compute + comm (1 - 1/sc) + copies (1 - 1/so), comm, copies) (besideExtra);
//   ppComm = blocking send/recv of the boundary activation (forward) and its gradient (backward),
//   each with the wake-up of its waiting receiver where the profile measured one (p2pWake).
//   steady = forward phase + backward phase (with recompute) + tpComm (its exposed part) + ppComm.
//   first  = steady + the first layer's weight gather / fetch that cannot be prefetched.
//   last   = (extra only) the DP gradient all-reduce (ZeRO-0) or reduce-scatter (ZeRO-1) beyond
//            the overlap with the last backward (Megatron-Core's --overlap-grad-reduce; all of it
//            without training.gradReduceOverlap), the
//            ZeRO-1/2 all-gather of updated weights (with training.paramGatherOverlap, Megatron-Core's
//            --overlap-param-gather, only what the next step's first forward phase does not hide, in
//            the same form as the gradient sync), the tied-embedding gradient all-reduce between
//            first and last stage, and the optimizer step overlapped with its offload copies.
//   `last` alone may fall with more checkpointing or offloading (a longer phase hides more of the
//   sync or gather), first + last never does (the tuner's intra-stage search rests on it).
// Memory (bytes):
//   weights/grads/optim = parameters per rank * (2, 2, 12) bytes (core's modelStateBytesPerParam),
//   times the resident fraction (1 - offload) * (1/dp when sharded by ZeRO-3 / 2 / 1); weights add
//   the fp8 copies and scaling state of fp8 linear layers (fp8-stage.ts);
//   activations = inFlight * per-micro-batch saved bytes * (1 - activation offload), where a
//   checkpointed layer keeps only its input and, with selective recompute, the other layers keep
//   nothing of the attention core (the softmax output, its dropout output and mask: 5as/h of
//   Korthikanti et al.'s sbh(34 + 5as/h)); with per-op checkpointing they keep the layer's input
//   and the outputs of the kept ops only (the rest exists for one layer while it is recomputed);
//   transients: gather/fetch buffer of the largest unit (two layers, the embedding or the head),
//   one layer's full gradients before reduce-scatter/offload, the recompute of one layer, the
//   activation prefetch, the backward's gradient buffers and the logits/softmax of the loss.
//   peak = max(peak forward, peak backward).
// Host memory (bytes per GPU): the offloaded part of the rank's model states, ow * weights + og * grads
//   + oo * optim (after ZeRO sharding, the complement of the device's share), plus the offloaded
//   saved activations of every in-flight micro-batch, inFlight * oa * saved bytes. Copies run
//   between these pinned tensors and the device's fetch buffers (counted in the device peak), so
//   there are no separate host staging buffers. Capacity: usableHostMemoryPerGpu(profile).
// Mixture of experts (model.moe): the layer's ops (core's block) add the router, its top-k gate, the
//   dispatch and combine all-to-alls over the stage's ep ranks (in tpComm, exposed: the experts wait
//   for their tokens) and the experts' GEMMs on topK rows per token, balanced routing with capacity
//   factor 1 (every rank's experts get b*s*topK rows, whatever ep). The experts' parameters are
//   experts/ep per layer on a rank (params.ts expertParamsPerRank), their gradients reduced and their
//   states sharded by ZeRO over the expert-data-parallel group dp*cp/ep, in collectives of their own.
// Fit: peak <= device capacity and host memory <= host capacity.
import { dtypeBytes, type HardwareProfile, type ModelSpec, modelStateBytesPerParam, type TrainingSpec, usableDeviceMemory } from '@mist/core';
import { add, choose, div, type Expr, max, min, mul, named, num, type Operand, sub, step, substitute } from './expr';
import { CostModel, INTRA_NODE, type LinkChoice } from './hardware-cost';
import { usableHostMemoryPerGpu } from './host-memory';
import { checkFp8, fp8StageTerms } from './fp8-stage';
import { OUT } from './layout';
import { checkpointBytes, embeddingOps, headOps, headTransientBytes, layerOps, type Op, type OpComm, sumOps } from './op-graph';
import { embeddingParamsPerRank, expertParamsPerRank, finalNormParams, layerParamsPerRank, lmHeadParamsPerRank } from './params';
import { ringAttention } from './ring-attention';
import { M, S } from './symbols';

export interface AnalyzerContext {
  model: ModelSpec;
  training: TrainingSpec;
  profile: HardwareProfile;
}

export type OutputName = keyof typeof OUT;

export interface StageExpressions {
  outputs: Record<OutputName, Expr>;
  capacityBytes: number;
  /** usableHostMemoryPerGpu(profile). */
  hostCapacityBytes: number;
  /** Numeric values of the model symbols (s, h, a, k, f, V, fa). */
  modelBindings: Record<keyof typeof M, number>;
}

/** Numbers for the model / training symbols. */
export function modelBindings(m: ModelSpec, training: TrainingSpec): Record<keyof typeof M, number> {
  return {
    s: training.seqLen, h: m.hidden, a: m.heads, k: m.kvHeads, f: m.ffnHidden, V: m.vocab,
    fa: training.flashAttention ? 1 : 0,
  };
}

/** The expert-parallel group of a stage: its size and the link its all-to-all crosses. */
interface EpGroup {
  ranks: Expr;
  link: LinkChoice;
}

/**
 * TP communication overlap (TrainingSpec.tpCommOverlap): the time of the GEMMs a collective runs
 * beside (OpComm.gemms) in a pass, and the slowdown of a GEMM sharing the GPU with a collective.
 */
interface GemmOverlap {
  gemm: (names: readonly string[], phase: 'forward' | 'backward') => Expr;
  slowdown: number;
  /** Whether a collective of this phase runs beside its GEMMs (the options' share of OpComm.gemms). */
  overlaps: (c: OpComm, phase: 'forward' | 'backward') => boolean;
}

/**
 * The time a transfer of `transfer` seconds adds to `work` seconds of compute running beside it,
 * when the compute runs `slowdown` times slower while the transfer runs and at full speed
 * otherwise: for transfer <= work * slowdown the compute does transfer / slowdown of its work in that
 * window and the rest after it, adding transfer (1 - 1/slowdown); a longer transfer shows past the
 * compute's end, adding transfer - work. max() of the two, continuous at their meeting point and 0
 * for no transfer (no jump when a transfer is 0 up to rounding, as sums of flag-gated terms are).
 * The slowdown lasts while NCCL kernels or copies share the GPU with the compute (they contend for
 * its SMs and memory bandwidth: Rashidi et al., "Enabling Compute-Communication Overlap in
 * Distributed Deep Learning Training Platforms", ISCA 2021), not before or after.
 */
export function besideExtra(work: Operand, transfer: Operand, slowdown: number): Expr {
  return max(mul(transfer, 1 - 1 / slowdown), sub(transfer, work));
}

/**
 * The time the ops' collectives of a pass add to it. Each is exposed, except with `overlap` a
 * collective with OpComm.gemms, pipelined with them: it adds besideExtra(gemm, comm) (the GEMMs run
 * slower while it runs, and a collective longer than them shows past their end), nothing when it
 * moves nothing (tp 1).
 */
function commOf(ops: readonly Op[], phase: 'forward' | 'backward', cost: CostModel, ep?: EpGroup, overlap?: GemmOverlap): Expr {
  const terms: Expr[] = [];
  for (const o of ops) {
    for (const c of o.comm) {
      if (c.phase !== phase) continue;
      if (c.group === 'ep' && !ep) throw new Error(`${o.name}: an expert-parallel collective outside a transformer layer`);
      const time = c.group === 'ep' && ep ? cost.collective(c.collective, c.bytes, ep.ranks, ep.link) : cost.collective(c.collective, c.bytes, S.t, INTRA_NODE);
      if (overlap && c.gemms && c.gemms.length > 0 && c.group === undefined && overlap.overlaps(c, phase)) {
        const g = overlap.gemm(c.gemms, phase);
        terms.push(mul(o.when, c.weight, besideExtra(g, time, overlap.slowdown)));
      } else {
        terms.push(mul(o.when, c.weight, time));
      }
    }
  }
  return add(...terms);
}

/**
 * A compute phase with collectives (`comm` seconds) and host copies (`copies`) beside it: the compute
 * runs the profile's commSlowdown (offloadSlowdown) times slower only while they run (besideExtra),
 * and the phase lasts at least as long as each of them:
 * max(compute + comm (1 - 1/sc) + copies (1 - 1/so), comm, copies).
 */
function overlap(compute: Expr, comm: Expr, copies: Expr, p: HardwareProfile): Expr {
  const slowed = add(compute, mul(comm, 1 - 1 / p.overlap.commSlowdown), mul(copies, 1 - 1 / p.overlap.offloadSlowdown));
  return max(slowed, comm, copies);
}

export function buildStageExpressions(ctx: AnalyzerContext): StageExpressions {
  const { model, training, profile } = ctx;
  const cost = new CostModel(profile);
  const e = dtypeBytes(training.computeDtype);
  const bytesPer = modelStateBytesPerParam(training);
  const opts = { actBytes: e, sequenceParallelInput: training.sequenceParallelInput };
  // fp8 linear layers (fp8-stage.ts): the transformer layers' GEMMs in fp8, their weight copies and casts.
  checkFp8(training, profile);
  const layer = layerOps(model, { ...opts, fp8: training.fp8, elementwise: training.elementwise, flashAttentionKernel: training.flashAttentionKernel });
  const f8 = fp8StageTerms(model, training, cost, bytesPer.weights);
  const emb = embeddingOps(model, opts);
  const hd = headOps(model, { ...opts, crossEntropy: training.crossEntropy });
  const { L, inFlight, b, G, t, sp, ckpt, ow, og, oo, oa, sel, osac, embed, head, prev, next, z1, z2, z3, multiNode, p2pInter } = S;
  const { s, h, a, f, fa } = M;
  const cp = S.cp;
  // Context parallelism (cp): gradients are reduced and ZeRO shards over the dp * cp ranks that
  // hold the same weights (Megatron-Core's data-parallel group with context parallelism).
  const dp = named('dpcp', mul(S.dp, cp));
  // Expert parallelism (mixture of experts; Megatron-Core's expert grid, parallel_state.py
  // initialize_model_parallel): the experts are split over ep ranks carved out of the dp * cp ranks
  // (expert tensor parallelism = tp; expert grid order tp-ep-dp), so an expert's weights are
  // replicated over the expert-data-parallel group of edp = dp * cp / ep ranks, over which its
  // gradients are reduced and ZeRO shards them. An EP group is ep consecutive TP groups: its
  // all-to-all stays in a node when tp * ep <= the stage's GPUs per node. A row whose ep column is
  // 0 (written without it) reads as ep 1. Dense models have no ep term.
  const moe = model.moe !== undefined;
  const epRanks = named('ep1', max(1, S.ep));
  const edp = named('edp', div(dp, epRanks));
  const epGroup: EpGroup = { ranks: epRanks, link: { interWeight: step(sub(mul(t, epRanks), S.gpn)) } };

  // ---- compute and TP communication ----
  const sumF = (ops: readonly Op[]): Expr => add(...ops.map((o) => cost.forward(o)));
  const sumB = (ops: readonly Op[]): Expr => add(...ops.map((o) => cost.backward(o)));
  // Host cost of the module passes (backend terms, cost.backend): the executor runs each
  // layer's forward, backward and recompute, the embedding and the head as one kernel batch, cut
  // in three around a layer's two TP all-reduces (and in two around the embedding's and the head's).
  // With every device of a node computing at once, kernels and passes are slower (backend
  // allBusy); busyShare interpolates from one device (0) to all of the node's (1) by the
  // devices the plan keeps busy on a node, pp x the stage's devices per node.
  const allBusy = cost.backend.allBusy;
  const nodeDevices = profile.cluster.gpusPerNode;
  const busyShare = named('busyShare', allBusy && nodeDevices > 1
    ? max(0, min(1, div(sub(mul(S.pp, S.gpn), 1), nodeDevices - 1)))
    : num(0));
  const kernelScale = allBusy ? add(1, mul(allBusy.kernelSlowdown - 1, busyShare)) : num(1);
  // A stage of a pipeline (pp > 1) waits for its neighbours' messages: its passes cost the host the
  // profile's pipeline figure where it has one.
  const busyPass = !allBusy ? undefined : allBusy.pipelineModulePassOverhead === undefined
    ? num(allBusy.modulePassOverhead)
    : choose(step(sub(S.pp, 1)), allBusy.pipelineModulePassOverhead, allBusy.modulePassOverhead);
  const passS = named('passS', busyPass
    ? add(cost.modulePassOverhead, mul(sub(busyPass, cost.modulePassOverhead), busyShare))
    : num(cost.modulePassOverhead));
  const tpSplit = step(sub(t, 1));
  const layerPass = mul(passS, add(1, mul(2, tpSplit)));
  const endPass = mul(passS, add(1, tpSplit));
  const ring = ringAttention(model, layer, cost, kernelScale, e);
  const layerF = named('layerF', add(mul(kernelScale, sumF(layer)), layerPass, ring.forward));
  const layerB = named('layerB', add(mul(kernelScale, sumB(layer)), layerPass, ring.backward));
  const fwdC = named('fwdC', add(mul(L, layerF), mul(embed, add(mul(kernelScale, sumF(emb)), endPass)), mul(head, add(mul(kernelScale, sumF(hd)), endPass))));
  const bwdC = named('bwdC', add(mul(L, layerB), mul(embed, add(mul(kernelScale, sumB(emb)), endPass)), mul(head, add(mul(kernelScale, sumB(hd)), endPass))));
  // Selective recompute runs the attention core's forward again in the backward of every layer not
  // fully checkpointed (its ops have no TP collective, so tpComm is unchanged).
  const selF = named('selF', mul(kernelScale, sumF(layer.filter((o) => o.selective === true))));
  // torchtitan's per-op checkpointing (osac) runs again, in every layer not fully checkpointed, each
  // op's recomputed share (core's opCheckpointSet: every other GEMM, the norms, RoPE, activations,
  // residual adds; not the attention kernel) as one more module pass.
  const opF = named('opF', add(mul(kernelScale, add(...layer.map((o) => mul(o.opRecompute ?? 0, cost.forward(o))))), layerPass));
  const recC = named('recC', add(mul(ckpt, layerF), mul(sel, sub(L, ckpt), selF), mul(osac, sub(L, ckpt), opF)));
  // The layer's TP collectives and, with mixture of experts, its dispatch and combine all-to-alls.
  const layerTpF = named('layerTpF', commOf(layer, 'forward', cost, epGroup));
  const layerTpB = named('layerTpB', commOf(layer, 'backward', cost, epGroup));
  const embTp = mul(embed, add(commOf(emb, 'forward', cost), commOf(emb, 'backward', cost)));
  const headTp = mul(head, add(commOf(hd, 'forward', cost), commOf(hd, 'backward', cost)));
  // The collectives of the ops per-op checkpointing runs again (the TP entries' all-gathers; the exits'
  // reduce-scatters are in its save list).
  const layerTpOp = named('layerTpOp', commOf(layer.filter((o) => o.opRecomputedWhole === true), 'forward', cost, epGroup));
  const opTp = mul(osac, sub(L, ckpt), layerTpOp);
  const tpComm = named('tpComm', add(mul(L, add(layerTpF, layerTpB)), mul(ckpt, layerTpF), opTp, embTp, headTp));
  // TP communication overlap (training.tpCommOverlap, Megatron-Core --tp-comm-overlap): a layer's
  // sequence-parallel collectives are pipelined with the GEMMs they feed or follow (op-graph.ts
  // tpOverlapGemms): forward with the GEMM's forward, backward with one of its two backward GEMMs
  // (half its backward time: the weight-gradient GEMM beside the input gradient's reduce-scatter,
  // the input-gradient GEMM beside the output gradient's all-gather), each collective adding
  // besideExtra(gemm, comm). The recompute's forward overlaps as the forward does. The
  // embedding's and the LM head's collectives (not Transformer Engine modules in Megatron-Core) and
  // the experts' stay exposed. Without the option the exposed time is tpComm.
  // Megatron-LM's asynchronous backward collectives (training.tpBackwardOverlap): the entries'
  // backward all-gather beside the input-gradient GEMM, their reduce-scatter or all-reduce beside the
  // weight-gradient GEMM, each half the linears' backward time, as above.
  let tpExposed = tpComm;
  const tpo = training.tpCommOverlap === true;
  const asyncBwd = training.tpBackwardOverlap === true;
  if (tpo || asyncBwd) {
    const opByName = new Map(layer.map((o) => [o.name, o]));
    const gemm = (names: readonly string[], phase: 'forward' | 'backward'): Expr => mul(kernelScale, add(...names.map((n) => {
      const o = opByName.get(n);
      if (!o) throw new Error(`TP overlap: no op ${n} in the layer`);
      return mul(o.when, phase === 'forward' ? cost.forward(o) : mul(0.5, cost.backward(o)));
    })));
    const overlaps = (c: OpComm, phase: 'forward' | 'backward'): boolean =>
      (tpo && c.collective !== 'allReduce') || (asyncBwd && phase === 'backward' && c.at === 'entry');
    const ov: GemmOverlap = { gemm, slowdown: profile.overlap.commSlowdown, overlaps };
    const layerTpFx = named('layerTpFx', commOf(layer, 'forward', cost, epGroup, ov));
    const layerTpBx = named('layerTpBx', commOf(layer, 'backward', cost, epGroup, ov));
    tpExposed = named('tpExposed', add(mul(L, add(layerTpFx, layerTpBx)), mul(ckpt, layerTpFx), opTp, embTp, headTp));
  }

  // ---- parameters and model states ----
  const Pl = named('Pl', layerParamsPerRank(model));
  const Pe = named('Pe', embeddingParamsPerRank(model));
  const Ph = lmHeadParamsPerRank();
  // With tied embeddings a stage holding both ends uses one table; a separate last stage keeps a copy.
  const headP = named('headP', add(finalNormParams(model), model.tiedEmbeddings ? mul(sub(1, embed), Ph) : Ph));
  const Pr = named('Pr', add(mul(L, Pl), mul(embed, Pe), mul(head, headP)));
  const shard = (z: Expr): Expr => add(sub(1, z), div(z, dp)); // 1/dp when sharded, else 1
  const rw = named('rw', mul(sub(1, ow), shard(z3)));
  const rg = named('rg', mul(sub(1, og), shard(z2)));
  const ro = named('ro', mul(sub(1, oo), shard(z1)));
  const wBytes = mul(bytesPer.weights, Pr);
  const gBytes = mul(bytesPer.grads, Pr);
  const oBytes = mul(bytesPer.optim, Pr);
  // Expert parameters of the stage on a rank (experts / ep per layer), sharded by ZeRO over edp.
  const PxL = moe ? named('PxL', expertParamsPerRank(model, epRanks)) : num(0);
  const Px = moe ? named('Px', mul(L, PxL)) : num(0);
  const shardE = (z: Expr): Expr => add(sub(1, z), div(z, edp));
  const rwE = moe ? named('rwE', mul(sub(1, ow), shardE(z3))) : num(0);
  const rgE = moe ? named('rgE', mul(sub(1, og), shardE(z2))) : num(0);
  const roE = moe ? named('roE', mul(sub(1, oo), shardE(z1))) : num(0);
  const wBytesE = mul(bytesPer.weights, Px);
  const gBytesE = mul(bytesPer.grads, Px);
  const oBytesE = mul(bytesPer.optim, Px);
  // fp8ParamGather (fp8-stage.ts): a layer's compute copy is f8Save bytes smaller where it is whole on
  // the device: resident (ZeRO < 3, not offloaded) or gathered; ZeRO-3's shards keep their dtype.
  const f8Save = f8.paramGatherSavingPerLayer;
  const memWeights = named('memWeights', sub(add(mul(wBytes, rw), mul(wBytesE, rwE), f8.memory), mul(f8Save, L, sub(1, ow), sub(1, z3))));
  const memGrads = named('memGrads', add(mul(gBytes, rg), mul(gBytesE, rgE)));
  const memOptim = named('memOptim', add(mul(oBytes, ro), mul(oBytesE, roE)));
  const states = named('states', add(memWeights, memGrads, memOptim));
  const headUnit = add(finalNormParams(model), Ph);
  // A layer (or the embedding / head) must be whole on the device while it computes; two layers
  // when the next one is prefetched.
  const gatherUnitBytes = named('gatherUnitBytes', max(mul(min(2, L), sub(mul(bytesPer.weights, Pl), f8Save)),
    mul(bytesPer.weights, embed, Pe), mul(bytesPer.weights, head, headUnit)));
  // Likewise a unit's full gradient (ZeRO-2/3, or offloaded gradients) is whole until its reduction
  // ends, which runs beside the next layer's backward: two layers' (PyTorch FSDP keeps a layer's
  // unsharded gradient until its reduce-scatter completes; the executor's overlapComm does the same).
  const gradUnit = named('gradUnit', max(mul(min(2, L), Pl), mul(embed, Pe), mul(head, headUnit)));
  const gatherBuf = named('gatherBuf', add(mul(sub(1, rw), gatherUnitBytes),
    moe ? mul(bytesPer.weights, sub(1, rwE), min(2, L), PxL) : num(0)));
  const gradBuf = named('gradBuf', add(mul(bytesPer.grads, sub(1, rg), gradUnit), moe ? mul(bytesPer.grads, sub(1, rgE), PxL) : num(0)));

  // ---- activations ----
  const actFull = named('actFull', sumOps(layer, (o) => o.saved));
  const selBytes = named('selBytes', sumOps(layer, (o) => o.selectiveSaved ?? num(0)));
  // Per-op checkpointing keeps only its kept tensors (the layer's input, every other GEMM's output,
  // the attention output and log-sum-exp).
  const opKept = named('opKept', sumOps(layer, (o) => o.opKept ?? num(0)));
  const actL = named('actL', sub(actFull, add(mul(sel, selBytes), mul(osac, sub(actFull, opKept)))));
  const keep = named('keep', checkpointBytes(opts));
  const core = named('core', add(mul(sub(L, ckpt), actL), mul(ckpt, keep)));
  const extra = named('extra', add(mul(embed, sumOps(emb, (o) => o.saved)), mul(head, sumOps(hd, (o) => o.saved))));
  const stored = named('stored', add(core, extra));
  const resident = sub(1, oa);
  const memActivations = named('memActivations', mul(inFlight, resident, stored));
  // The micro-batch in backward: while its non-checkpointed layers run, one layer's offloaded part is
  // prefetched; while a checkpointed layer is recomputed its full activations exist beside the
  // resident inputs of the checkpointed layers before it (the stage's first ckptLayers layers are
  // the checkpointed ones, as Megatron-LM's "block" method). With selective recompute a layer's
  // attention core is recomputed for its backward beside the stored activations.
  const currentBwd = named('currentBwd', add(
    max(mul(step(sub(L, ckpt)), add(mul(resident, core), mul(oa, actL), mul(sel, selBytes), mul(osac, sub(actFull, opKept)))),
      mul(step(ckpt), add(mul(resident, sub(ckpt, 1), keep), actFull))),
    mul(resident, extra),
  ));
  const recomputeBuf = sub(currentBwd, mul(resident, stored));
  const T = mul(b, s);
  // The MLP's widest gradient (with mixture of experts: topK rows per token, one expert's width).
  const ffnRows = model.moe ? mul(T, model.moe.topK) : T;
  const ffnWidth = model.moe?.ffnHidden !== undefined ? num(model.moe.ffnHidden) : f;
  const ffnGrad = mul(e, ffnRows, div(ffnWidth, t), model.activation === 'swiglu' ? 2 : 1);
  const scoresGrad = mul(sub(1, fa), e, b, div(a, t), s, s);
  // Backward working memory: the incoming and outgoing activation gradients and the largest gradient inside a layer.
  const bwdWork = named('bwdWork', add(mul(2 * e, T, h), max(ffnGrad, scoresGrad)));
  const logits = headTransientBytes({ ...opts, crossEntropy: training.crossEntropy });
  const peakForward = named('peakForward', add(states, memActivations, gatherBuf, mul(oa, min(actL, stored)), mul(head, logits.forward), ring.bufferForward));
  const peakBackward = named('peakBackward', add(states, memActivations, recomputeBuf, gatherBuf, gradBuf, bwdWork, mul(head, logits.backward), ring.bufferBackward));
  const peak = named('peak', max(peakForward, peakBackward));
  // The tensors live at one time: the head's backward (logits and their gradient) ends before the
  // last layer's recompute and backward begin, so the live peak takes the larger of the two where
  // `peak` adds them; and without flash attention the softmax backward reads the probabilities'
  // gradient while it writes the scores' (PyTorch's _softmax_backward_data returns a new tensor), so
  // a layer's backward holds a second score-sized gradient. `peak` is what the fit test reads and,
  // with fragmentation, what the caching allocator reserves: it adds the two phases (the head phase's
  // freed blocks stay cached beside the layers': the torchtitan rows of tools/validate, reserved
  // memory, agree with the sum and fall 9-26% short with the live peak) and keeps one score-sized
  // gradient (with both, Mist's L4 run, which ran on its L4s, is predicted not to fit). The live peak
  // is torch.cuda.max_memory_allocated (plan-estimate.ts deviceMemory.allocatedBytes; Mist's L4 run:
  // +0.4%, +3.2% with the sum).
  const peakBackwardLive = named('peakBackwardLive', add(states, memActivations, gatherBuf, gradBuf, ring.bufferBackward,
    max(mul(head, logits.backward), add(recomputeBuf, bwdWork, scoresGrad))));
  const peakLive = named('peakLive', max(peakForward, peakBackwardLive));
  const capacityBytes = usableDeviceMemory(profile);

  // ---- DP / ZeRO communication and offload copies ----
  // A DP group has gpn / t ranks on each node of the stage's mesh (tp ranks are a node's neighbours).
  const dpLink: LinkChoice = { interWeight: multiNode, ranksPerNode: max(1, div(S.gpn, t)) };
  const p2pLink: LinkChoice = { interWeight: p2pInter };
  // The rank's TP shard of the stage's weights, all-gathered over dp (fp8 compute copies with fp8ParamGather).
  const gatherBytes = named('gatherBytes', sub(wBytes, mul(f8Save, L)));
  // The experts' collectives run over their expert-data-parallel group: ranks tp * ep apart, gpn / (tp * ep) on a node.
  const edpLink: LinkChoice = { interWeight: multiNode, ranksPerNode: max(1, div(S.gpn, mul(t, epRanks))) };
  const edpColl = (kind: 'allGather' | 'reduceScatter' | 'allReduce', bytes: Expr): Expr =>
    (moe ? cost.collective(kind, bytes, edp, edpLink) : num(0));
  const dpFwdMb = named('dpFwdMb', mul(z3, add(cost.collective('allGather', gatherBytes, dp, dpLink), edpColl('allGather', wBytesE))));
  const dpBwdMb = named('dpBwdMb', add(mul(z3, add(cost.collective('allGather', gatherBytes, dp, dpLink), edpColl('allGather', wBytesE))),
    mul(z2, add(cost.collective('reduceScatter', gBytes, dp, dpLink), edpColl('reduceScatter', gBytesE)))));
  // weight bytes kept on the host, fetched per pass
  const offW = named('offW', add(mul(ow, wBytes, shard(z3)), moe ? mul(ow, wBytesE, shardE(z3)) : num(0)));
  const offG = named('offG', add(mul(og, gBytes, shard(z2)), moe ? mul(og, gBytesE, shardE(z2)) : num(0)));
  const offA = named('offA', mul(oa, stored));
  const copies = (h2d: Expr, d2h: Expr, active: Expr): Expr =>
    max(cost.hostCopy(h2d, active), cost.hostCopy(d2h, active));
  const fwdOff = named('fwdOff', copies(offW, offA, add(ow, oa)));
  const bwdOff = named('bwdOff', copies(add(offW, offA), offG, add(ow, oa, og)));
  const fwdPhase = named('fwdPhase', overlap(fwdC, dpFwdMb, fwdOff, profile));
  const bwdPhase = named('bwdPhase', overlap(add(bwdC, recC), dpBwdMb, bwdOff, profile));
  const boundary = mul(e, T, h, choose(sp, div(1, t), 1));
  // Each pipeline message also pays the wake-up of its waiting receiver (backend p2pWake, CPU hosts).
  const ppComm = named('ppComm', mul(add(next, prev), add(cost.collective('sendRecv', boundary, num(2), p2pLink), cost.backend.p2pWake)));
  const steady = named('steady', add(fwdPhase, bwdPhase, tpExposed, ppComm, f8.perMicroBatch));

  const firstUnit = add(mul(embed, Pe), mul(sub(1, embed), Pl));
  const firstUnitE = mul(sub(1, embed), PxL);
  const firstExtra = named('firstExtra', add(
    mul(z3, add(cost.collective('allGather', sub(mul(bytesPer.weights, firstUnit), mul(sub(1, embed), f8Save)), dp, dpLink), edpColl('allGather', mul(bytesPer.weights, firstUnitE)))),
    cost.hostCopy(add(mul(ow, bytesPer.weights, firstUnit, shard(z3)), moe ? mul(ow, bytesPer.weights, firstUnitE, shardE(z3)) : num(0)), ow),
    f8.firstOnly,
  ));
  const first = named('first', add(steady, firstExtra));

  // Gradient sync at the end: all-reduce (ZeRO-0) or reduce-scatter (ZeRO-1) of the gradients;
  // ZeRO-2/3 already reduced every micro-batch.
  const sync = named('sync', add(mul(sub(1, z1), add(cost.collective('allReduce', gBytes, dp, dpLink), edpColl('allReduce', gBytesE))),
    mul(z1, sub(1, z2), add(cost.collective('reduceScatter', gBytes, dp, dpLink), edpColl('reduceScatter', gBytesE)))));
  // With training.gradReduceOverlap it runs beside the last micro-batch's backward phase:
  // exposed = besideExtra(phase, sync); without, after it: exposed whole.
  const commSlow = profile.overlap.commSlowdown;
  const exposedSync = named('exposedSync', training.gradReduceOverlap === false ? sync : besideExtra(bwdPhase, sync, commSlow));
  const postGather = named('postGather', mul(sub(z1, z3), add(cost.collective('allGather', gatherBytes, dp, dpLink), edpColl('allGather', wBytesE))));
  // With training.paramGatherOverlap (Megatron-Core --overlap-param-gather: each bucket's gather is
  // waited for in the forward pre-hook of its first module, megatron/core/distributed/
  // distributed_data_parallel.py) it runs beside the next step's first forward phase:
  // exposed = besideExtra(phase, gather), as exposedSync.
  const gatherExposed = training.paramGatherOverlap === true ? named('gatherExposed', besideExtra(fwdPhase, postGather, commSlow)) : postGather;
  const tiedSync = named('tiedSync', model.tiedEmbeddings
    ? mul(add(mul(embed, sub(1, head)), mul(head, sub(1, embed))),
      cost.collective('allReduce', mul(bytesPer.grads, Ph), num(2), p2pLink))
    : num(0));
  // AdamW step, memory-bound: reads the gradient and the fp32 states, writes the states and the
  // compute-dtype weights (2 + 2*12 + 2 = 28 bytes/parameter in mixed precision).
  const optParams = named('optParams', add(mul(Pr, shard(z1)), moe ? mul(Px, shardE(z1)) : num(0)));
  const optStep = named('optStep', add(cost.memoryTime(mul(optParams, bytesPer.grads + 2 * bytesPer.optim + bytesPer.weights)), passS));
  const optOffH2D = add(mul(oo, bytesPer.optim, optParams), offG);
  const optOffD2H = add(mul(oo, bytesPer.optim, optParams), offW);
  const optOff = named('optOff', copies(optOffH2D, optOffD2H, add(oo, og, ow)));
  const optPhase = named('optPhase', overlap(optStep, num(0), optOff, profile));
  const last = named('last', add(exposedSync, gatherExposed, tiedSync, optPhase));

  const dpComm = named('dpComm', add(mul(G, add(dpFwdMb, dpBwdMb)), sync, postGather, tiedSync));
  const offloadTime = named('offloadTime', add(mul(G, add(fwdOff, bwdOff)), optOff));
  const transient = sub(peak, add(states, memActivations));

  // ---- host memory ----
  // More offload moves bytes from the device to the host: host memory grows with every offload
  // ratio and the in-flight count, and shrinks with ckptLayers (fewer saved bytes to offload).
  const offO = named('offO', add(mul(oo, oBytes, shard(z1)), moe ? mul(oo, oBytesE, shardE(z1)) : num(0)));
  const hostActivations = named('hostActivations', mul(inFlight, offA));
  const hostMemory = named('hostMemory', add(offW, offG, offO, hostActivations));
  const hostCapacityBytes = usableHostMemoryPerGpu(profile);
  // 1 when it fits (bytes <= capacity, whole bytes).
  const fitsDevice = named('fitsDevice', step(sub(capacityBytes + 1, peak)));
  const fitsHost = named('fitsHost', step(sub(hostCapacityBytes + 1, hostMemory)));

  const outputs: Record<OutputName, Expr> = {
    STEADY: steady,
    FIRST: first,
    LAST: last,
    PEAK_MEMORY: peak,
    MEM_WEIGHTS: memWeights,
    MEM_GRADS: memGrads,
    MEM_OPTIM: memOptim,
    MEM_ACTIVATIONS: memActivations,
    MEM_TRANSIENT: transient,
    MEM_PEAK_FORWARD: peakForward,
    MEM_PEAK_BACKWARD: peakBackward,
    MEM_PEAK_LIVE: peakLive,
    T_FORWARD: fwdC,
    T_BACKWARD: bwdC,
    T_RECOMPUTE: recC,
    T_TP_COMM: tpComm,
    T_DP_COMM: dpComm,
    T_PP_COMM: ppComm,
    T_OFFLOAD: offloadTime,
    T_OPTIMIZER: optStep,
    // 1 when both the device peak and the host memory fit.
    FITS: mul(fitsDevice, fitsHost),
    HOST_MEMORY: hostMemory,
    HOST_CAPACITY: num(hostCapacityBytes),
    HOST_ACTIVATIONS: hostActivations,
    FITS_DEVICE: fitsDevice,
    FITS_HOST: fitsHost,
  };
  // Context parallelism: a rank holds s/cp of every sample's tokens, so each per-token size above is
  // that of b/cp whole samples, while the keys its queries meet over the K/V ring stay s long: the
  // attention work per rank is 1/cp of the full causal work (ring-attention.ts). b when cp is 1.
  const perRank = { b: named('bcp', div(b, cp)) };
  const memo = new Map<string, Expr>();
  for (const n of Object.keys(outputs) as OutputName[]) outputs[n] = substitute(outputs[n], perRank, memo);
  return { outputs, capacityBytes, hostCapacityBytes, modelBindings: modelBindings(model, training) };
}
