// Every rank of a plan in this process, each with its own CPU communicator (its own thread, real
// TCP connections on 127.0.0.1), running the same RankRuntime the worker processes run. For tests
// and tools that need the ranks' runtimes (memory pools, exported weights) without processes.
import type { ModelSpec, Plan } from '@mist/core';
import { type Communicator, createCommunicator, listenCpu } from '@mist/native';
import { placeSlice } from '../checkpoint/tensor-slice';
import { isExpertParam } from '../model';
import { worldSize } from '../topology';
import type { StepMetrics } from '../worker/protocol';
import type { TokenSource } from '../runtime/data';
import { RankRuntime } from '../runtime/rank-runtime';

/** n CPU communicators of one world on 127.0.0.1 (ephemeral ports). */
export async function localWorld(n: number, timeoutMs = 20_000): Promise<Communicator<Float32Array>[]> {
  const listeners = await Promise.all(Array.from({ length: n }, () => listenCpu()));
  const peers = listeners.map((l) => l.address);
  return Promise.all(listeners.map((listener, rank) => createCommunicator({ backend: 'cpu', rank, worldSize: n, peers, listener, timeoutMs })));
}

export interface InProcessRun {
  runtimes: RankRuntime[];
  /** Loss of each step (from the last stage). */
  losses: number[];
  /** metrics[step][rank]. */
  metrics: StepMetrics[][];
  /** Full tensors by name, assembled from the ranks. */
  weights(): Promise<Map<string, Float32Array>>;
  close(): Promise<void>;
}

export interface InProcessOptions {
  seed: number;
  lr: (step: number) => number;
  steps: number;
  data: TokenSource;
}

/** Builds every rank's runtime, runs `steps` steps on all of them together; close() when done. */
export async function runInProcess(plan: Plan, model: ModelSpec, o: InProcessOptions, before?: (rt: RankRuntime[]) => Promise<void>): Promise<InProcessRun> {
  const n = worldSize(plan);
  const world = await localWorld(n);
  const runtimes = await Promise.all(world.map((w, rank) => RankRuntime.create({ plan, model, rank, world: w, seed: o.seed, lr: o.lr, data: o.data })));
  const close = async (): Promise<void> => {
    await Promise.all(runtimes.map((r) => r.destroy()));
    await Promise.all(world.map((w) => w.destroy()));
  };
  const losses: number[] = [];
  const metrics: StepMetrics[][] = [];
  try {
    if (before) await before(runtimes);
    for (let s = 0; s < o.steps; s++) {
      const m = await Promise.all(runtimes.map((r) => r.step()));
      metrics.push(m);
      const l = m.find((x) => x.loss !== null);
      if (!l || l.loss === null) throw new Error('no rank reported a loss');
      for (const x of m) if (x.loss !== null && x.loss !== l.loss) throw new Error(`last-stage ranks disagree on the loss: ${x.loss} vs ${l.loss}`);
      losses.push(l.loss);
    }
  } catch (e) {
    await close().catch(() => undefined);
    throw e;
  }
  return {
    runtimes, losses, metrics,
    async weights() {
      // Chunk by chunk (interleaved ranks hold several): every rank exports chunk c together.
      const out = new Map<string, Float32Array>();
      const chunks = Math.max(...runtimes.map((r) => r.stages.length));
      for (let c = 0; c < chunks; c++) {
        const states = await Promise.all(runtimes.map((r) => r.exportState(c)));
        runtimes.forEach((r, i) => {
          for (const e of r.stages[c].paramEntries) {
            // DP rank 0 holds every weight but experts split over expert parallelism: those come from their ranks.
            if (r.pos.dpIndex !== 0 && !isExpertParam(e.name)) continue;
            let full = out.get(e.name);
            if (!full) out.set(e.name, (full = new Float32Array(e.shape.reduce((a, b) => a * b, 1))));
            placeSlice(e, r.pos.tp, r.pos.tpIndex, full, states[i].params.subarray(e.offset, e.offset + e.size));
          }
        });
      }
      return out;
    },
    close,
  };
}
