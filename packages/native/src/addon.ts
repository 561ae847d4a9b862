// Loads the compiled addon once (node-gyp output, found by `bindings`).
import bindings from 'bindings';

/** What the compiled addon exports; each part of the addon adds its own functions here. */
export interface NativeAddon {
  version(): string;
}

let cached: NativeAddon | undefined;

export function loadAddon(): NativeAddon {
  if (!cached) {
    cached = bindings({ bindings: 'mist_native', module_root: `${__dirname}/..` }) as NativeAddon;
  }
  return cached;
}
