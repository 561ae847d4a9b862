// Loads the compiled addon once (node-gyp output, found by `bindings`). Each part of the addon
// (collectives, kernels) declares the interface of the functions it adds and asks for it here.
import bindings from 'bindings';

let cached: object | undefined;

export function loadAddon<T extends object = { version(): string }>(): T {
  if (!cached) {
    cached = bindings({ bindings: 'mist_native', module_root: `${__dirname}/..` }) as object;
  }
  return cached as T;
}
