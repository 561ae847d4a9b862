// The measured GPU profiles a machine keeps (`mist profile --device cuda --save`), one per GPU kind and
// compute dtype, in $MIST_PROFILE_DIR (default ~/.config/mist/profiles): where one exists, `mist
// analyze`, `tune` and `fit` use it for clusters of that GPU instead of the calibrated datasheet
// profile (core's builtinHardwareProfile), carried to the cluster's shape (core's profileOnCluster).
// A CPU profile describes one host (its cores as devices) and is passed with --profile instead.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type HardwareProfile, loadHardwareProfile, SpecError, writeFileAtomic } from '@mist/core';

/** The compute dtypes a stored profile is measured in. */
export type StoredDtype = 'fp16' | 'bf16' | 'fp32';

export function profileStoreDir(): string {
  return process.env.MIST_PROFILE_DIR ?? path.join(os.homedir(), '.config', 'mist', 'profiles');
}

function fileFor(dir: string, gpu: string, dtype: StoredDtype): string {
  return path.join(dir, `${gpu}.${dtype}.json`);
}

/** The dtype a measured GPU profile was measured in (its host.dtype), or null. */
function measuredDtype(p: HardwareProfile): StoredDtype | null {
  const d = p.host?.dtype;
  return d === 'fp16' || d === 'bf16' || d === 'fp32' ? d : null;
}

/**
 * Keeps a measured GPU profile as the one of its GPU and dtype (replacing an earlier one); returns its
 * file. Refuses a datasheet profile, a CPU profile and a profile that does not say its dtype.
 */
export function saveMeasuredProfile(p: HardwareProfile, dir = profileStoreDir()): string {
  const gpu = p.cluster.gpu.name;
  const dtype = measuredDtype(p);
  const why = p.source !== 'measured' ? `its source is ${p.source}, not a measurement`
    : gpu.startsWith('cpu') ? 'it is a CPU profile (pass it with --profile)'
      : dtype === null ? 'it does not say the dtype it was measured in (host.dtype)' : null;
  if (why !== null) throw new SpecError('hardware profile', [{ field: 'source', value: p.source, message: `cannot be kept as a GPU's measured profile: ${why}` }]);
  const file = fileFor(dir, gpu, dtype as StoredDtype);
  writeFileAtomic(file, JSON.stringify(p, null, 2) + '\n');
  return file;
}

/**
 * The kept profile of a GPU for a compute dtype, or null: the one measured in that dtype, else for a
 * 16-bit dtype the one measured in the other (fp16 and bf16 run at the same tensor-core rate).
 */
export function storedProfile(gpu: string, dtype: StoredDtype, dir = profileStoreDir()): { file: string; profile: HardwareProfile } | null {
  const order: StoredDtype[] = dtype === 'fp32' ? ['fp32'] : [dtype, dtype === 'fp16' ? 'bf16' : 'fp16'];
  for (const d of order) {
    const file = fileFor(dir, gpu, d);
    if (!fs.existsSync(file)) continue;
    try {
      return { file, profile: loadHardwareProfile(file) };
    } catch (e) {
      // Name the file: the user did not pass it.
      const where = `kept hardware profile ${file} (remove it, or pass --datasheet)`;
      if (e instanceof SpecError) throw new SpecError(where, e.issues);
      throw new SpecError(where, [{ field: 'file', value: file, message: (e as Error).message }]);
    }
  }
  return null;
}
