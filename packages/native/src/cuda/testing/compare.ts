// llm.c-style checking of the CUDA ops against the CPU kernels: record a sequence of KernelOps calls
// once, run it on the CPU kernels and on the CUDA ops from the same inputs (rounded to the storage
// dtype for both), and compare every buffer afterwards. Used by the *.cuda.test.ts files and by the
// device script (tools/device/cuda-checks.js), which reports the errors per op.
import { appendFileSync } from 'node:fs';
import { describe } from 'vitest';

import { loadAddon } from '../../addon';
import type { KernelAddon, KernelBuffer } from '../../kernels/addon-kernels';
import { KernelOps } from '../../kernels/ops';
import type { CudaProbe } from '../addon-cuda';
import { CudaTensor, cudaOps, cudaProbe, cudaRun, cudaSynchronize, roundToDType } from '../tensor';

export { CudaTensor, roundToDType };

export type StorageDType = 'f32' | 'bf16' | 'f16';

let probe: CudaProbe | undefined;
/** The CUDA backend's state here, probed once. */
export function cudaStatus(): CudaProbe {
  probe ??= cudaProbe();
  return probe;
}

/** describe() when the CUDA backend is available, otherwise a skipped describe naming the reason. */
export function describeCuda(title: string, body: () => void): void {
  const status = cudaStatus();
  if (status.available) describe(title, body);
  else describe.skip(`${title} (skipped: ${status.reason ?? 'CUDA unavailable'})`, body);
}

interface RecordedCall {
  op: string;
  buffers: KernelBuffer[];
  ints: number[];
  floats: number[];
}

class RecordingOps extends KernelOps {
  readonly calls: RecordedCall[] = [];
  protected emit(op: string, buffers: KernelBuffer[], ints: number[], floats: number[]): void {
    this.calls.push({ op, buffers, ints, floats });
  }
}

export interface CompareOptions {
  dtype: StorageDType;
  /** A value passes when |cuda - cpu| <= atol + rtol * |cpu|. */
  atol: number;
  rtol: number;
}

export interface BufferError {
  /** `op[slot]` of the buffer's first use. */
  buffer: string;
  maxAbs: number;
  /** Largest |cuda - cpu| / max(|cpu|, atol). */
  maxRel: number;
  /** Values outside the tolerance. */
  failures: number;
  count: number;
}

export interface CompareReport {
  ok: boolean;
  ops: string[];
  dtype: StorageDType;
  buffers: BufferError[];
  maxAbs: number;
  maxRel: number;
  /** One line per buffer, for an assertion message. */
  summary: string;
}

type SlotClass = 'x' | 'f' | 'i' | 'm';

function slotClass(signature: string, slot: number, op: string): SlotClass {
  const c = signature[slot];
  if (c === undefined) throw new Error(`${op}: buffer ${slot} is beyond the CUDA op's signature '${signature}'`);
  const lower = c.toLowerCase();
  if (lower === 'x' || lower === 'f' || lower === 'i' || lower === 'm') return lower;
  throw new Error(`${op}: slot ${slot} has signature '${c}', which compareWithCpu cannot fill (use CudaTensor directly)`);
}

/**
 * Runs the KernelOps calls made by `record` on the CPU kernels and on the CUDA ops and compares every
 * buffer they touched. The caller's arrays are never modified.
 */
export function compareWithCpu(record: (ops: KernelOps) => void, options: CompareOptions): CompareReport {
  const recorder = new RecordingOps();
  record(recorder);
  const signatures = new Map(cudaOps().map((o) => [o.name, o.signature]));
  const kernelAddon = loadAddon<KernelAddon>();
  const cpuIds = new Map(kernelAddon.kernelOpNames().map((name, id) => [name, id]));

  const cpuCopies = new Map<Float32Array | Int32Array, Float32Array | Int32Array>();
  const deviceCopies = new Map<Float32Array | Int32Array, CudaTensor>();
  const labels = new Map<Float32Array | Int32Array, string>();
  const classes = new Map<Float32Array | Int32Array, SlotClass>();
  try {
    for (const call of recorder.calls) {
      const signature = signatures.get(call.op);
      if (signature === undefined) throw new Error(`${call.op} has no CUDA op (CUDA ops: ${[...signatures.keys()].join(', ')})`);
      const cpuId = cpuIds.get(call.op);
      if (cpuId === undefined) throw new Error(`${call.op} has no CPU kernel to compare with`);
      const cpuBuffers: KernelBuffer[] = [];
      const deviceBuffers: Array<CudaTensor | null> = [];
      call.buffers.forEach((buffer, slot) => {
        if (buffer === null) {
          cpuBuffers.push(null);
          deviceBuffers.push(null);
          return;
        }
        const cls = slotClass(signature, slot, call.op);
        const known = classes.get(buffer);
        if (known !== undefined && known !== cls) throw new Error(`${call.op}[${slot}]: a buffer used as '${known}' is now used as '${cls}'`);
        if (!cpuCopies.has(buffer)) {
          classes.set(buffer, cls);
          labels.set(buffer, `${call.op}[${slot}]`);
          if (buffer instanceof Int32Array) {
            cpuCopies.set(buffer, buffer.slice());
            deviceCopies.set(buffer, CudaTensor.from(buffer, 'i32'));
          } else if (cls === 'm') {
            // Raw mask words: copied bit for bit (an upload of f32 is a plain byte copy).
            cpuCopies.set(buffer, buffer.slice());
            deviceCopies.set(buffer, CudaTensor.from(buffer, 'f32'));
          } else {
            const dtype = cls === 'x' ? options.dtype : 'f32';
            const rounded = roundToDType(buffer, dtype);
            cpuCopies.set(buffer, rounded);
            deviceCopies.set(buffer, CudaTensor.from(rounded, dtype));
          }
        }
        cpuBuffers.push(cpuCopies.get(buffer) ?? null);
        deviceBuffers.push(deviceCopies.get(buffer) ?? null);
      });
      kernelAddon.kernelRun(cpuId, cpuBuffers, call.ints, call.floats);
      cudaRun(call.op, deviceBuffers, call.ints, call.floats);
    }
    cudaSynchronize();
    const buffers: BufferError[] = [];
    for (const [original, cpu] of cpuCopies) {
      const device = deviceCopies.get(original);
      if (device === undefined) continue;
      const label = labels.get(original) ?? '?';
      const downloaded = device.download();
      buffers.push(classes.get(original) === 'm' ? maskError(label, cpu, downloaded) : bufferError(label, cpu, downloaded, options));
    }
    const maxAbs = Math.max(0, ...buffers.map((b) => b.maxAbs));
    const maxRel = Math.max(0, ...buffers.map((b) => b.maxRel));
    const ok = buffers.every((b) => b.failures === 0);
    const summary = buffers
      .map((b) => `${b.buffer}: max abs ${b.maxAbs.toExponential(2)}, max rel ${b.maxRel.toExponential(2)}, ${b.failures}/${b.count} outside tolerance`)
      .join('\n');
    const report: CompareReport = { ok, ops: recorder.calls.map((c) => c.op), dtype: options.dtype, buffers, maxAbs, maxRel, summary };
    recordForDeviceReport(report, options);
    return report;
  } finally {
    for (const t of deviceCopies.values()) t.free();
  }
}

// Dropout masks are bytes packed 4 per float: compared word for word, bit for bit.
function maskError(label: string, cpu: Float32Array | Int32Array, cuda: Float32Array | Int32Array): BufferError {
  const a = new Uint32Array(cpu.buffer, cpu.byteOffset, cpu.length);
  const b = new Uint32Array(cuda.buffer, cuda.byteOffset, cuda.length);
  let failures = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) failures += 1;
  return { buffer: label, maxAbs: failures > 0 ? Infinity : 0, maxRel: failures > 0 ? Infinity : 0, failures, count: a.length };
}

function bufferError(label: string, cpu: Float32Array | Int32Array, cuda: Float32Array | Int32Array, o: CompareOptions): BufferError {
  let maxAbs = 0;
  let maxRel = 0;
  let failures = 0;
  for (let i = 0; i < cpu.length; i++) {
    const want = cpu[i];
    const got = cuda[i];
    const diff = want === got ? 0 : Math.abs(got - want); // equal infinities (an lse of -inf) match
    const bad = !(diff <= o.atol + o.rtol * Math.abs(want)) && !(Number.isNaN(want) && Number.isNaN(got));
    if (bad) failures += 1;
    if (Number.isFinite(diff)) {
      maxAbs = Math.max(maxAbs, diff);
      maxRel = Math.max(maxRel, diff / Math.max(Math.abs(want), o.atol));
    } else if (bad) {
      maxAbs = Infinity;
      maxRel = Infinity;
    }
  }
  return { buffer: label, maxAbs, maxRel, failures, count: cpu.length };
}

// The device script sets MIST_CUDA_REPORT to a file; every comparison made by the test files is
// appended to it as one JSON line (ops, dtype, tolerance, errors), which the script folds into its report.
function recordForDeviceReport(report: CompareReport, options: CompareOptions): void {
  const file = process.env.MIST_CUDA_REPORT;
  if (!file) return;
  const line = {
    ops: report.ops,
    dtype: report.dtype,
    atol: options.atol,
    rtol: options.rtol,
    ok: report.ok,
    maxAbs: report.maxAbs,
    maxRel: report.maxRel,
    buffers: report.buffers,
  };
  appendFileSync(file, JSON.stringify(line) + '\n');
}
