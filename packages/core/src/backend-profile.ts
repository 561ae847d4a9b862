// The per-backend section of a hardware profile (HardwareProfile.backend): calibration terms that
// describe how one executor backend runs on the profiled machine, beside the kernels and links the
// rest of the profile describes. The analyzer applies them through one adapter (@mist/analyzer
// backend-terms.ts); a profile without a section describes a framework on GPUs, whose launches are
// asynchronous and overlap the device's work, with none of these terms.
//
// Profiles written before the section existed kept the CPU executor's terms at the top level and in
// `compute`; liftLegacyBackendKeys moves them into a `cpu` section so that those files still load.
import { z } from 'zod';
import type { BackendName } from './backend-capabilities';
import { SpecError, type SpecIssue } from './validation';

/** The CPU executor's terms, as `mist profile` measures them by running the executor on the host. */
export const CpuBackendProfileSchema = z.strictObject({
  kind: z.literal('cpu' satisfies BackendName),
  /**
   * Host time per module pass (one layer's forward or backward, a recompute, the embedding, the
   * head, the optimizer step) that the executor spends besides its kernels and their launches:
   * handing the pass to the kernel thread and back, its JavaScript, garbage collection. Seconds;
   * absent: 0.
   */
  modulePassOverhead: z.number().nonnegative().optional(),
  /**
   * The same figures with every device of the host computing at once, those of the slowest
   * device (ranks that synchronize wait for it), measured by running the executor probe on all
   * of them in data parallel: kernels run `kernelSlowdown` times slower, and a module pass costs
   * `modulePassOverhead` (shared caches and memory, thread wake-ups on busy cores, cores that
   * also take the host's interrupts), or `pipelineModulePassOverhead` in a stage of a pipeline
   * (measured with one stage per device; absent: as in data parallel). The analyzer interpolates
   * between one device and all of them by the devices a plan keeps busy on a node. Absent: no
   * slowdown.
   */
  allBusy: z.strictObject({
    kernelSlowdown: z.number().min(1),
    modulePassOverhead: z.number().nonnegative(),
    pipelineModulePassOverhead: z.number().nonnegative().optional(),
  }).optional(),
  /**
   * Element-wise ops (opTable names) whose backward the backend computes inside the forward kernel,
   * so that their backward costs nothing (the CPU cross-entropy kernel writes the logits' gradient
   * while it computes the loss).
   */
  fusedIntoForward: z.array(z.string()).optional(),
  /**
   * Step-to-step noise of a device that the other devices of a job do not share, seconds: per
   * measured step of ranks in data parallel, a rank's step time less the mean of all ranks' in that
   * step, less its median (garbage collection, preemption; what slows every rank at once makes no
   * straggler). A step of several ranks waits for the slowest, so its median meets a higher
   * quantile of this noise (the analyzer's stepJitter). Measured on hosts of several devices.
   */
  stepNoise: z.array(z.number()).optional(),
  /**
   * Extra seconds a pipeline message takes when its receiver has been waiting for it (asleep in
   * recv; on a virtual machine its CPU halted), beyond the send/recv fit, plus how much slower the
   * receiver's first compute after it runs than back to back. The analyzer adds it to every
   * pipeline send/recv. Absent: 0.
   */
  p2pWake: z.number().nonnegative().optional(),
});
export type CpuBackendProfile = z.output<typeof CpuBackendProfileSchema>;

/** One section per backend kind; a GPU backend adds its own schema here. */
const SECTIONS = [CpuBackendProfileSchema] as const;
/** The `kind`s a backend section may have. */
export const BACKEND_PROFILE_KINDS: readonly string[] = SECTIONS.map((s) => s.shape.kind.value);
export const BackendProfileSchema = z.discriminatedUnion('kind', SECTIONS, {
  error: (issue) => issue.code === 'invalid_union' ? `allowed: ${BACKEND_PROFILE_KINDS.map((k) => JSON.stringify(k)).join(', ')}` : undefined,
});
export type BackendProfile = z.output<typeof BackendProfileSchema>;

/**
 * Where profiles written before the section kept the CPU executor's terms: the dotted path in the
 * old profile and the key in the `cpu` section.
 */
export const LEGACY_BACKEND_KEYS = [
  { field: 'compute.modulePassOverhead', key: 'modulePassOverhead' },
  { field: 'compute.allBusy', key: 'allBusy' },
  { field: 'fusedIntoForward', key: 'fusedIntoForward' },
  { field: 'stepNoise', key: 'stepNoise' },
  { field: 'p2pWake', key: 'p2pWake' },
] as const satisfies ReadonlyArray<{ field: string; key: keyof CpuBackendProfile }>;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A profile document with the CPU executor's terms moved from their old places (LEGACY_BACKEND_KEYS)
 * into `backend` (kind `cpu`), merged with a section the document already has. The document is not
 * modified; one without old keys is returned as it is. Throws a SpecError when a term is given at
 * both places, or at its old place beside a section of another kind.
 */
export function liftLegacyBackendKeys(data: unknown): unknown {
  if (!isRecord(data)) return data;
  const compute = isRecord(data.compute) ? { ...data.compute } : data.compute;
  const top: Record<string, unknown> = { ...data, compute };
  const lifted: Record<string, unknown> = {};
  for (const { field, key } of LEGACY_BACKEND_KEYS) {
    const holder = field.startsWith('compute.') ? compute : top;
    if (!isRecord(holder) || holder[key] === undefined) continue;
    lifted[key] = holder[key];
    delete holder[key];
  }
  if (Object.keys(lifted).length === 0) return data;
  const section = data.backend === undefined ? { kind: 'cpu' } : data.backend;
  const issues: SpecIssue[] = [];
  if (!isRecord(section) || section.kind !== 'cpu') {
    issues.push({
      field: 'backend.kind', value: isRecord(section) ? section.kind : section,
      message: `the profile also has ${Object.keys(lifted).join(', ')} at their places before the backend section, ` +
        'terms of the cpu backend; allowed: "cpu", or no backend section',
    });
  } else {
    for (const { field, key } of LEGACY_BACKEND_KEYS) {
      if (lifted[key] !== undefined && section[key] !== undefined) {
        issues.push({ field, value: lifted[key], message: `is also given as backend.${key}; give it once, in backend.${key}` });
      }
    }
  }
  if (issues.length > 0) throw new SpecError('hardware profile', issues);
  return { ...top, backend: { ...(section as Record<string, unknown>), ...lifted } };
}
