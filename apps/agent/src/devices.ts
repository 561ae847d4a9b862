// The devices an agent offers: N CPU "devices" (`--cpu-devices N`), or the host's CUDA GPUs as the
// driver reports them through @mist/native (nvidia-smi when the addon cannot ask the driver),
// optionally only some ordinals (`--devices 0,1`).
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import type { BackendStatus, Device } from '@mist/rpc';

/** N CPU devices sharing the host: each gets an equal share of the host memory. */
export function cpuDevices(count: number): Device[] {
  if (!Number.isInteger(count) || count < 1) throw new Error(`cpu devices: got ${count}; expected a positive integer`);
  const name = os.cpus()[0]?.model?.trim() || 'cpu';
  const share = Math.floor(os.totalmem() / count);
  return Array.from({ length: count }, (_, index) => ({ index, kind: 'DEVICE_KIND_CPU', name, gpu: '', memoryBytes: share }));
}

// nvidia-smi product names -> @mist/core GPU catalog names.
const GPU_NAMES: Array<[RegExp, string]> = [
  [/\bB200\b/i, 'b200'],
  [/\bH200\b/i, 'h200'],
  [/\bH800\b/i, 'h800'],
  [/\bH100\b.*PCIe/i, 'h100-pcie'],
  [/\bH100\b/i, 'h100-sxm'],
  [/\bA100\b.*80\s*GB.*PCIe/i, 'a100-80gb-pcie'],
  [/\bA100\b.*PCIe.*80\s*GB/i, 'a100-80gb-pcie'],
  [/\bA100\b.*80\s*GB/i, 'a100-80gb'],
  [/\bA100\b.*PCIe/i, 'a100-40gb-pcie'],
  [/\bA100\b/i, 'a100-40gb'],
  [/\bV100\b.*32\s*GB/i, 'v100-32gb'],
  [/\bV100\b.*16\s*GB/i, 'v100-16gb'],
  [/\bA10G\b/i, 'a10g'],
  [/\bL4\b/i, 'l4'],
];

/** The catalog name of a GPU from its product name, or '' when the catalog has no such GPU. */
export function gpuCatalogName(productName: string): string {
  return GPU_NAMES.find(([re]) => re.test(productName))?.[1] ?? '';
}

/** Parses `nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader,nounits` (memory in MiB). */
export function parseNvidiaSmi(text: string): Device[] {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).map((line) => {
    const [index, name, mib] = line.split(',').map((s) => s.trim());
    const i = Number(index);
    const memory = Number(mib);
    if (!Number.isInteger(i) || !Number.isFinite(memory)) throw new Error(`unexpected nvidia-smi line "${line}"`);
    return { index: i, kind: 'DEVICE_KIND_CUDA', name, gpu: gpuCatalogName(name), memoryBytes: memory * 1024 * 1024 };
  });
}

/** A GPU as the CUDA driver reports it (@mist/native's cudaProbe().devices). */
export interface DriverGpu {
  ordinal: number;
  name: string;
  memoryBytes: number;
}

/** Devices from the driver's list: ordinal, product name (mapped to the catalog) and memory. */
export function devicesFromDriver(gpus: readonly DriverGpu[]): Device[] {
  return gpus.map((g) => ({ index: g.ordinal, kind: 'DEVICE_KIND_CUDA', name: g.name, gpu: gpuCatalogName(g.name), memoryBytes: g.memoryBytes }));
}

/** The driver's GPUs through @mist/native, or undefined when the addon or the driver is unusable here. */
function driverGpus(): DriverGpu[] | undefined {
  try {
    // Loaded only when GPUs are asked for: a CPU-only agent does not need the addon.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const native = require('@mist/native') as { cudaProbe(): { driverAvailable: boolean; devices: DriverGpu[] } };
    const probe = native.cudaProbe();
    return probe.driverAvailable ? probe.devices : undefined;
  } catch {
    return undefined;
  }
}

function nvidiaSmiGpus(): Device[] {
  let out: string;
  try {
    out = execFileSync('nvidia-smi', ['--query-gpu=index,name,memory.total', '--format=csv,noheader,nounits'], {
      encoding: 'utf8', timeout: 15_000, stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch {
    return [];
  }
  return parseNvidiaSmi(out);
}

/**
 * The host's CUDA GPUs: from the driver (libcuda through @mist/native: the ordinals the workers will
 * use, CUDA_VISIBLE_DEVICES applied), else from nvidia-smi, else none.
 */
export function detectCudaDevices(fromDriver: () => DriverGpu[] | undefined = driverGpus, fromSmi: () => Device[] = nvidiaSmiGpus): Device[] {
  const gpus = fromDriver();
  if (gpus !== undefined && gpus.length > 0) return devicesFromDriver(gpus);
  return fromSmi();
}

/** The devices to offer: CPU devices when asked, else the chosen (or all) CUDA GPUs. */
export function chooseDevices(o: { cpuDevices?: number; devices?: number[] }, detect: () => Device[] = detectCudaDevices): Device[] {
  if (o.cpuDevices !== undefined) return cpuDevices(o.cpuDevices);
  const gpus = detect();
  if (gpus.length === 0) throw new Error('no CUDA GPU found (neither the CUDA driver nor nvidia-smi lists one): pass --cpu-devices N to offer CPU devices');
  if (!o.devices) return gpus;
  return o.devices.map((i) => {
    const d = gpus.find((g) => g.index === i);
    if (!d) throw new Error(`--devices: GPU ${i} does not exist; this host has ${gpus.map((g) => g.index).join(', ')}`);
    return d;
  });
}

/** The collective backends this host offers: the CPU/TCP backend always; NCCL when @mist/native opens it and there are GPUs. */
export function backendStatus(devices: Device[], probeNative: () => Array<{ name: string; available: boolean; reason?: string; version?: number }> = nativeBackends): BackendStatus[] {
  const out: BackendStatus[] = [{ backend: 'BACKEND_CPU', available: true, reason: 'TCP collectives of @mist/native' }];
  if (!devices.some((d) => d.kind === 'DEVICE_KIND_CUDA')) {
    out.push({ backend: 'BACKEND_NCCL', available: false, reason: 'no CUDA devices offered' });
    return out;
  }
  try {
    const nccl = probeNative().find((b) => b.name === 'nccl');
    out.push({
      backend: 'BACKEND_NCCL',
      available: Boolean(nccl?.available),
      reason: nccl?.available ? `NCCL ${nccl.version ?? ''}`.trim() : (nccl?.reason ?? 'the native addon does not offer NCCL'),
    });
  } catch (err) {
    out.push({ backend: 'BACKEND_NCCL', available: false, reason: `cannot load @mist/native: ${(err as Error).message}` });
  }
  return out;
}

function nativeBackends(): Array<{ name: string; available: boolean; reason?: string; version?: number }> {
  // Loaded only on GPU hosts: a CPU-only agent does not need the addon.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const native = require('@mist/native') as { backends(): Array<{ name: string; available: boolean; reason?: string; version?: number }> };
  return native.backends();
}
