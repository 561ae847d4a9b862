// Bounds on what a client may send: lengths of names, ids and documents (a 3 MB job name or a
// 100,000-character job id must not end up in every listing or in a gRPC status header), and the
// ranges of the run options the CLI also enforces (integers up to 2^53-1, finite numbers, paths
// without NUL bytes or kernel pseudo-file systems).
import { SpecError, type SpecIssue } from '@mist/core';
import { status } from '@mist/rpc';

/** An error that ends the call with a gRPC status (the service layer maps it). */
export class RequestError extends Error {
  constructor(readonly code: status, message: string) {
    super(message);
    this.name = 'RequestError';
  }
}

export const LIMITS = {
  jobIdChars: 64,
  nameChars: 200,
  agentNameChars: 253, // a DNS host name's maximum length (RFC 1035 section 2.3.4)
  agentsCount: 1024,
  reasonChars: 1000,
  pathChars: 4096, // PATH_MAX on Linux (linux/limits.h)
  trainingJsonBytes: 64 * 1024,
  documentBytes: 2 * 1024 * 1024,
} as const;

/** The largest integer a JavaScript number holds exactly; the CLI's job file caps there too. */
const MAX_INTEGER = Number.MAX_SAFE_INTEGER;

const ID_PATTERN = /^[A-Za-z0-9._-]+$/;

/** Shortens text for an error message (never echo a huge value back). */
export function clip(text: string, max = 40): string {
  return text.length > max ? `${text.slice(0, max - 3)}... (${text.length} characters)` : text;
}

/** Throws INVALID_ARGUMENT unless `id` looks like a job id (bounded, no odd characters). */
export function checkJobId(id: string, field = 'job_id'): void {
  if (!id) throw new RequestError(status.INVALID_ARGUMENT, `${field} is required`);
  if (id.length > LIMITS.jobIdChars || !ID_PATTERN.test(id)) {
    throw new RequestError(status.INVALID_ARGUMENT,
      `${field}: "${clip(id)}" is not a job id (at most ${LIMITS.jobIdChars} characters of A-Z a-z 0-9 . _ -)`);
  }
}

export function checkReason(reason: string): void {
  if (reason.length > LIMITS.reasonChars) {
    throw new RequestError(status.INVALID_ARGUMENT, `reason: ${reason.length} characters; at most ${LIMITS.reasonChars}`);
  }
}

function checkLength(issues: SpecIssue[], field: string, text: string | undefined | null, max: number, unit = 'characters'): void {
  const n = unit === 'bytes' ? Buffer.byteLength(text ?? '') : (text ?? '').length;
  if (n > max) issues.push({ field, value: clip(text ?? ''), message: `is ${n} ${unit} long; at most ${max}` });
}

/** Kernel pseudo-file systems: no checkpoint or data belongs there. */
const FORBIDDEN_ROOTS = ['/proc', '/sys', '/dev'];

/** A path a job names on the agents' hosts: bounded, no NUL or control characters, not under /proc, /sys or /dev. */
export function checkHostPath(issues: SpecIssue[], field: string, p: string): void {
  if (!p) return;
  checkLength(issues, field, p, LIMITS.pathChars);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(p)) {
    issues.push({ field, value: clip(JSON.stringify(p)), message: 'must not contain NUL or control characters' });
    return;
  }
  const normal = p.startsWith('/') ? `/${p.split('/').filter((s) => s && s !== '.').join('/')}` : p;
  if (FORBIDDEN_ROOTS.some((r) => normal === r || normal.startsWith(`${r}/`))) {
    issues.push({ field, value: p, message: `must not be under ${FORBIDDEN_ROOTS.join(', ')} (kernel pseudo-file systems)` });
  }
}

/** Integers the workers read as JavaScript numbers: at most 2^53-1. */
export function checkInteger(issues: SpecIssue[], field: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min || v > MAX_INTEGER) {
    issues.push({ field, value: v, message: `must be an integer in [${min}, ${MAX_INTEGER}] (2^53-1)` });
  }
}

export interface SizedSpec {
  name?: string;
  agents?: string[];
  trainingJson?: string;
  planJson?: string;
  profileJson?: string;
  model?: { name?: string; specJson?: string } | null;
  cluster?: { shorthand?: string; specJson?: string } | null;
}

/** Length limits of a submitted JobSpec, checked before anything is parsed; throws a SpecError naming the field. */
export function checkSpecSizes(spec: SizedSpec): void {
  const issues: SpecIssue[] = [];
  checkLength(issues, 'name', spec.name, LIMITS.nameChars);
  const agents = spec.agents ?? [];
  if (agents.length > LIMITS.agentsCount) issues.push({ field: 'agents', value: agents.length, message: `at most ${LIMITS.agentsCount} entries` });
  else agents.forEach((a, i) => checkLength(issues, `agents[${i}]`, a, LIMITS.agentNameChars));
  checkLength(issues, 'training', spec.trainingJson, LIMITS.trainingJsonBytes, 'bytes');
  checkLength(issues, 'plan', spec.planJson, LIMITS.documentBytes, 'bytes');
  checkLength(issues, 'profile', spec.profileJson, LIMITS.documentBytes, 'bytes');
  checkLength(issues, 'model', spec.model?.specJson, LIMITS.documentBytes, 'bytes');
  checkLength(issues, 'model', spec.model?.name, LIMITS.nameChars);
  checkLength(issues, 'cluster', spec.cluster?.specJson, LIMITS.documentBytes, 'bytes');
  checkLength(issues, 'cluster', spec.cluster?.shorthand, LIMITS.nameChars);
  if (issues.length > 0) throw new SpecError('job', issues);
}
