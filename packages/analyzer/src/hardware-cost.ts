// Turns FLOPs and bytes into seconds with a HardwareProfile, as expressions (the strategy stays
// symbolic). Compute: roofline max(FLOP / rate, bytes / bandwidth) per op plus kernel launches.
// Communication: ring alpha-beta models per link class (Thakur et al. 2005, "Optimization of
// Collective Communication Operations in MPICH"), which NCCL's ring algorithms follow.
import { type AlphaBeta, fitLineRelative, fp8PeakFlops, type HardwareProfile, type LinkClass } from '@mist/core';
import { backendTerms, type BackendTerms } from './backend-terms';
import { add, div, type Expr, max, mul, num, sub, step } from './expr';
import { type AnalyzerCollective, type Op } from './op-graph';

/**
 * Which link a collective crosses: `interWeight` is a 0/1 expression (1 = inter-node link);
 * `ranksPerNode` the group's ranks on each node (default 1), by which a profile whose
 * links.interNodeScaling is `ranksPerNode` multiplies the inter-node bandwidth (capped by the
 * intra-node link's).
 */
export interface LinkChoice {
  interWeight: Expr;
  ranksPerNode?: Expr;
}
export const INTRA_NODE: LinkChoice = { interWeight: num(0) };

export type LineFit = NonNullable<ReturnType<typeof fitLineRelative>>;

export interface ComputeRates {
  /** Large-GEMM rate, FLOP/s (peak * matmulEfficiency, or fitted from the matmul table). */
  matmulRate: number;
  /** FLOPs at which a GEMM reaches half its large-shape rate. */
  halfFlops: number;
  /** Element-wise bandwidth, bytes/s. */
  elementwiseBandwidth: number;
  kernelLaunch: number;
  /** Per-op fits from the profile's opTable: seconds = c0 + c1 * elements. */
  opFits: ReadonlyMap<string, LineFit>;
  source: 'datasheet' | 'matmulTable';
  /** Large-GEMM rate with fp8 operands, FLOP/s (fp8Rate); null when the GPU has no fp8 tensor cores. */
  fp8MatmulRate: number | null;
}

/**
 * The achievable share of the fp8 peak over that of the bf16 peak, per GPU, from the same public
 * measurement the bf16 calibration uses ("Maximum Achievable Matmul FLOPS", S. Bekman, ml-engineering,
 * compute/accelerator/README.md, MAMF table, FP8 float8_e4m3fn beside BF16): H100 SXM 1402.6 of 1979
 * TFLOPS = 70.9% against 80.3% in bf16; H200 SXM 1453.4 of 1979 = 73.4% against 80.3% (the H100's,
 * "H200 is the same"); B200 SXM 3432.5 of 4500 = 76.3% against 77.6%. The H800 and the H100 PCIe take
 * the H100 SXM's (the same silicon). GPUs the table does not measure in fp8 (L4, custom specs) keep
 * the bf16 share (1).
 */
const FP8_OVER_BF16_SHARE: Record<string, number> = {
  'h100-sxm': 0.709 / 0.803, h800: 0.709 / 0.803, 'h100-pcie': 0.709 / 0.803, h200: 0.734 / 0.803, b200: 0.763 / 0.776,
};

/**
 * The fp8 large-GEMM rate of a profile: its compute-dtype rate scaled by the GPU's fp8 peak over
 * the profile's peak and by FP8_OVER_BF16_SHARE; null without fp8 tensor cores.
 */
export function fp8Rate(p: HardwareProfile, matmulRate: number): number | null {
  const peak = fp8PeakFlops(p.cluster.gpu);
  if (peak === null) return null;
  return matmulRate * (peak / p.compute.peakFlops) * (FP8_OVER_BF16_SHARE[p.cluster.gpu.name] ?? 1);
}

/**
 * Compute rates of a profile. GEMM efficiency of a shape with F FLOPs is modelled as
 * matmulEfficiency * F / (F + halfFlops), so its time (F + halfFlops) / (peak * matmulEfficiency)
 * stays linear in F. A measured matmul table (>= 2 points) replaces both constants by the
 * least-squares line seconds = c0 + c1 * F (relative residuals, fitLineRelative): rate = 1 / c1,
 * halfFlops = (c0 - kernelLaunch) * rate.
 */
export function computeRates(p: HardwareProfile): ComputeRates {
  const c = p.compute;
  let matmulRate = c.peakFlops * c.matmulEfficiency;
  let halfFlops = c.matmulHalfEfficiencyFlops;
  let source: ComputeRates['source'] = 'datasheet';
  const fit = p.matmulTable ? fitLineRelative(p.matmulTable.map((m) => ({ x: 2 * m.m * m.n * m.k, y: m.seconds }))) : undefined;
  if (fit && fit.c1 > 0) {
    matmulRate = 1 / fit.c1;
    halfFlops = Math.max(0, fit.c0 - c.kernelLaunch) * matmulRate;
    source = 'matmulTable';
  }
  const opFits = new Map<string, LineFit>();
  if (p.opTable) {
    const byName = new Map<string, { x: number; y: number }[]>();
    for (const o of p.opTable) {
      const list = byName.get(o.op) ?? [];
      list.push({ x: o.elements, y: o.seconds });
      byName.set(o.op, list);
    }
    for (const [name, pts] of byName) {
      const f = fitLineRelative(pts);
      if (f && f.c1 > 0) opFits.set(name, { c0: Math.max(0, f.c0), c1: f.c1 });
    }
  }
  return {
    matmulRate, halfFlops, elementwiseBandwidth: c.memoryBandwidth * c.memoryEfficiency,
    kernelLaunch: c.kernelLaunch, opFits, source, fp8MatmulRate: fp8Rate(p, matmulRate),
  };
}

/** Backward of an element-wise op without its own opTable entry costs this many forwards (3 vs 2 tensors moved). */
const ELEMENTWISE_BACKWARD_OVER_FORWARD = 1.5;

export class CostModel {
  readonly rates: ComputeRates;

  /** The executor backend's terms of the profile (backend-terms.ts): pass overhead, slowdowns, fused ops, wake-ups. */
  readonly backend: BackendTerms;

  constructor(readonly profile: HardwareProfile) {
    this.rates = computeRates(profile);
    this.backend = backendTerms(profile);
  }

  private opTime(o: Op, flops: Expr, bytes: Expr, kernels: number, aux: number, phase: 'forward' | 'backward'): Expr {
    const r = this.rates;
    if (phase === 'backward' && o.table && this.backend.fusedIntoForward.has(o.table)) return num(0);
    const launch = kernels * r.kernelLaunch;
    // Helper kernels (bias add / bias gradient): a launch each.
    const auxTime = aux * r.kernelLaunch;
    const memory = div(bytes, r.elementwiseBandwidth);
    let t: Expr;
    if (o.kind === 'matmul' && o.operandDtype === 'fp8') {
      // fp8 GEMMs: the FLOPs at the fp8 rate; the small-shape overhead (halfFlops at the compute
      // dtype's rate) is a fixed time per kernel that does not shrink with the dtype.
      if (r.fp8MatmulRate === null) throw new Error(`${o.name}: fp8 GEMMs need fp8 tensor cores; ${this.profile.cluster.gpu.name} has none`);
      t = add(max(add(div(flops, r.fp8MatmulRate), (kernels * r.halfFlops) / r.matmulRate), memory), launch);
    } else if (o.kind === 'matmul') {
      t = add(max(div(add(flops, kernels * r.halfFlops), r.matmulRate), memory), launch);
    } else if (o.kind === 'attention') {
      const rate = r.matmulRate * this.profile.compute.attentionEfficiency * (o.rateShare ?? 1);
      const work = this.profile.compute.attentionWorkFraction ?? 1;
      t = add(max(div(mul(work, flops), rate), memory), launch);
    } else {
      const fit = o.table ? (r.opFits.get(phase === 'backward' ? `${o.table}_backward` : o.table)) : undefined;
      const fwdFit = o.table ? r.opFits.get(o.table) : undefined;
      if (fit) t = add(fit.c0, mul(fit.c1, o.elements));
      else if (phase === 'backward' && fwdFit) t = mul(ELEMENTWISE_BACKWARD_OVER_FORWARD, add(fwdFit.c0, mul(fwdFit.c1, o.elements)));
      else t = kernels === 0 ? num(0) : add(memory, launch);
    }
    return mul(o.when, add(t, auxTime));
  }

  forward(o: Op): Expr {
    return this.opTime(o, o.fwdFlops, o.fwdBytes, o.fwdKernels, o.fwdAux, 'forward');
  }

  backward(o: Op): Expr {
    return this.opTime(o, o.bwdFlops, o.bwdBytes, o.bwdKernels, o.bwdAux, 'backward');
  }

  /** Host seconds per module pass besides kernels on one busy device (the backend section's, else 0). */
  get modulePassOverhead(): number {
    return this.backend.modulePassOverhead;
  }

  private link(kind: AnalyzerCollective, cls: LinkClass): AlphaBeta {
    // No profile measures the all-to-all (mist profile's collectives are core's COLLECTIVES): the link's own.
    if (kind === 'allToAll') return this.profile.links[cls];
    return this.profile.collectives?.[kind]?.[cls] ?? this.profile.links[cls];
  }

  /**
   * Ring collective over `n` ranks of a `bytes` buffer (the full tensor):
   *   all-reduce: 2(n-1) alpha + 2(n-1)/n * bytes * beta;
   *   all-gather, reduce-scatter: (n-1) alpha + (n-1)/n * bytes * beta;
   *   send/recv: alpha + bytes * beta;
   *   all-to-all (`bytes` the rank's send buffer): (n-1) alpha + (n-1)/n * bytes * beta, the rank
   *   sending 1/n of its buffer to each of the n-1 others: nccl-tests' bus bandwidth rule for
   *   alltoall, busBw = algBw * (n-1)/n (NVIDIA/nccl-tests, doc/PERFORMANCE.md, bus bandwidth factors: "AlltoAll: (n-1)/n"; src/alltoall.cu AlltoAllGetBw).
   * A profile's per-collective fit replaces the link's alpha/beta in the same formula. On the
   * inter-node link a group of k ranks per node gets k times the per-GPU bandwidth, no more than
   * the intra-node link's, when the profile says so (links.interNodeScaling `ranksPerNode`).
   */
  collective(kind: AnalyzerCollective, bytes: Expr, n: Expr, link: LinkChoice): Expr {
    const intra = this.link(kind, 'intraNode');
    const inter = this.link(kind, 'interNode');
    const alpha = add(intra.alpha, mul(link.interWeight, inter.alpha - intra.alpha));
    // A group with k ranks per node crosses the network on k of the node's cards at once (NCCL's
    // rings, one network card per GPU), up to the intra-node link's rate.
    const interBeta = this.profile.links.interNodeScaling === 'ranksPerNode' && link.ranksPerNode !== undefined
      ? max(intra.beta, div(inter.beta, link.ranksPerNode))
      : num(inter.beta);
    const beta = add(intra.beta, mul(link.interWeight, sub(interBeta, intra.beta)));
    if (kind === 'sendRecv') return add(alpha, mul(bytes, beta));
    const steps = kind === 'allReduce' ? 2 : 1;
    const nm1 = sub(n, 1);
    return mul(steps, add(mul(nm1, alpha), mul(div(nm1, n), bytes, beta)));
  }

  /** One host<->device copy stream of `bytes` (alpha charged when `active` > 0). */
  hostCopy(bytes: Expr, active: Expr): Expr {
    const l = this.profile.links.hostToDevice;
    return add(mul(step(active), l.alpha), mul(bytes, l.beta));
  }

  /** Memory-bound time of moving `bytes` through device memory. */
  memoryTime(bytes: Expr): Expr {
    return div(bytes, this.rates.elementwiseBandwidth);
  }
}
