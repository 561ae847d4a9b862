// listenCpu(): a rank binds its TCP listener first and learns its own address, which a
// coordinator gathers into the peers list that every rank then passes to createCommunicator().
import * as os from 'node:os';
import { collectivesAddon, type NativeListener } from './native-addon';
import type { CpuListener, ListenCpuOptions } from './types';

const natives = new WeakMap<CpuListener, NativeListener>();

function isWildcard(host: string): boolean {
  return host === '' || host === '0.0.0.0' || host === '::' || host === '[::]';
}

function firstExternalIPv4(): string | undefined {
  for (const addresses of Object.values(os.networkInterfaces())) {
    for (const a of addresses ?? []) {
      if (a.family === 'IPv4' && !a.internal) return a.address;
    }
  }
  return undefined;
}

export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Splits "host:port" or "[v6]:port". */
export function parseAddress(address: string): { host: string; port: number } {
  const m = /^\[(.+)\]:(\d+)$/.exec(address) ?? /^([^:]+):(\d+)$/.exec(address);
  if (!m) throw new Error(`malformed address '${address}' (expected host:port)`);
  return { host: m[1], port: Number(m[2]) };
}

export async function listenCpu(options: ListenCpuOptions = {}): Promise<CpuListener> {
  const host = options.host ?? '127.0.0.1';
  const { listener, port } = collectivesAddon().cpuListen(host, options.port ?? 0);
  const advertised = options.advertiseHost ?? (isWildcard(host) ? (firstExternalIPv4() ?? os.hostname()) : host);
  const result: CpuListener = {
    address: formatAddress(advertised, port),
    host,
    port,
    close: () => collectivesAddon().cpuListenerClose(listener),
  };
  natives.set(result, listener);
  return result;
}

/** The addon's listener behind a listenCpu() result (internal to @mist/native). */
export function nativeListener(listener: CpuListener): NativeListener {
  const native = natives.get(listener);
  if (!native) throw new TypeError('createCommunicator: listener must come from listenCpu()');
  return native;
}
