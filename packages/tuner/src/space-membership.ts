// Does a plan lie in a search space? The tuner returns only members of the space it was asked to
// search (a baseline plan may seed a search only when it is a member), and the tests check every
// restriction flag with this one function.
import { engineCapabilities, type Plan, planCapabilityViolations, stageLayerCount } from '@mist/core';
import { isPowerOfTwo } from './enumerate';
import type { OffloadLevels, SearchSpace } from './search-space';

const RATIO_TOLERANCE = 1e-9;

function onGrid(x: number, levels: readonly number[]): boolean {
  return levels.some((l) => Math.abs(l - x) <= RATIO_TOLERANCE);
}

/** Every way the plan leaves the space, as `field: reason`; empty when the plan is a member. */
export function planSpaceViolations(plan: Plan, space: SearchSpace): string[] {
  const out: string[] = [];
  const pp = plan.stages.length;
  if (pp > space.maxStages) out.push(`stages: ${pp} stages, the space allows at most ${space.maxStages}`);
  // Interleaved 1F1B: the engine spaces allow what their engine runs (checked below with the engine's
  // table); the Mist space allows up to maxVirtualStages chunks per rank, with one mesh for every rank
  // and no offloading (interleaved-search.ts).
  const v = plan.virtualStages ?? 1;
  if (v > 1 && space.engine && space.maxVirtualStages !== undefined && v > space.maxVirtualStages) {
    out.push(`virtualStages: ${v}, the ${space.name} space allows at most ${space.maxVirtualStages} model chunks per rank`);
  }
  if (v > 1 && !space.engine) {
    const maxV = space.maxVirtualStages ?? 1;
    if (v > maxV) out.push(`virtualStages: ${v}, the ${space.name} space allows at most ${maxV} model chunks per rank`);
    const m0 = plan.stages[0].mesh;
    plan.stages.forEach((s, i) => {
      if (s.mesh.nodes !== m0.nodes || s.mesh.gpusPerNode !== m0.gpusPerNode) {
        out.push(`stages[${i}].mesh: ${s.mesh.nodes}x${s.mesh.gpusPerNode}, an interleaved plan of the ${space.name} space uses stage 0's mesh on every rank`);
      }
      if (s.offload.weights > 0 || s.offload.grads > 0 || s.offload.optim > 0 || s.offload.activations > 0) {
        out.push(`stages[${i}].offload: an interleaved plan of the ${space.name} space offloads nothing`);
      }
    });
  }
  const first = plan.stages[0];
  plan.stages.forEach((s, i) => {
    const at = `stages[${i}]`;
    const layers = stageLayerCount(s);
    if (space.uniformPartition && layers !== stageLayerCount(first)) {
      out.push(`${at}.layers: ${layers} layers, the space wants a uniform partition (${stageLayerCount(first)} in stage 0)`);
    }
    if (space.uniformMesh && (s.mesh.nodes !== first.mesh.nodes || s.mesh.gpusPerNode !== first.mesh.gpusPerNode)) {
      out.push(`${at}.mesh: ${s.mesh.nodes}x${s.mesh.gpusPerNode}, the space wants every stage on stage 0's mesh`);
    }
    if (space.microBatchPow2 && !isPowerOfTwo(s.microBatchSize)) {
      out.push(`${at}.microBatchSize: ${s.microBatchSize} is not a power of two`);
    }
    if (s.tp > space.maxTp) out.push(`${at}.tp: ${s.tp}, the space allows at most ${space.maxTp}`);
    const cp = s.cp ?? 1;
    if (cp > (space.maxCp ?? 1)) out.push(`${at}.cp: ${cp}, the space allows at most ${space.maxCp ?? 1}`);
    const ep = s.ep ?? 1;
    if (ep > (space.maxEp ?? 1)) out.push(`${at}.ep: ${ep}, the space allows at most ${space.maxEp ?? 1}`);
    if (s.sequenceParallel && !space.sequenceParallel) out.push(`${at}.sequenceParallel: on, the space has it off`);
    if (space.ckpt === 'none' && s.ckptLayers !== 0) out.push(`${at}.ckptLayers: ${s.ckptLayers}, the space has no checkpointing`);
    if (space.ckpt === 'all-or-none' && s.ckptLayers !== 0 && s.ckptLayers !== layers) {
      out.push(`${at}.ckptLayers: ${s.ckptLayers} of ${layers}, the space checkpoints all layers of a stage or none`);
    }
    if (s.selectiveRecompute === true && !space.selectiveRecompute) {
      out.push(`${at}.selectiveRecompute: on, the space has it off`);
    }
    // torchtitan's per-op checkpointing: searched by the torchtitan space only (engine-search.ts).
    if (s.opRecompute === true && (!space.engine || space.ckpt === 'none')) {
      out.push(`${at}.opRecompute: on, the ${space.name} space ${space.engine ? 'has no recompute' : 'does not search per-op checkpointing (torchtitan\'s: --target torchtitan)'}`);
    }
    // With one data-parallel rank every ZeRO level is the same strategy; the tuner writes the lowest allowed.
    if (!space.zero.includes(s.zero) && !(s.dp * cp === 1 && s.zero === Math.min(...space.zero))) {
      out.push(`${at}.zero: ${s.zero}, the space allows ${space.zero.join(', ')}`);
    }
    for (const k of Object.keys(space.offload) as (keyof OffloadLevels)[]) {
      if (!onGrid(s.offload[k], space.offload[k])) {
        out.push(`${at}.offload.${k}: ${s.offload[k]}, the space allows ${space.offload[k].join(', ')}`);
      }
    }
  });
  if (space.engine) {
    for (const v of planCapabilityViolations(plan, engineCapabilities(space.engine))) out.push(`${v.field}: ${v.feature}: ${v.detail}`);
  }
  return out;
}

export function planInSpace(plan: Plan, space: SearchSpace): boolean {
  return planSpaceViolations(plan, space).length === 0;
}
