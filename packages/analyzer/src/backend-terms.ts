// The one place the analyzer reads a hardware profile's backend section (HardwareProfile.backend,
// @mist/core backend-profile.ts): the numbers the stage model and the plan estimate add for the
// executor backend the profile was measured with. Without a section (a framework on GPUs, the
// datasheet profiles) every term is neutral: no host cost per pass, no slowdown, nothing fused,
// no noise, no wake-up. A backend with other terms adds its case to backendTerms.
import type { HardwareProfile } from '@mist/core';

/** Slowdowns with every device of a node computing at once (the slowest device's figures). */
export interface AllBusyTerms {
  /** Kernels run this many times slower (>= 1). */
  kernelSlowdown: number;
  /** Host seconds per module pass in data parallel. */
  modulePassOverhead: number;
  /** Host seconds per module pass in a stage of a pipeline; undefined: the data-parallel figure. */
  pipelineModulePassOverhead: number | undefined;
}

export interface BackendTerms {
  /** Host seconds per module pass besides kernels and launches, one device busy. */
  modulePassOverhead: number;
  /** null: no slowdown when more of a node's devices are busy. */
  allBusy: AllBusyTerms | null;
  /** Element-wise ops (opTable names) whose backward costs nothing: computed inside the forward kernel. */
  fusedIntoForward: ReadonlySet<string>;
  /** One rank's step-to-step noise the other ranks do not share, seconds (empty: none). */
  stepNoise: readonly number[];
  /** Extra seconds per pipeline send/recv for the wake-up of its waiting receiver. */
  p2pWake: number;
}

const NEUTRAL: BackendTerms = {
  modulePassOverhead: 0, allBusy: null, fusedIntoForward: new Set(), stepNoise: [], p2pWake: 0,
};

/** The backend terms of `profile`, neutral without a backend section. */
export function backendTerms(profile: HardwareProfile): BackendTerms {
  const b = profile.backend;
  if (b === undefined) return NEUTRAL;
  switch (b.kind) {
    case 'cpu':
      return {
        modulePassOverhead: b.modulePassOverhead ?? 0,
        allBusy: b.allBusy
          ? { kernelSlowdown: b.allBusy.kernelSlowdown, modulePassOverhead: b.allBusy.modulePassOverhead, pipelineModulePassOverhead: b.allBusy.pipelineModulePassOverhead }
          : null,
        fusedIntoForward: new Set(b.fusedIntoForward ?? []),
        stepNoise: b.stepNoise ?? [],
        p2pWake: b.p2pWake ?? 0,
      };
    default: {
      const unknown: never = b.kind;
      throw new Error(`hardware profile backend.kind: got ${JSON.stringify(unknown)}; allowed: cpu`);
    }
  }
}
