// @mist/native: the C++ addon's typed face.
import { loadAddon } from './addon';

export { addonVariant } from './addon';

/** Version string compiled into the native addon. */
export function version(): string {
  return loadAddon<{ version(): string }>().version();
}
export * from './collectives';
export * from './kernels';
export * from './cuda';
export { deviceCores, pinProcessToCores } from './affinity';
