// The hosts' backend sections (core's backend-profile.ts: what the executor itself adds to the
// time model) merged into the cluster profile's, by the rules of merge.ts: per-host figures
// (host cost per module pass, all-busy slowdowns, pipeline wake-up) are the median over the hosts;
// fused ops are those every host fuses; the step noise, a sample of every device's noise, is the
// hosts' samples together (a step waits for the slowest of all the job's devices: analyzer
// stepJitter). A section only some hosts measured is left out and named in `unmeasured`, since a
// median over part of the cluster would claim what the other hosts never showed.
import type { BackendProfile, CpuBackendProfile } from '@mist/core';
import { median } from './timing';

export interface MergedBackend {
  backend?: BackendProfile;
  /** Why the section was left out (for the profile's `unmeasured`), when it was. */
  unmeasured?: string;
}

function medianOf(xs: (number | undefined)[]): number | undefined {
  return xs.every((x) => x !== undefined) ? median(xs as number[]) : undefined;
}

function mergeCpu(sections: CpuBackendProfile[]): CpuBackendProfile {
  const busy = sections.map((s) => s.allBusy);
  const allBusy = busy.every((b) => b !== undefined)
    ? {
      kernelSlowdown: median(busy.map((b) => b!.kernelSlowdown)),
      modulePassOverhead: median(busy.map((b) => b!.modulePassOverhead)),
      ...(busy.every((b) => b!.pipelineModulePassOverhead !== undefined)
        ? { pipelineModulePassOverhead: median(busy.map((b) => b!.pipelineModulePassOverhead!)) } : {}),
    }
    : undefined;
  const fused = sections.map((s) => s.fusedIntoForward);
  const fusedIntoForward = fused.every((f) => f !== undefined) ? fused[0]!.filter((op) => fused.every((f) => f!.includes(op))) : undefined;
  const noise = sections.map((s) => s.stepNoise);
  const stepNoise = noise.every((n) => n !== undefined) ? noise.flatMap((n) => n!).sort((a, b) => a - b) : undefined;
  const modulePassOverhead = medianOf(sections.map((s) => s.modulePassOverhead));
  const p2pWake = medianOf(sections.map((s) => s.p2pWake));
  return {
    kind: 'cpu',
    ...(modulePassOverhead !== undefined ? { modulePassOverhead } : {}),
    ...(allBusy ? { allBusy } : {}),
    ...(fusedIntoForward ? { fusedIntoForward } : {}),
    ...(stepNoise ? { stepNoise } : {}),
    ...(p2pWake !== undefined ? { p2pWake } : {}),
  };
}

/** The merged backend section of the hosts' profiles. */
export function mergeBackendSections(sections: readonly (BackendProfile | undefined)[]): MergedBackend {
  const present = sections.filter((s): s is BackendProfile => s !== undefined);
  if (present.length === 0) return {};
  if (present.length < sections.length) {
    return { unmeasured: `${sections.length - present.length} of ${sections.length} hosts have no backend section; it is left out` };
  }
  const kinds = [...new Set(present.map((s) => s.kind))];
  if (kinds.length > 1) throw new Error(`mergeProfiles: hosts measured different executor backends (${kinds.join(', ')})`);
  return { backend: mergeCpu(present as CpuBackendProfile[]) };
}
