// Collective latency/bandwidth among local ranks (CPU backend over TCP on 127.0.0.1; on one host
// every link is `intraNode`), the alpha-beta fit per collective, and the slowdown of compute while
// an all-reduce runs beside it. Each timed collective starts after a barrier; a sample is the
// slowest rank's time (the collective is done when every rank is), and the point is the median.
import { type CollectiveKind, COLLECTIVES, type FitReport } from '@mist/core';
import { CollectiveCluster } from './collective-cluster';
import { type AlphaBetaFit, fitCollective } from './fit';
import type { MatmulShape, ProfileGrid } from './grids';
import type { ProgressCounter } from './progress';
import { median } from './timing';
import type { BesideResult, WakeRound } from './worker-protocol';

export interface CollectivePoint {
  collective: CollectiveKind;
  linkClass: 'intraNode';
  ranks: number;
  bytes: number;
  seconds: number;
}

export interface CommMeasurements {
  points: CollectivePoint[];
  fits: Record<CollectiveKind, AlphaBetaFit>;
  /** Compute beside an all-reduce; undefined when no sample overlapped (reported, not guessed). */
  overlap: { aloneSeconds: number; besideSeconds: number } | undefined;
  /** Latency of a message to a receiver that waited for it (wakeLatency()); undefined without 2 ranks. */
  wake: WakeLatency | undefined;
  /** Median resident memory of a worker with the addon loaded, and what its communicator added. */
  baseRssBytes: number;
  commRssBytes: number;
}

/** The compute of the overlap measurements: a batch of mid-size GEMMs. */
export const OVERLAP_MATMUL: MatmulShape = { m: 512, n: 512, k: 512 };
export const OVERLAP_MATMUL_COUNT = 4;

/** Steps the progress counter takes for the collectives of `grid`. */
export function commSteps(grid: ProfileGrid): number {
  const perRanks = grid.collectiveRanks.map((r) => (r === 2 ? COLLECTIVES.length : COLLECTIVES.length - 1));
  return perRanks.reduce((a, b) => a + b, 0) * grid.collectiveBytes.length + 2;
}

async function measureOn(cluster: CollectiveCluster, grid: ProfileGrid, progress: ProgressCounter): Promise<CollectivePoint[]> {
  const points: CollectivePoint[] = [];
  for (const kind of COLLECTIVES) {
    if (kind === 'sendRecv' && cluster.ranks !== 2) continue; // point-to-point: measured between two ranks
    for (const bytes of grid.collectiveBytes) {
      const perRank = await cluster.all<number[]>({ cmd: 'collective', kind, bytes, warmup: grid.warmup, repeats: grid.repeats });
      const slowest = perRank[0].map((_, i) => Math.max(...perRank.map((r) => r[i])));
      points.push({ collective: kind, linkClass: 'intraNode', ranks: cluster.ranks, bytes, seconds: median(slowest) });
      progress.tick(`${kind} ${cluster.ranks} ranks ${bytes} B`);
    }
  }
  return points;
}

/** Bytes and the sender's compute before each message of the wake-up measurement. */
export const WAKE_BYTES = 64 * 1024;
export const WAKE_BUSY_MS = 5;
/** What the receiver computes on a message: a few kernel batches, as a stage's layer passes. */
export const WAKE_AFTER = { shape: { m: 256, n: 128, k: 128 }, count: 6, batches: 4 } as const;

export interface WakeLatency {
  bytes: number;
  busyMs: number;
  /** Median seconds from the send to the arrival at a receiver that waited in recv. */
  seconds: number;
  /** Median seconds of the receiver's compute (WAKE_AFTER) right after that arrival, and of the same compute back to back. */
  afterWakeSeconds: number;
  hotSeconds: number;
  rounds: number;
}

/**
 * A pipeline stage waits in recv while its neighbour computes; the message then also pays the
 * waiting process's wake-up (its threads asleep, on a virtual machine its CPU halted), which the
 * back-to-back ping-pong of the send/recv fit does not see, and the stage's first compute after it
 * runs slower than the same compute back to back (caches, the kernel thread woken again). Ranks 0
 * and 1 take turns: the sender computes WAKE_BUSY_MS, then sends WAKE_BYTES to the waiting
 * receiver, which computes WAKE_AFTER.
 */
async function wakeLatency(cluster: CollectiveCluster, rounds: number): Promise<WakeLatency> {
  const perRank = await cluster.all<WakeRound[]>({ cmd: 'p2pAfterWait', bytes: WAKE_BYTES, busyMs: WAKE_BUSY_MS, rounds, after: WAKE_AFTER });
  const ns = (a: string | undefined, b: string | undefined): number => Number(BigInt(b ?? '0') - BigInt(a ?? '0')) / 1e9;
  const lat: number[] = [], after: number[] = [], hot: number[] = [];
  for (let i = 1; i < rounds; i++) { // the first round is a warm-up
    const sender = perRank[i % 2][i], receiver = perRank[1 - (i % 2)][i];
    lat.push(ns(sender.sent, receiver.arrived));
    after.push(ns(receiver.arrived, receiver.done));
    hot.push(receiver.hotSeconds ?? NaN);
  }
  return { bytes: WAKE_BYTES, busyMs: WAKE_BUSY_MS, seconds: median(lat), afterWakeSeconds: median(after), hotSeconds: median(hot), rounds: lat.length };
}

async function measureOverlap(
  cluster: CollectiveCluster, grid: ProfileGrid, allReduce: AlphaBetaFit,
): Promise<CommMeasurements['overlap']> {
  const shape = OVERLAP_MATMUL, count = OVERLAP_MATMUL_COUNT;
  const alone = await cluster.all<number[]>({ cmd: 'computeAlone', shape, count, warmup: grid.warmup, repeats: grid.overlapRepeats });
  const aloneSeconds = Math.max(...alone.map(median));
  const commBytes = Math.max(...grid.collectiveBytes);
  const n = cluster.ranks;
  const perAllReduce = 2 * (n - 1) * allReduce.alpha + ((2 * (n - 1)) / n) * commBytes * allReduce.beta;
  // Enough back-to-back all-reduces to outlast the compute samples beside them (x2 for the slowdown).
  const commCount = Math.max(2, Math.ceil((2 * grid.overlapRepeats * aloneSeconds) / perAllReduce) + 1);
  const beside = await cluster.all<BesideResult>({
    cmd: 'computeBeside', shape, count, repeats: grid.overlapRepeats, commBytes, commCount,
  });
  const samples = beside.flatMap((b) => b.samples);
  if (samples.length === 0) return undefined;
  return { aloneSeconds, besideSeconds: Math.max(...beside.filter((b) => b.samples.length).map((b) => median(b.samples))) };
}

export async function measureComm(grid: ProfileGrid, threads: number, progress: ProgressCounter): Promise<CommMeasurements> {
  const points: CollectivePoint[] = [];
  let overlap: CommMeasurements['overlap'];
  let wake: WakeLatency | undefined;
  let rss = { base: 0, comm: 0 };
  for (const ranks of grid.collectiveRanks) {
    const cluster = await CollectiveCluster.start(ranks, threads);
    try {
      points.push(...(await measureOn(cluster, grid, progress)));
      if (ranks === grid.collectiveRanks[0]) {
        rss = { base: median(cluster.connect.map((c) => c.baseRssBytes)), comm: median(cluster.connect.map((c) => c.commRssBytes)) };
        const ar = fitCollective('allReduce', points.filter((p) => p.collective === 'allReduce'));
        overlap = await measureOverlap(cluster, grid, ar);
        progress.tick(`compute beside all-reduce (${ranks} ranks)`);
        wake = await wakeLatency(cluster, 2 * grid.repeats + 1);
        progress.tick(`send/recv to a waiting receiver (${ranks} ranks)`);
      }
    } finally {
      await cluster.stop();
    }
  }
  const fits = Object.fromEntries(COLLECTIVES.map((kind) =>
    [kind, fitCollective(kind, points.filter((p) => p.collective === kind))])) as Record<CollectiveKind, AlphaBetaFit>;
  return { points, fits, overlap, wake, baseRssBytes: rss.base, commRssBytes: rss.comm };
}

export function commFitReports(m: CommMeasurements): Record<string, FitReport> {
  return Object.fromEntries(COLLECTIVES.map((k) => [`collective:${k}:intraNode`, m.fits[k].report]));
}
