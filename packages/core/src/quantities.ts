// Reading sizes, bandwidths and durations written with their units, as people write them on the
// command line and in cluster files: `1TiB`, `768GB`, `400Gbps`, `8x200Gbps`, `25GB/s`, `20us`.
// Decimal prefixes are powers of 1000 and binary ones (KiB, MiB, ...) of 1024 (IEC 80000-13); a
// lower-case `b` after a prefix is bits (`Gb/s`, `Gbps`), an upper-case `B` bytes.
import { SpecError } from './validation';

const DECIMAL: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12, p: 1e15 };
const BINARY: Record<string, number> = { ki: 2 ** 10, mi: 2 ** 20, gi: 2 ** 30, ti: 2 ** 40, pi: 2 ** 50 };

function prefixFactor(prefix: string): number | undefined {
  const p = prefix.toLowerCase();
  return BINARY[p] ?? DECIMAL[p];
}

/** `N x VALUE` (e.g. `8x200Gbps`, eight links of 200 Gb/s): returns the count and the rest. */
function splitCount(text: string): { count: number; rest: string } {
  const m = /^(\d+)\s*[x*]\s*(.+)$/i.exec(text);
  return m ? { count: Number(m[1]), rest: m[2] } : { count: 1, rest: text };
}

function bad(field: string, value: string, allowed: string): SpecError {
  return new SpecError(field, [{ field, value, message: allowed }]);
}

const BYTES_HELP = 'expected a size such as 1TiB, 512GiB, 768GB or a number of bytes';

/** A size in bytes: `1TiB`, `512 GiB`, `768GB`, `1.5T` (decimal), or a plain number of bytes. */
export function parseBytes(text: string, field = 'size'): number {
  const m = /^(\d+(?:\.\d+)?(?:e\d+)?)\s*(|[kKmMgGtTpP]i?)(B?)$/.exec(text.trim());
  const factor = m ? prefixFactor(m[2]) : undefined;
  if (!m || factor === undefined || (m[2] === '' && m[3] === '' && !/^\d+(e\d+)?$/.test(m[1]))) {
    throw bad(field, text, BYTES_HELP);
  }
  const bytes = Number(m[1]) * factor;
  if (!(bytes > 0)) throw bad(field, text, `${BYTES_HELP}; must be > 0`);
  return bytes;
}

const BANDWIDTH_HELP = 'expected a bandwidth such as 400Gbps, 8x200Gbps, 100Gb/s, 25GB/s or 600GiB/s';

/** A bandwidth in bytes/s: bits (`400Gbps`, `100Gb/s`, `8x200Gbps`) or bytes (`25GB/s`, `600GiB/s`). */
export function parseBandwidth(text: string, field = 'bandwidth'): number {
  const { count, rest } = splitCount(text.trim());
  const m = /^(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]i?)?(bps|bit\/s|b\/s|B\/s|Bps)$/.exec(rest.trim());
  const factor = m ? prefixFactor(m[2] ?? '') : undefined;
  if (!m || factor === undefined || count <= 0) throw bad(field, text, BANDWIDTH_HELP);
  const perSecond = Number(m[1]) * factor * count;
  const bits = m[3] === 'bps' || m[3] === 'bit/s' || m[3] === 'b/s';
  const bytes = bits ? perSecond / 8 : perSecond;
  if (!(bytes > 0)) throw bad(field, text, `${BANDWIDTH_HELP}; must be > 0`);
  return bytes;
}

const DURATION_FACTOR: Record<string, number> = { s: 1, ms: 1e-3, us: 1e-6, 'µs': 1e-6, ns: 1e-9 };

/** A duration in seconds: `20us`, `5 µs`, `1.5ms`, `0.00002s`. */
export function parseDuration(text: string, field = 'duration'): number {
  const m = /^(\d+(?:\.\d+)?(?:e-?\d+)?)\s*(s|ms|us|µs|ns)$/.exec(text.trim());
  if (!m) throw bad(field, text, 'expected a duration such as 20us, 5µs, 1.5ms or 0.00002s');
  return Number(m[1]) * DURATION_FACTOR[m[2]];
}
