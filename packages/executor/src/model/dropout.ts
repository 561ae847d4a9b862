// Where a micro-batch's dropout draws come from. The generator is counter-based (native
// dropout_rng.h): a stream per (seed, step, layer, site) and an element index inside the whole
// global batch, so one process, every data-parallel split, micro-batch split, tensor-parallel and
// sequence-parallel shard and pipeline split draw the same mask for the same element, and a
// recomputed forward draws the forward's mask again.
import type { DropoutStream } from '@mist/native';
import { hashKey } from './rng';

/** The step and the micro-batch's place in the step's global batch. */
export interface DropoutDraw {
  /** 1-based optimizer step. */
  step: number;
  /** Global index of the micro-batch's first sample in the step's batch. */
  firstSample: number;
}

/** The stream of one dropout site (an op name) of one layer (-1: the embedding). */
export function dropoutStream(seed: number, p: number, draw: DropoutDraw, layer: number, site: string): DropoutStream {
  const key = `dropout:${draw.step}:${layer}:${site}`;
  return { p, keyHi: hashKey(seed, key), keyLo: hashKey(seed ^ 0x5bd1e995, key) };
}

/** Rows [first, first + count) of a micro-batch's b * s tokens that TP rank `rank` holds under sequence parallelism. */
export function sequenceShard(tokens: number, tp: number, rank: number): { first: number; count: number } {
  if (tokens % tp !== 0) throw new Error(`sequence parallelism: ${tokens} tokens (micro-batch x sequence) do not split over tp=${tp}; allowed: a multiple of tp`);
  const count = tokens / tp;
  return { first: rank * count, count };
}
