// Loads the compiled addon once (node-gyp output, found by `bindings`). Each part of the addon
// (collectives, kernels, cuda) declares the interface of the functions it adds and asks for it here.
//
// On x86-64 two builds of the same sources exist (arch-flags.js): mist_native (x86-64-v3, runs on
// any AVX2 host) and mist_native_v4 (AVX-512), which is loaded where the CPU has AVX-512 and the
// build exists. MIST_NATIVE_VARIANT=mist_native or =mist_native_v4 forces one.
import bindings from 'bindings';
import * as fs from 'node:fs';
import * as path from 'node:path';

let cached: object | undefined;
let loadedVariant: string | undefined;

const VARIANTS = ['mist_native', 'mist_native_v4'] as const;

/** AVX-512 F/BW/DQ/VL as the Linux kernel reports them (it hides features the OS does not enable). */
function cpuHasAvx512(): boolean {
  if (process.arch !== 'x64') return false;
  try {
    const flags = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1].split(/\s+/) ?? [];
    return ['avx512f', 'avx512bw', 'avx512dq', 'avx512vl'].every((f) => flags.includes(f));
  } catch {
    return false;
  }
}

/** The addon build this process loads (or would load): see the header comment. */
export function addonVariant(): string {
  if (loadedVariant !== undefined) return loadedVariant;
  const forced = process.env.MIST_NATIVE_VARIANT;
  if (forced !== undefined && forced !== '') {
    if (!(VARIANTS as readonly string[]).includes(forced)) {
      throw new RangeError(`MIST_NATIVE_VARIANT must be one of ${VARIANTS.join(', ')}, got '${forced}'`);
    }
    return forced;
  }
  const v4 = path.join(__dirname, '..', 'build', 'Release', 'mist_native_v4.node');
  return cpuHasAvx512() && fs.existsSync(v4) ? 'mist_native_v4' : 'mist_native';
}

export function loadAddon<T extends object = { version(): string }>(): T {
  if (!cached) {
    const variant = addonVariant();
    cached = bindings({ bindings: variant, module_root: `${__dirname}/..` }) as object;
    loadedVariant = variant;
  }
  return cached as T;
}
