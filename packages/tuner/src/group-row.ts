// The analyzer input row of a stage group's candidate strategy, written in one place for the
// intra-stage search (intra-stage.ts) and the lower bounds (bounds.ts), which must query the same rows.
import { IN as IN_COLUMNS, INPUT_WIDTH, POSITION_CODE as POSITION_CODES } from '@mist/analyzer';
import { type ParallelConfig, queryPp, type StageGroupSpec } from './enumerate';

// Module-level copies of the analyzer's tables (a re-exported binding is a getter call per access):
// this runs for every candidate row.
const IN = IN_COLUMNS;
const POSITION_CODE = POSITION_CODES;

/**
 * The analyzer input row of one candidate of a stage group at `inFlight` micro-batches in flight:
 * the one writer of these rows for the intra-stage search (intra-stage.ts) and the bounds here.
 */
export function writeGroupRow(x: Float64Array, row: number, spec: StageGroupSpec, G: number, c: ParallelConfig, inFlight: number,
  ckpt: number, ow: number, og: number, oo: number, oa: number): void {
  const o = row * INPUT_WIDTH;
  x[o + IN.LAYERS] = spec.layers;
  x[o + IN.POSITION] = POSITION_CODE[spec.position];
  x[o + IN.IN_FLIGHT] = inFlight;
  x[o + IN.PP] = queryPp(spec);
  x[o + IN.MESH_NODES] = spec.mesh.nodes;
  x[o + IN.MESH_GPUS_PER_NODE] = spec.mesh.gpusPerNode;
  x[o + IN.MICRO_BATCH] = c.microBatchSize;
  x[o + IN.GRAD_ACCUM] = G;
  x[o + IN.DP] = c.dp;
  x[o + IN.TP] = c.tp;
  x[o + IN.CP] = c.cp;
  x[o + IN.EP] = c.ep ?? 1;
  x[o + IN.SP] = c.sequenceParallel ? 1 : 0;
  x[o + IN.CKPT] = ckpt;
  x[o + IN.ZERO] = c.zero;
  x[o + IN.OFF_WEIGHTS] = ow;
  x[o + IN.OFF_GRADS] = og;
  x[o + IN.OFF_OPTIM] = oo;
  x[o + IN.OFF_ACT] = oa;
  x[o + IN.SELECTIVE] = c.selectiveRecompute ? 1 : 0;
  x[o + IN.OP_RECOMPUTE] = 0; // torchtitan's per-op policy: not in the searched spaces
}

